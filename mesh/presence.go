package mesh

import "strings"

// Presence: who is in the namespace's heartbeat channel, from the server's
// own NAMES, JOIN, PART, KICK, QUIT and NICK lines. Updated on the event
// loop only; read under n.mu.

// trackPresence updates the member list from one event.
func (n *Node) trackPresence(e *line) {
	n.seeTwin(e) // twin.go: after a rename at a netjoin, who kept the nick
	hb := HeartbeatChannel(n.cfg.Namespace)
	n.mu.Lock()
	defer n.mu.Unlock()
	changed := false
	switch e.cmd {
	case "353": // me = #channel :names
		if len(e.params) >= 3 && strings.EqualFold(e.params[len(e.params)-2], hb) {
			for _, name := range strings.Fields(e.last()) {
				nick := strings.TrimLeft(name, "~&@%+")
				if i := strings.IndexByte(nick, '!'); i >= 0 {
					nick = nick[:i]
				}
				n.members[strings.ToLower(nick)] = nick
			}
			changed = true
		}
	case "JOIN":
		if len(e.params) > 0 && strings.EqualFold(e.params[0], hb) {
			if strings.EqualFold(e.nick, n.nick) {
				clear(n.members) // NAMES follows
			}
			n.members[strings.ToLower(e.nick)] = e.nick
			changed = true
		}
	case "PART":
		if len(e.params) > 0 && strings.EqualFold(e.params[0], hb) {
			delete(n.members, strings.ToLower(e.nick))
			changed = true
		}
	case "KICK":
		if len(e.params) > 1 && strings.EqualFold(e.params[0], hb) {
			delete(n.members, strings.ToLower(e.params[1]))
			changed = true
		}
	case "QUIT":
		if e.nick != "" {
			_, changed = n.members[strings.ToLower(e.nick)]
			delete(n.members, strings.ToLower(e.nick))
		}
	case "NICK":
		if len(e.params) > 0 {
			if _, ok := n.members[strings.ToLower(e.nick)]; ok {
				delete(n.members, strings.ToLower(e.nick))
				n.members[strings.ToLower(e.last())] = e.last()
				changed = true
			}
		}
	}
	if changed {
		n.presenceChangedLocked()
	}
}

// presenceChangedLocked wakes whoever waits for the member list to change.
func (n *Node) presenceChangedLocked() {
	close(n.presence)
	n.presence = make(chan struct{})
}

// Present returns the nicks of the instances of service present in the
// namespace now (all services when service is "").
func (n *Node) Present(service string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.presentLocked(service)
}

func (n *Node) presentLocked(service string) []string {
	var out []string
	for _, nick := range n.members {
		if s, _, ok := ParseNick(nick); ok && (service == "" || s == service) {
			out = append(out, nick)
		}
	}
	return out
}

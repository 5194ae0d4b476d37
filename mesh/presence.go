package mesh

import (
	"context"
	"fmt"
	"strings"

	"github.com/lrstanley/girc"
)

// Presence: who is in the namespace's heartbeat channel, from the server's
// own NAMES, JOIN, PART, KICK, QUIT and NICK lines. Updated on the event
// loop only; read under n.mu.

// trackPresence updates the member list from one event.
func (n *Node) trackPresence(e *girc.Event) {
	hb := HeartbeatChannel(n.cfg.Namespace)
	n.mu.Lock()
	defer n.mu.Unlock()
	changed := false
	switch e.Command {
	case girc.RPL_NAMREPLY: // me = #channel :names
		if len(e.Params) >= 3 && strings.EqualFold(e.Params[len(e.Params)-2], hb) {
			for _, name := range strings.Fields(e.Last()) {
				nick := strings.TrimLeft(name, "~&@%+")
				if i := strings.IndexByte(nick, '!'); i >= 0 {
					nick = nick[:i]
				}
				n.members[strings.ToLower(nick)] = nick
			}
			changed = true
		}
	case girc.JOIN:
		if e.Source != nil && len(e.Params) > 0 && strings.EqualFold(e.Params[0], hb) {
			if strings.EqualFold(e.Source.Name, n.nick) {
				clear(n.members) // NAMES follows
			}
			n.members[strings.ToLower(e.Source.Name)] = e.Source.Name
			changed = true
		}
	case girc.PART:
		if e.Source != nil && len(e.Params) > 0 && strings.EqualFold(e.Params[0], hb) {
			delete(n.members, strings.ToLower(e.Source.Name))
			changed = true
		}
	case girc.KICK:
		if len(e.Params) > 1 && strings.EqualFold(e.Params[0], hb) {
			delete(n.members, strings.ToLower(e.Params[1]))
			changed = true
		}
	case girc.QUIT:
		if e.Source != nil {
			_, changed = n.members[strings.ToLower(e.Source.Name)]
			delete(n.members, strings.ToLower(e.Source.Name))
		}
	case girc.NICK:
		if e.Source != nil && len(e.Params) > 0 {
			if _, ok := n.members[strings.ToLower(e.Source.Name)]; ok {
				delete(n.members, strings.ToLower(e.Source.Name))
				n.members[strings.ToLower(e.Last())] = e.Last()
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

// WaitFor blocks until every named service has at least one instance
// present in the namespace, or ctx ends; the error then names the services
// still missing.
func (n *Node) WaitFor(ctx context.Context, services ...string) error {
	for {
		n.mu.Lock()
		var missing []string
		for _, s := range services {
			if len(n.presentLocked(s)) == 0 {
				missing = append(missing, s)
			}
		}
		changed := n.presence
		n.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for %s: %w", ErrNoResponders, strings.Join(missing, ", "), context.Cause(ctx))
		case <-n.done:
			return ErrClosed
		}
	}
}

package mesh

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Closed channels (docs/PROTOCOL.md §4.7). With Config.ChannelKey or
// Config.InviteOnly, every channel of the namespace must be closed to
// outsiders: +n (no messages from outside), +k with the mesh's key, +i
// with the mesh's accounts excepted (+I). A node that joins a channel asks
// for its modes before it counts the join as done:
//
//   - closed as it should be: joined;
//   - not closed, and the node is a channel operator (it created the
//     channel, or a member made it one): it sets the missing modes (and
//     the missing invite exceptions), then counts the join as done;
//   - not closed, and the node is no operator: it asks again a few times
//     (the member that created the channel may be setting it up), then
//     refuses the channel with a *JoinError and leaves it: someone outside
//     the mesh may hold it open.
//
// Members keep the channels closed: an operator that sees a closing mode
// removed asks for the modes again and restores them, and operators make
// every member that joins an operator too (after a short random delay,
// unless another did first), so that the channel keeps operators while
// any member is in it.

// closedState is the node's closed-mesh state: join failures, channel
// operators and pending mode checks. A leaf lock, like Node.mu; neither is
// held while the other is taken.
type closedState struct {
	mu       sync.Mutex
	joinErrs map[string]*JoinError // lower-case channel → why its last join failed
	chans    map[string]*chanState // lower-case channel → state, while in it
	// nick.go
	fixedInstance bool   // Config.Instance was given
	registered    bool   // the node registered once
	refusal       error  // why the node ends its current connection
	account       string // what the server logged the node in as (900), on this connection
}

// chanState is what the node knows of one closed channel it is in.
type chanState struct {
	name     string
	ops      map[string]bool // lower-case nicks with operator status or higher
	checking bool            // the join waits for the mode check
	tries    int             // mode queries sent for the check
	pendOps  map[string]*time.Timer
	invex    []string // +I list being read (346)
	listing  bool
}

func newClosedState() *closedState {
	return &closedState{joinErrs: map[string]*JoinError{}, chans: map[string]*chanState{}}
}

// Mode checks: how often a non-operator asks again for the modes of an
// open channel, and how long it waits between tries.
const (
	modeCheckTries = 6
	modeCheckWait  = 250 * time.Millisecond
)

// closedChannels reports whether the node keeps its channels closed.
func (n *Node) closedChannels() bool { return n.cfg.ChannelKey != "" || n.cfg.InviteOnly }

// meshChannel reports whether ch is a channel of the node's namespace.
func (n *Node) meshChannel(ch string) bool {
	_, ok := TopicOf(n.cfg.Namespace, ch)
	return ok
}

// onEndOfNames takes RPL_ENDOFNAMES after our JOIN: the join is done, or
// for a closed channel the mode check starts.
func (n *Node) onEndOfNames(ch string) {
	if !n.closedChannels() || !n.meshChannel(ch) {
		n.joined(ch)
		return
	}
	s := n.closed
	s.mu.Lock()
	cs := s.chanLocked(ch)
	cs.checking, cs.tries = true, 1
	s.mu.Unlock()
	_ = n.client.Cmd.SendRaw("MODE " + ch)
}

// chanLocked returns the state of ch, made on first use. s.mu is held.
func (s *closedState) chanLocked(ch string) *chanState {
	key := strings.ToLower(ch)
	cs := s.chans[key]
	if cs == nil {
		cs = &chanState{name: ch, ops: map[string]bool{}, pendOps: map[string]*time.Timer{}}
		s.chans[key] = cs
	}
	return cs
}

// isOp reports whether nick is an operator of ch.
func (s *closedState) isOp(ch, nick string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chans[strings.ToLower(ch)]
	return cs != nil && cs.ops[strings.ToLower(nick)]
}

// onNames takes RPL_NAMREPLY (353): who is an operator.
func (n *Node) onNames(l *line) {
	if !n.closedChannels() || len(l.params) < 4 || !n.meshChannel(l.params[2]) {
		return
	}
	opChars := n.opPrefixes()
	s := n.closed
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chanLocked(l.params[2])
	for _, name := range strings.Fields(l.last()) {
		prefixes := name[:len(name)-len(strings.TrimLeft(name, "~&@%+!."))]
		nick, _, _ := strings.Cut(name[len(prefixes):], "!")
		if strings.ContainsAny(prefixes, opChars) {
			cs.ops[strings.ToLower(nick)] = true
		}
	}
}

// opPrefixes are the NAMES prefixes of operator status or higher, from
// ISUPPORT PREFIX (default ~&@).
func (n *Node) opPrefixes() string {
	n.mu.Lock()
	p := n.isupport["PREFIX"]
	n.mu.Unlock()
	modes, chars, ok := strings.Cut(strings.TrimPrefix(p, "("), ")")
	if !ok || len(modes) != len(chars) {
		return "~&@"
	}
	if i := strings.IndexByte(modes, 'o'); i >= 0 {
		return chars[:i+1]
	}
	return "~&@"
}

// statusModes are the channel modes that give a member a status (PREFIX).
func (n *Node) statusModes() string {
	n.mu.Lock()
	p := n.isupport["PREFIX"]
	n.mu.Unlock()
	modes, _, ok := strings.Cut(strings.TrimPrefix(p, "("), ")")
	if !ok || modes == "" {
		return "qaohv"
	}
	return modes
}

// chanModeTypes returns the CHANMODES groups: list modes (A), modes with
// a parameter always (B), with a parameter when set (C).
func (n *Node) chanModeTypes() (a, b, c string) {
	n.mu.Lock()
	v := n.isupport["CHANMODES"]
	n.mu.Unlock()
	g := strings.Split(v, ",")
	if len(g) < 3 {
		return "beI", "k", "l"
	}
	return g[0], g[1], g[2]
}

// onChannelModes takes RPL_CHANNELMODEIS (324): the modes of a channel,
// for a join's check or after a closing mode was removed.
func (n *Node) onChannelModes(l *line) {
	if !n.closedChannels() || len(l.params) < 3 || !n.meshChannel(l.params[1]) {
		return
	}
	ch := l.params[1]
	have := l.params[2]
	missing := ""
	if !strings.ContainsRune(have, 'n') {
		missing += "n"
	}
	if n.cfg.InviteOnly && !strings.ContainsRune(have, 'i') {
		missing += "i"
	}
	setKey := n.cfg.ChannelKey != "" && !strings.ContainsRune(have, 'k')
	me := n.ownNick()
	s := n.closed
	s.mu.Lock()
	cs := s.chanLocked(ch)
	op := cs.ops[strings.ToLower(me)]
	checking := cs.checking
	tries := cs.tries
	s.mu.Unlock()
	closed := missing == "" && !setKey
	switch {
	case closed:
		if op && n.cfg.InviteOnly {
			n.readInviteExceptions(ch)
		}
		n.checkDone(ch, checking)
	case op:
		modes, args := "+"+missing, ""
		if setKey {
			modes += "k"
			args = " " + n.cfg.ChannelKey
		}
		_ = n.client.Cmd.SendRaw("MODE " + ch + " " + modes + args)
		n.log.Info("closed a mesh channel", "channel", ch, "modes", modes)
		if n.cfg.InviteOnly {
			n.readInviteExceptions(ch)
		}
		n.checkDone(ch, checking)
	case !checking:
		// Someone opened a channel we are in and we cannot close it:
		// say so; the operators among the members restore it.
		n.log.Error("a mesh channel is open to outsiders and this node is no channel operator", "channel", ch, "modes", have)
	case tries < modeCheckTries:
		s.mu.Lock()
		cs.tries++
		s.mu.Unlock()
		time.AfterFunc(modeCheckWait, func() {
			if n.closing.Load() {
				return
			}
			_ = n.client.Cmd.SendRaw("MODE " + ch)
		})
	default:
		s.mu.Lock()
		cs.checking = false
		s.mu.Unlock()
		err := &JoinError{Channel: ch, Reason: fmt.Sprintf("the channel is open to outsiders (modes %s, no %s) and this node is no channel operator: someone outside the mesh may hold it", have, n.closingModes())}
		if strings.EqualFold(ch, HeartbeatChannel(n.cfg.Namespace)) {
			n.joinFailed(ch, err)
			n.refuseConnection(err)
			return
		}
		n.joinFailed(ch, err)
		_ = n.client.Cmd.SendRaw("PART " + ch + " :meshbot: this channel is not closed")
	}
}

// closingModes names the modes that close a channel of this mesh.
func (n *Node) closingModes() string {
	m := "+n"
	if n.cfg.InviteOnly {
		m += "i"
	}
	if n.cfg.ChannelKey != "" {
		m += "k"
	}
	return m
}

// checkDone ends a join's mode check: the join is done.
func (n *Node) checkDone(ch string, checking bool) {
	if !checking {
		return
	}
	s := n.closed
	s.mu.Lock()
	if cs := s.chans[strings.ToLower(ch)]; cs != nil {
		cs.checking = false
	}
	s.mu.Unlock()
	n.joined(ch)
}

// onMode takes a MODE line of a closed channel: operator changes, and
// closing modes removed (an operator restores them).
func (n *Node) onMode(l *line) {
	if !n.closedChannels() || len(l.params) < 2 || !n.meshChannel(l.params[0]) {
		return
	}
	ch := l.params[0]
	a, b, c := n.chanModeTypes()
	status := n.statusModes()
	opModes := status[:strings.IndexByte(status+"o", 'o')+1]
	args := l.params[2:]
	set := true
	reopened := false
	me := strings.ToLower(n.ownNick())
	s := n.closed
	s.mu.Lock()
	cs := s.chanLocked(ch)
	for _, m := range l.params[1] {
		switch {
		case m == '+' || m == '-':
			set = m == '+'
			continue
		case strings.ContainsRune(status, m):
			if len(args) == 0 {
				break
			}
			who := strings.ToLower(args[0])
			args = args[1:]
			if strings.ContainsRune(opModes, m) {
				if set {
					cs.ops[who] = true
					if t := cs.pendOps[who]; t != nil {
						t.Stop()
						delete(cs.pendOps, who)
					}
				} else {
					delete(cs.ops, who)
				}
			}
		case strings.ContainsRune(a, m) || strings.ContainsRune(b, m) || strings.ContainsRune(c, m) && set:
			if len(args) > 0 {
				args = args[1:]
			}
			if m == 'I' && !set {
				reopened = true
			}
		}
		if !set && (m == 'n' || m == 'i' || m == 'k') {
			reopened = true
		}
	}
	op := cs.ops[me]
	s.mu.Unlock()
	if reopened && op {
		_ = n.client.Cmd.SendRaw("MODE " + ch)
	}
}

// onJoinClosed takes another member's JOIN of a closed channel: it passed
// the key or the invite exceptions, so it is one of the mesh. An operator
// makes it one too, after a random delay, unless another operator did
// first.
func (n *Node) onJoinClosed(ch, nick string) {
	if !n.closedChannels() || !n.meshChannel(ch) {
		return
	}
	me := n.ownNick()
	s := n.closed
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chans[strings.ToLower(ch)]
	who := strings.ToLower(nick)
	if cs == nil || !cs.ops[strings.ToLower(me)] || cs.ops[who] || cs.pendOps[who] != nil {
		return
	}
	delay := time.Duration(mrand.N(int64(300 * time.Millisecond)))
	cs.pendOps[who] = time.AfterFunc(delay, func() {
		s.mu.Lock()
		due := cs.pendOps[who] != nil && !cs.ops[who] && s.chans[strings.ToLower(ch)] == cs
		delete(cs.pendOps, who)
		s.mu.Unlock()
		if due && !n.closing.Load() {
			_ = n.client.Cmd.SendRaw("MODE " + ch + " +o " + nick)
		}
	})
}

// onLeaveClosed forgets a member of a closed channel (PART, KICK), or the
// channel itself when the node left it.
func (n *Node) onLeaveClosed(ch, nick string) {
	if !n.closedChannels() {
		return
	}
	me := n.ownNick()
	s := n.closed
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(ch)
	cs := s.chans[key]
	if cs == nil {
		return
	}
	if strings.EqualFold(nick, me) {
		for _, t := range cs.pendOps {
			t.Stop()
		}
		delete(s.chans, key)
		return
	}
	who := strings.ToLower(nick)
	delete(cs.ops, who)
	if t := cs.pendOps[who]; t != nil {
		t.Stop()
		delete(cs.pendOps, who)
	}
}

// onQuitClosed forgets a member that quit, in every channel; nick "" (our
// own connection dropped) forgets everything.
func (n *Node) onQuitClosed(nick string) {
	s := n.closed
	if nick == "" {
		s.mu.Lock()
		s.account = "" // a new connection logs in again
		s.mu.Unlock()
	}
	if !n.closedChannels() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	who := strings.ToLower(nick)
	for key, cs := range s.chans {
		for w, t := range cs.pendOps {
			if nick == "" || w == who {
				t.Stop()
				delete(cs.pendOps, w)
			}
		}
		if nick == "" {
			delete(s.chans, key)
			continue
		}
		delete(cs.ops, who)
	}
}

// onNickClosed follows a member's rename.
func (n *Node) onNickClosed(from, to string) {
	if !n.closedChannels() {
		return
	}
	s := n.closed
	s.mu.Lock()
	defer s.mu.Unlock()
	f, t := strings.ToLower(from), strings.ToLower(to)
	for _, cs := range s.chans {
		if cs.ops[f] {
			delete(cs.ops, f)
			cs.ops[t] = true
		}
	}
}

// readInviteExceptions asks for the +I list of ch; the missing exceptions
// of the mesh's accounts are added when it ends (onInviteList).
func (n *Node) readInviteExceptions(ch string) {
	s := n.closed
	s.mu.Lock()
	cs := s.chanLocked(ch)
	cs.listing, cs.invex = true, nil
	s.mu.Unlock()
	_ = n.client.Cmd.SendRaw("MODE " + ch + " I")
}

// onInviteList takes RPL_INVITELIST (346) and its end (347).
func (n *Node) onInviteList(l *line) {
	if !n.cfg.InviteOnly || len(l.params) < 2 || !n.meshChannel(l.params[1]) {
		return
	}
	ch := l.params[1]
	s := n.closed
	s.mu.Lock()
	cs := s.chanLocked(ch)
	if !cs.listing {
		s.mu.Unlock()
		return
	}
	if l.cmd == "346" {
		if len(l.params) > 2 && len(cs.invex) < 1000 {
			cs.invex = append(cs.invex, strings.ToLower(l.params[2]))
		}
		s.mu.Unlock()
		return
	}
	have := cs.invex
	cs.listing, cs.invex = false, nil
	s.mu.Unlock()
	masks, err := n.inviteMasks()
	if err != nil {
		n.log.Error("cannot let the mesh's accounts into an invite-only channel", "channel", ch, "err", err)
		return
	}
	for _, m := range masks {
		if !slices.Contains(have, strings.ToLower(m)) {
			_ = n.client.Cmd.SendRaw("MODE " + ch + " +I " + m)
		}
	}
}

// inviteMasks are the invite exceptions (+I) that let the mesh's accounts
// in, in the server's account extban syntax (ISUPPORT EXTBAN): InspIRCd
// "R:<account>", the "$a:<account>" family (solanum, ...).
func (n *Node) inviteMasks() ([]string, error) {
	n.mu.Lock()
	extban, hasExtban := n.isupport["EXTBAN"]
	chanmodes := n.isupport["CHANMODES"]
	n.mu.Unlock()
	lists, _, _ := strings.Cut(chanmodes, ",")
	if !strings.ContainsRune(lists, 'I') {
		return nil, fmt.Errorf("the server has no invite exceptions (+I)")
	}
	prefix, letters, _ := strings.Cut(extban, ",")
	var form string
	switch {
	case !hasExtban:
		return nil, fmt.Errorf("the server announces no extended bans (EXTBAN): no invite exception can name an account")
	case prefix != "" && strings.ContainsRune(letters, 'a'):
		form = prefix + "a:"
	case prefix == "" && strings.ContainsRune(letters, 'R'):
		form = "R:"
	default:
		return nil, fmt.Errorf("the server's extended bans (EXTBAN=%s) name no accounts", extban)
	}
	var masks []string
	for _, acct := range n.cfg.Accounts.Accounts {
		masks = append(masks, form+acct)
	}
	slices.Sort(masks)
	return slices.Compact(masks), nil
}

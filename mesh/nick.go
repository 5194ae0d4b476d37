package mesh

import (
	"errors"
	"fmt"
	"strings"
)

// Nicks. A node's nick is its identity on the wire: every envelope it
// sends must come from the nick of its sender (docs/PROTOCOL.md §4.4), so
// the node never runs under a nick other than <service>-<instance>:
//
//   - a fixed instance (Config.Instance) whose nick someone else holds is
//     an error — Connect fails with ErrNickUnavailable naming the nick, and
//     after a reconnect the node keeps trying (with back-off, warning)
//     until the nick is free (a ghost of its own last connection goes once
//     the server notices it is dead);
//   - a random instance picks another one while the node registers for
//     the first time; once registered it keeps its instance (its
//     subscriptions and claims are bound to it) and treats a taken nick
//     like a fixed one;
//   - a server that registers the node under another nick (a shorter
//     NICKLEN), or renames it later, ends the connection with
//     ErrNickUnavailable.

// ErrNickUnavailable: the node cannot have its nick (someone else holds
// it, or the server gave it another); the error names the nick.
var ErrNickUnavailable = errors.New("mesh: the node's nick is not available")

// onNickCollide is girc's nick collision handler: the nick to try next,
// or "" (the connection is refused).
func (n *Node) onNickCollide(taken string) string {
	s := n.closed
	s.mu.Lock()
	keep := s.fixedInstance || s.registered
	s.mu.Unlock()
	if !keep {
		return n.newNick()
	}
	why := "instance " + n.Instance() + " is fixed (Config.Instance)"
	if !s.fixedInstanceValue() {
		why = "the node keeps its instance once registered"
	}
	n.refuseConnection(fmt.Errorf("%w: %s is in use by someone else (%s); a ghost of this node's last connection goes once the server notices it is dead",
		ErrNickUnavailable, taken, why))
	return ""
}

func (s *closedState) fixedInstanceValue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fixedInstance
}

// checkWelcome takes the nick the server registered the node under
// (RPL_WELCOME): it must be the node's.
func (n *Node) checkWelcome(got string) {
	want, err := Nick(n.cfg.Service, n.Instance(), 0)
	if err == nil && !strings.EqualFold(got, want) {
		n.refuseConnection(fmt.Errorf("%w: the server registered this node as %s, not %s (is its NICKLEN shorter? use a shorter service name)", ErrNickUnavailable, got, want))
		return
	}
	n.closed.mu.Lock()
	n.closed.registered = true
	n.closed.mu.Unlock()
}

// checkOwnNick takes a change of the node's own nick after registration
// (the server renamed it): the envelopes it sends would be refused.
func (n *Node) checkOwnNick(to string) {
	want, err := Nick(n.cfg.Service, n.Instance(), 0)
	if err == nil && !strings.EqualFold(to, want) {
		if n.renamedByServer(want, to) { // twin.go: a nick collision at a netjoin
			return
		}
		n.closed.mu.Lock()
		registered := n.closed.registered
		n.closed.mu.Unlock()
		why := ""
		if !registered {
			why = " (another client took " + want + " while this node registered)"
		}
		n.refuseConnection(fmt.Errorf("%w: the server renamed this node %s%s; its nick must be %s", ErrNickUnavailable, to, why, want))
	}
}

// onErroneousNick takes ERR_ERRONEUSNICKNAME (432): the server refuses
// the nick itself.
func (n *Node) onErroneousNick(l *line) {
	n.refuseConnection(fmt.Errorf("%w: the server refuses the nick %s: %s", ErrNickUnavailable, l.param(1), clipText([]byte(l.last()))))
}

// refuseConnection ends the current connection because of err, which is
// then what the attempt failed with (Connect's error on the first one).
func (n *Node) refuseConnection(err error) {
	n.closed.mu.Lock()
	if n.closed.refusal == nil {
		n.closed.refusal = err
	}
	n.closed.mu.Unlock()
	n.log.Error("refusing the connection", "err", err)
	n.client.Close()
}

// takeRefusal returns, once, why the node ended its last connection itself
// (refuseConnection), or nil.
func (n *Node) takeRefusal() error {
	n.closed.mu.Lock()
	defer n.closed.mu.Unlock()
	err := n.closed.refusal
	n.closed.refusal = nil
	return err
}

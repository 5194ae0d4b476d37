package mesh

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Duplicate instances. Two processes must not serve one instance: they
// would share a nick, claims and a place in the group's ranking. On one
// server (or a whole network) the second cannot register: its nick is
// taken (ErrNickUnavailable). During a netsplit it can, on the other side;
// when the network joins, the servers find two users with one nick. On
// InspIRCd the servers resolve it by the nicks' timestamps and the users'
// ident@ip: with the same ident@ip the older user is renamed to its UID (a
// reconnect of one person is taken to replace its ghost), with different
// ones the newer is. A node's ident is derived from its incarnation, so
// that
//
//   - its own ghost (an earlier connection of this process behind a frozen
//     or lost server) is the older with the same ident@ip: the ghost loses
//     the nick and the live connection keeps it;
//   - another process with the same instance has another ident: the one
//     that registered later (the second) is renamed.
//
// A registered node the server renames to a UID keeps listening for up to
// twinWatchFor: a line from its own nick under another ident is that other
// process, and the node stops serving for good (ErrDuplicateInstance,
// Node.Err); nothing heard, or its own ident (a ghost that kept the nick,
// on a network where the two connections come from different addresses),
// and it reconnects as after any lost nick. When both nicks were
// registered in the same second the servers rename both; both reconnect,
// and the first back holds the nick while the other waits for it.

// ErrDuplicateInstance: another process serves this node's instance (its
// nick came back to the network under another ident after a netsplit, and
// the servers kept the other one). The node stopped serving for good.
var ErrDuplicateInstance = errors.New("mesh: another process serves this instance")

// twinWatchFor is how long a renamed node listens for the process that
// kept its nick: its heartbeats come every interval, its JOINs at once.
const twinWatchFor = 2500 * time.Millisecond

// twin follows a rename by the server and the node's stop for good. mu is
// a leaf lock.
type twin struct {
	mu      sync.Mutex
	want    string    // the nick the node lost, lower case; "" when not watching
	until   time.Time // end of the watch
	verdict chan struct{}
	other   string // user@host of the process that kept the nick
	err     error  // why the node stopped serving for good
	stopped chan struct{}
}

// identFor is the ident (IRC user name) of a node: up to 4 characters of
// its service, '-', and 5 base-36 digits of its incarnation: 10
// characters at most (InspIRCd's default maxident).
func identFor(service string, incarnation uint64) string {
	prefix := service
	if len(prefix) > 4 {
		prefix = prefix[:4]
	}
	h := incarnation*0x9e3779b97f4a7c15 ^ incarnation>>29 // spread the clock's low digits
	tag := strconv.FormatUint(h%60466176, 36)             // 36^5
	return prefix + "-" + strings.Repeat("0", 5-len(tag)) + tag
}

// isUID reports whether nick is an InspIRCd UID (a digit, then 8 letters
// or digits): what a server renames a user to on a nick collision.
func isUID(nick string) bool {
	if len(nick) != 9 || nick[0] < '0' || nick[0] > '9' {
		return false
	}
	for i := 1; i < len(nick); i++ {
		c := nick[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// renamedByServer takes a change of the node's own nick to to, after
// registration. When to is a UID (a collision at a netjoin) it watches for
// the process that kept the nick and reports true: the caller leaves the
// connection open meanwhile.
func (n *Node) renamedByServer(want, to string) bool {
	n.closed.mu.Lock()
	registered := n.closed.registered
	n.closed.mu.Unlock()
	if !registered || !isUID(to) {
		return false
	}
	t := &n.failover.twin
	t.mu.Lock()
	if t.want != "" {
		t.mu.Unlock()
		return true
	}
	t.want, t.until, t.verdict, t.other = strings.ToLower(want), time.Now().Add(twinWatchFor), make(chan struct{}), ""
	verdict := t.verdict
	t.mu.Unlock()
	n.log.Warn("the server renamed this node after a netsplit: another user took its nick meanwhile; listening for it",
		"nick", want, "renamed", to)
	n.wg.Add(1)
	go n.awaitTwin(want, to, verdict)
	return true
}

// seeTwin takes every line while the node watches for the process that
// kept its nick: a line from that nick under another ident names it.
func (n *Node) seeTwin(l *line) {
	t := &n.failover.twin
	if l.nick == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.want == "" || t.other != "" || strings.ToLower(l.nick) != t.want {
		return
	}
	if strings.TrimPrefix(l.user, "~") == n.ident() {
		return // our own ghost: it will go
	}
	t.other = l.user + "@" + l.host
	close(t.verdict)
}

// awaitTwin ends the watch: the node stops serving when another process
// kept its nick, else it reconnects as after any lost nick.
func (n *Node) awaitTwin(want, to string, verdict chan struct{}) {
	defer n.wg.Done()
	t := &n.failover.twin
	timer := time.NewTimer(twinWatchFor)
	defer timer.Stop()
	select {
	case <-verdict:
	case <-timer.C:
	case <-n.done:
	}
	t.mu.Lock()
	other := t.other
	t.want = ""
	if other != "" && t.err == nil {
		t.err = fmt.Errorf("%w: %s (instance %s) is held by another process (%s, this node is %s@): two processes were started with one instance, "+
			"and the servers kept the one that registered first when the network joined after a netsplit; this one stopped serving",
			ErrDuplicateInstance, want, n.Instance(), other, n.ident())
		close(t.stopped)
	}
	err := t.err
	t.mu.Unlock()
	if err != nil {
		n.refuseConnection(err)
		return
	}
	n.refuseConnection(fmt.Errorf("%w: the server renamed this node %s after a netsplit (another user had its nick); its nick must be %s", ErrNickUnavailable, to, want))
}

// initTwin sets the node's ident on its IRC client (read at each
// registration) before the first connection.
func (n *Node) initTwin() {
	n.failover.twin.stopped = make(chan struct{})
	n.client.Config.User = n.ident()
}

// ident is the node's IRC user name.
func (n *Node) ident() string { return identFor(n.cfg.Service, n.incarnation) }

// stoppedErr is why the node stopped serving for good, or nil.
func (n *Node) stoppedErr() error {
	t := &n.failover.twin
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Err returns why the node stopped serving for good while it was running
// (ErrDuplicateInstance: another process serves its instance), or nil.
// Such a node does not reconnect; it still needs Close.
func (n *Node) Err() error { return n.stoppedErr() }

// Stopped is closed when the node stops serving for good (see Err).
func (n *Node) Stopped() <-chan struct{} { return n.failover.twin.stopped }

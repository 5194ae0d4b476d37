package mesh

import (
	"errors"
	"sync"
	"time"
)

// outage follows the connection's failures so that one outage is
// reported once: one warning, one gap for observers, however many
// attempts it takes to get back.
type outage struct {
	mu      sync.Mutex
	gapGen  uint64    // the connection generation of the last gap
	gen     uint64    // the connection generation the current outage ended
	since   time.Time // when the current outage began
	attempt int       // failed attempts in it
	nextLog time.Duration
}

// outageReminder is when a long outage is reported again: after this,
// then twice as long each time.
const outageReminder = 30 * time.Second

// gapDue reports whether a lost connection starts a gap for observers:
// only a connection that registered since the last gap can have shown
// them lines (failed attempts during an outage are the same gap).
func (n *Node) gapDue() bool {
	n.mu.Lock()
	gen := n.connGen
	n.mu.Unlock()
	n.outage.mu.Lock()
	defer n.outage.mu.Unlock()
	if gen == n.outage.gapGen {
		return false
	}
	n.outage.gapGen = gen
	return true
}

// attemptFailed reports a failed connection attempt or a lost connection
// (the connect loop calls it before waiting wait), and reports whether
// the loop should try again. Before the node was ever connected, Connect
// reports the error itself, and an authentication failure ends the loop;
// a node that stopped serving for good (Node.Err) ends it too.
// After, the first failure of an outage is a warning and the later ones
// are debug lines, with a reminder when the outage lasts.
func (n *Node) attemptFailed(err error, wait time.Duration) bool {
	if stop := n.stoppedErr(); stop != nil { // twin.go: another process serves this instance
		n.log.Error("stopped serving for good; not reconnecting", "err", stop)
		return false
	}
	n.mu.Lock()
	gen := n.connGen
	n.mu.Unlock()
	n.stats.reconnects.Add(1)
	if gen == 0 { // never registered
		if errors.Is(err, ErrAuthFailed) {
			return false
		}
		if n.cfg.RetryOnFailedConnect {
			n.log.Debug("connection attempt failed; trying again", "err", err, "in", wait)
		}
		return true
	}
	o := &n.outage
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if gen != o.gen { // a connection registered since: a new outage
		o.gen, o.since, o.attempt, o.nextLog = gen, now, 0, outageReminder
	}
	o.attempt++
	switch {
	case o.attempt == 1:
		n.log.Warn("disconnected; reconnecting", "err", err, "in", wait)
	case now.Sub(o.since) >= o.nextLog:
		n.log.Warn("still disconnected", "for", now.Sub(o.since).Round(time.Second), "attempts", o.attempt, "err", err)
		o.nextLog *= 2
	default:
		n.log.Debug("reconnect attempt failed", "attempt", o.attempt, "err", err, "in", wait)
	}
	return true
}

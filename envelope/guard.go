package envelope

import (
	"fmt"
	"time"
)

// Guard rejects replayed envelopes: an id seen before is ErrDuplicate, and an
// envelope whose sender time lies outside ±Window of now is ErrExpired (its
// id may already have been forgotten). It remembers at most Capacity ids, the
// newest ones; memory is bounded by that. A Guard is not safe for concurrent
// use: one owner feeds it, as with every core in meshbot. It reads no clock;
// "now" is passed in.
type Guard struct {
	window   time.Duration
	capacity int
	seen     map[ID]struct{}
	ring     []ID // insertion order, for eviction; grows up to capacity
	next     int
	full     bool
}

// DefaultGuardCapacity and DefaultGuardWindow are the defaults of NewGuard.
const (
	DefaultGuardCapacity = 1 << 16
	DefaultGuardWindow   = 10 * time.Minute
)

// NewGuard returns a guard remembering up to capacity ids (≤ 0: the
// default) with the given time window (≤ 0: the default; the window also
// bounds the clock skew tolerated between instances).
func NewGuard(capacity int, window time.Duration) *Guard {
	if capacity <= 0 {
		capacity = DefaultGuardCapacity
	}
	if window <= 0 {
		window = DefaultGuardWindow
	}
	// The map and the ring grow with the ids seen: a quiet node does not
	// pay for the capacity.
	return &Guard{window: window, capacity: capacity, seen: make(map[ID]struct{})}
}

// Check accepts e once. A second envelope with the same id is rejected with
// ErrDuplicate; one whose time is outside the window with ErrExpired.
func (g *Guard) Check(e *Envelope, now time.Time) error {
	if d := now.Sub(e.SentAt()); d > g.window || d < -g.window {
		return fmt.Errorf("%w: sent %s from now", ErrExpired, -d.Round(time.Millisecond))
	}
	if !g.Add(e.ID) {
		return fmt.Errorf("%w: id %s", ErrDuplicate, e.ID.Short())
	}
	return nil
}

// Add remembers id and reports whether it was new, without the time window:
// de-duplication alone (of replayed history, say).
func (g *Guard) Add(id ID) bool {
	if _, dup := g.seen[id]; dup {
		return false
	}
	g.seen[id] = struct{}{}
	if !g.full {
		g.ring = append(g.ring, id)
		g.full = len(g.ring) == g.capacity
		return true
	}
	delete(g.seen, g.ring[g.next])
	g.ring[g.next] = id
	g.next++
	if g.next == len(g.ring) {
		g.next = 0
	}
	return true
}

// Len returns how many ids the guard remembers.
func (g *Guard) Len() int { return len(g.seen) }

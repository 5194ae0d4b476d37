package claims

import (
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Tombstones. A completed event the group's committed offset passed is
// dropped before its retention ends (Forget, §6.13), but its lines may
// come again within it: a replay of the record reaches back before the
// committed offset (by a margin after a reconnect, to the split's start
// after a netjoin), and a publisher resends after a reconnect. A record
// with a hole (a recorder that missed the claims and acks) then brings
// back the event alone, and a member that took it for a new one would
// claim it at epoch 1 again — its epoch-1 owner is the member that ran it
// at epoch 1 before: one handler twice at one epoch. So Forget keeps the
// event's id, and only its id, until the retention would have ended: a
// line of a tombstoned event is that of a completed one, not tracked again.
// Tombstones are bounded by MaxEvents too (the oldest go first, counted
// in Evicted).

// tomb is a forgotten event's id and when its retention ends (Unix ns).
type tomb struct {
	id    envelope.ID
	until int64
}

// tombs holds the tombstones, in the order Forget made them.
type tombs struct {
	set  map[envelope.ID]struct{}
	q    []tomb
	head int
	peak int // the most held since the set was last rebuilt (shrink.go)
}

// has reports whether id is a forgotten event's.
func (t *tombs) has(id envelope.ID) bool {
	_, ok := t.set[id]
	return ok
}

// add keeps id until until; at bound tombstones it first drops the oldest
// and reports how many it dropped.
func (t *tombs) add(id envelope.ID, until time.Time, bound int) (evicted int) {
	if t.set == nil {
		t.set = make(map[envelope.ID]struct{})
	}
	if _, ok := t.set[id]; ok {
		return 0
	}
	for len(t.set) >= bound && t.head < len(t.q) {
		t.pop()
		evicted++
	}
	t.set[id] = struct{}{}
	t.q = append(t.q, tomb{id: id, until: until.UnixNano()})
	return evicted
}

// expire drops the tombstones whose retention ended by now. (Forget
// follows the committed offset, not completion times: one made later may
// end sooner and waits behind an earlier one, at most a retention.)
func (t *tombs) expire(now time.Time) {
	ns := now.UnixNano()
	for t.head < len(t.q) && t.q[t.head].until <= ns {
		t.pop()
	}
	t.shrink()
}

func (t *tombs) pop() {
	delete(t.set, t.q[t.head].id)
	t.q[t.head] = tomb{}
	t.head++
}

// shrink rebuilds the set and the queue when they hold a quarter of what
// they held at their peak (shrink.go).
func (t *tombs) shrink() {
	if len(t.set) > t.peak {
		t.peak = len(t.set)
	}
	if t.set != nil {
		t.set, t.peak = shrinkMap(t.set, t.peak)
	}
	t.q, t.head = shrinkSlice(t.q, t.head), 0
}

// Abandoned claims. Reset forgets the pending events, this member's
// claims on them included, but its claim lines may have reached nobody
// that records (the server died just after echoing them) and its
// releases may come back before a replay brings the event again, when
// they are stale: a record with the event alone would then make the
// member claim it at the epoch it claimed before, and run it twice there
// (its handler may have run to the end, its ACK lost with the server). So
// Reset keeps, for the retention, the epoch of each claim of ours it
// dropped after seeing it come back (a handler may have run); an event
// seen again meanwhile starts with that claim given back (as its release
// would have done: no attempt counted), at the next epoch.

// abandoned is a claim of ours that Reset dropped.
type abandoned struct {
	epoch uint64
	at    time.Time
}

// abandon records the claims of ours on the pending events Reset drops.
func (c *Core) abandon(now time.Time) {
	for id, e := range c.events {
		if e.outcome != Pending || e.mine == nil || e.mine.dead || e.mine.seen.IsZero() {
			continue // (a claim never seen back started no handler)
		}
		if c.abandoned == nil {
			c.abandoned = make(map[envelope.ID]abandoned)
		}
		if a, ok := c.abandoned[id]; !ok || a.epoch < e.mine.epoch {
			c.abandoned[id] = abandoned{epoch: e.mine.epoch, at: now}
		}
	}
}

// reclaimed gives back, on an event seen again after a Reset, the claim
// of ours Reset dropped: our claim at that epoch is implied, released.
func (c *Core) reclaimed(e *event, now time.Time) {
	a, ok := c.abandoned[e.id]
	if !ok {
		return
	}
	// (It stays recorded: a Reset again would forget the event again.)
	e.win = &claim{who: c.cfg.Self, epoch: a.epoch, weight: Weight(e.id, c.cfg.Self.ID), received: now, until: now}
	e.winFailed = false
	c.handOver(e, c.cfg.Self.ID+": released: disconnected", false, now)
}

// expireAbandoned drops what Reset kept once the retention has passed.
func (c *Core) expireAbandoned(now time.Time) {
	for id, a := range c.abandoned {
		if now.Sub(a.at) >= c.cfg.Retain {
			delete(c.abandoned, id)
		}
	}
	if len(c.abandoned) == 0 {
		c.abandoned = nil
	}
}

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

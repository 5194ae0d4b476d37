package claims

import (
	"testing"
	"time"
)

// completeAll has member b claim and ack events from..to-1 at now, as
// seen by c.
func completeAll(c *Core, from, to uint64, now time.Time) {
	for n := from; n < to; n++ {
		id := testID(n)
		c.Event(id, "", now)
		c.Claim(who(idB), Item{Event: id, Epoch: 1, Attempt: 1}, ctLease, now)
		c.Ack(who(idB), Item{Event: id, Epoch: 1}, now)
	}
}

// TestMemoryReturned: after a burst of events, once their retention has
// passed, the core holds nothing of them: no event, no completion queue,
// no timer, and its map is rebuilt empty (its peak forgotten).
func TestMemoryReturned(t *testing.T) {
	c := New(Config{Self: who(idA), Lease: ctLease, Retain: time.Minute})
	c.Members(alive(ctAll...), ct0)
	c.Session(ct0.Add(1000*time.Hour), ct0)
	c.SetReady(true, ct0)
	const n = 5000
	completeAll(c, 0, n, ct0)
	if st := c.Stats(); st.Completed != n || st.Pending != 0 || len(c.events) != n {
		t.Fatalf("after the burst: %+v, %d events tracked", st, len(c.events))
	}
	c.Tick(ct0.Add(30 * time.Second)) // within the retention: kept
	if len(c.events) != n {
		t.Fatalf("%d events tracked within the retention, want %d", len(c.events), n)
	}
	c.Tick(ct0.Add(61 * time.Second))
	if st := c.Stats(); st.Completed != 0 || st.Pending != 0 || st.Evicted != 0 {
		t.Fatalf("after the retention: %+v", st)
	}
	if len(c.events) != 0 || c.peak != 0 || c.done != nil || c.doneHead != 0 || len(c.timers) != 0 || cap(c.timers) > shrinkFloor {
		t.Fatalf("after the retention: %d events (peak %d), done %d/%d from %d, timers %d/%d",
			len(c.events), c.peak, len(c.done), cap(c.done), c.doneHead, len(c.timers), cap(c.timers))
	}
	// A smaller burst later is tracked as before.
	completeAll(c, n, n+10, ct0.Add(2*time.Minute))
	if st := c.Stats(); st.Completed != 10 {
		t.Fatalf("a later burst: %+v", st)
	}
}

// TestEvictedUnderMaxEvents: past MaxEvents the oldest completed events are
// forgotten before their retention and counted as Evicted; pending ones
// are never dropped, and with no completed event left new ones are refused.
func TestEvictedUnderMaxEvents(t *testing.T) {
	c := New(Config{Self: who(idA), Lease: ctLease, Retain: time.Hour, MaxEvents: 10})
	c.Members(alive(ctAll...), ct0)
	c.Session(ct0.Add(1000*time.Hour), ct0)
	completeAll(c, 0, 25, ct0)
	st := c.Stats()
	if st.Evicted != 15 || st.Completed != 10 || st.Refused != 0 {
		t.Fatalf("25 events completed under MaxEvents 10: %+v", st)
	}
	if _, _, _, ok := c.Status(testID(0)); ok {
		t.Fatalf("the oldest completed event is still known")
	}
	if o, _, _, ok := c.Status(testID(24)); !ok || o != Acked {
		t.Fatalf("the newest completed event: %v %v", o, ok)
	}
	// Ten pending events fill the bound: the completed ones go, then the
	// eleventh is refused.
	for n := uint64(100); n < 111; n++ {
		c.Event(testID(n), "", ct0)
	}
	st = c.Stats()
	if st.Pending != 10 || st.Completed != 0 || st.Evicted != 25 || st.Refused != 1 {
		t.Fatalf("11 pending events under MaxEvents 10: %+v", st)
	}
}

// TestForgetReleases: events dropped with Forget (the committed offset
// passed them) are no longer referenced by the completion queue, long
// before their retention ends; the queue's array is returned at the next
// rebuild.
func TestForgetReleases(t *testing.T) {
	c := New(Config{Self: who(idA), Lease: ctLease, Retain: time.Hour})
	c.Members(alive(ctAll...), ct0)
	c.Session(ct0.Add(1000*time.Hour), ct0)
	const n = 3000
	completeAll(c, 0, n, ct0)
	for i := range uint64(n) {
		if !c.Forget(testID(i)) {
			t.Fatalf("event %d not forgotten", i)
		}
	}
	for i, e := range c.done {
		if e != nil {
			t.Fatalf("the completion queue still holds event %d (%d of %d)", e.seq, i, len(c.done))
		}
	}
	if st := c.Stats(); st.Completed != 0 || st.Pending != 0 || c.forgotten != 0 {
		t.Fatalf("after Forget: %+v, %d forgotten in the queue", st, c.forgotten)
	}
	c.shrink()
	if c.done != nil || len(c.events) != 0 || c.peak != 0 {
		t.Fatalf("after a rebuild: done %d/%d, %d events (peak %d)", len(c.done), cap(c.done), len(c.events), c.peak)
	}
}

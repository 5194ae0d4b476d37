package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// meshFanout is the meshbot side of a Fanout: publisher nodes publishing
// with PublishAsync to a topic that subscriber nodes subscribe to
// (multicast), or that worker nodes of one group share (anycast).
type meshFanout struct {
	w       Fanout
	topic   string
	group   string
	pubs    []*mesh.Node
	subs    []*mesh.Node
	tallies []*Tally // multicast: one per subscriber
	handled *Tally   // anycast: the whole group
	anys    []*mesh.AnycastSubscription
	payload []byte
}

// queueLen is a subscription's queue for w: the whole measurement, so
// that a subscriber slower than its publishers is measured, not dropped
// (bounded at a million events).
func queueLen(w Fanout) int { return min(w.Msgs+1000, 1<<20) }

// newMeshFanout subscribes subs to topic (as group, when anycast) and, for
// anycast, waits until every worker sees the whole group.
func newMeshFanout(ctx context.Context, w Fanout, topic, group string, pubs, subs []*mesh.Node) (*meshFanout, error) {
	f := &meshFanout{w: w, topic: topic, group: group, pubs: pubs, subs: subs,
		handled: &Tally{}, payload: bytes.Repeat([]byte("x"), w.Size)}
	for _, n := range subs {
		if w.Anycast {
			s, err := n.SubscribeAnycast(ctx, topic, func(context.Context, *mesh.Message) error {
				f.handled.Add()
				return nil
			}, mesh.Group(group), mesh.QueueLen(queueLen(w)))
			if err != nil {
				return nil, fmt.Errorf("bench: anycast subscription: %w", err)
			}
			f.anys = append(f.anys, s)
			continue
		}
		t := &Tally{}
		f.tallies = append(f.tallies, t)
		if _, err := n.Subscribe(ctx, topic, func(context.Context, *mesh.Message) error {
			t.Add()
			return nil
		}, mesh.QueueLen(queueLen(w))); err != nil {
			return nil, fmt.Errorf("bench: subscription: %w", err)
		}
	}
	if w.Anycast {
		if err := waitGroupFormed(ctx, subs, topic, group); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// waitGroupFormed waits until every node sees every node of nodes as a
// member of (topic, group).
func waitGroupFormed(ctx context.Context, nodes []*mesh.Node, topic, group string) error {
	ctx, cancel := context.WithTimeout(ctx, IOTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		formed := true
		for _, n := range nodes {
			count := 0
			for _, m := range n.Members("") {
				for _, s := range m.Beat.Subs {
					if s.Topic == topic && s.Group == group {
						count++
					}
				}
			}
			formed = formed && count >= len(nodes)
		}
		if formed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: the anycast group did not form: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// round publishes msgs messages (w.Msgs when 0) split over the
// publishers and measures until every subscriber has every message
// (anycast: every message was handled), the workload's Duration, ctx's
// end, or IOTimeout after the publishers stopped. progress counts
// messages delivered to the slowest subscriber (anycast: handled).
func (f *meshFanout) round(ctx context.Context, msgs int, progress *atomic.Int64) (Rate, error) {
	w := f.w
	if msgs > 0 {
		w.Msgs = max(msgs, w.Pubs)
	}
	for _, t := range f.tallies {
		t.Reset()
	}
	f.handled.Reset()
	acked := f.acked()

	// Publishes live until the round ends: a Duration stops new ones,
	// not those queued. An interrupt (ctx) ends them all.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	sent := make([]atomic.Int64, len(f.pubs))
	errs := make([]error, len(f.pubs))
	start := time.Now()
	stop := StopAfter(w.Duration, start)
	var wg sync.WaitGroup
	for i, n := range f.pubs {
		wg.Go(func() { errs[i] = f.publish(pctx, n, w.share(i), stop, &sent[i]) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	total := func() int64 {
		var s int64
		for i := range sent {
			s += sent[i].Load()
		}
		return s
	}
	err := WaitDelivered(ctx, done, func() (int64, int64) {
		got := f.handled.Count()
		if !w.Anycast {
			got = -1
			for _, t := range f.tallies {
				if n := t.Count(); got < 0 || n < got {
					got = n
				}
			}
		}
		if progress != nil {
			progress.Store(got)
		}
		return got, total()
	})
	if err != nil {
		err = fmt.Errorf("meshbot: %w (%s)", err, f.state())
	}
	if ctx.Err() != nil {
		pcancel() // an interrupt: stop what is still queued
	}
	<-done
	var r Rate
	if w.Anycast {
		r = AnycastRate(start, total(), f.handled)
	} else {
		r = MulticastRate(start, total(), 1, f.tallies)
	}
	if err = errors.Join(append(errs, err)...); err != nil || ctx.Err() != nil {
		return r, err
	}
	if w.Anycast {
		// Leave the group quiet for what comes next: every worker has
		// seen every ack (not timed).
		return r, f.waitAcked(ctx, acked, r.Sent)
	}
	return r, nil
}

// publish publishes n messages from node, until stop (after one message
// at least) or ctx; sent counts
// those queued. Publish errors are returned once the publishes end.
func (f *meshFanout) publish(ctx context.Context, node *mesh.Node, n int, stop func() bool, sent *atomic.Int64) error {
	var pending []*mesh.PubFuture
	var errs []error
	wait := func(fs []*mesh.PubFuture) {
		for _, fu := range fs {
			if _, err := fu.Wait(ctx); err != nil && len(errs) < 3 {
				errs = append(errs, err)
			}
		}
	}
	for i := range n {
		if (i > 0 && stop()) || ctx.Err() != nil {
			break
		}
		fu, err := node.PublishAsync(ctx, f.topic, f.payload)
		if err != nil {
			if ctx.Err() == nil {
				errs = append(errs, err)
			}
			break
		}
		sent.Add(1)
		pending = append(pending, fu)
		if len(pending) >= 8192 { // the older half is confirmed by now
			wait(pending[:4096])
			pending = append(pending[:0], pending[4096:]...)
		}
	}
	if ctx.Err() == nil {
		wait(pending)
	}
	if len(errs) > 0 {
		return fmt.Errorf("bench: publishing: %w", errors.Join(errs...))
	}
	return nil
}

// acked returns each worker's count of acked events.
func (f *meshFanout) acked() []uint64 {
	out := make([]uint64, len(f.anys))
	for i, s := range f.anys {
		out[i] = s.ClaimStats().Acked
	}
	return out
}

// waitAcked waits until every worker has seen n more acks than base.
func (f *meshFanout) waitAcked(ctx context.Context, base []uint64, n int64) error {
	ctx, cancel := context.WithTimeout(ctx, IOTimeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		all := true
		for i, a := range f.acked() {
			all = all && a-base[i] >= uint64(n)
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("bench: anycast acks not seen by every worker after %v (%s)", IOTimeout, f.state())
			}
			return nil
		case <-tick.C:
		}
	}
}

// state describes the subscribers, for errors.
func (f *meshFanout) state() string {
	var b bytes.Buffer
	for i, n := range f.subs {
		st := n.Stats()
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "subscriber %d: delivered %d, dropped %d, rejected %d", i, st.Delivered, st.Dropped, st.Rejected)
	}
	if f.w.Anycast {
		fmt.Fprintf(&b, "; handled %d", f.handled.Count())
	}
	return b.String()
}

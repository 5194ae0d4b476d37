package mesh

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Membership: every node beats on the namespace's heartbeat channel every
// HeartbeatInterval (jittered ±10% so nodes do not beat in lockstep) and
// feeds what it hears — beats, and the server's QUIT/PART/KICK — to its
// heartbeat.View. The view is guarded by hbMu; its events go to watchers
// through bounded queues, never blocking the connection's reader.

// membership is the node's heartbeat state.
type membership struct {
	mu       sync.Mutex
	view     *heartbeat.View
	seq      uint64
	changed  chan struct{} // closed and replaced when the live set changes
	watchers []*memberWatcher
	now      chan struct{} // beat at once (a connection became ready)
}

type memberWatcher struct {
	q       chan heartbeat.Event
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
}

func (n *Node) initMembership() {
	n.hb = &membership{
		view: heartbeat.New(heartbeat.Config{
			Interval:     n.cfg.HeartbeatInterval,
			SuspectAfter: n.cfg.SuspectAfter,
			DeadAfter:    n.cfg.DeadAfter,
		}),
		changed: make(chan struct{}),
		now:     make(chan struct{}, 1),
	}
}

// beatSoon asks for a beat now: others learn of us without waiting an
// interval.
func (n *Node) beatSoon() {
	select {
	case n.hb.now <- struct{}{}:
	default:
	}
}

// heartbeatLoop beats and advances the view's clock.
func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(min(n.cfg.HeartbeatInterval/10, 100*time.Millisecond))
	defer tick.Stop()
	beat := time.NewTimer(n.cfg.HeartbeatInterval)
	defer beat.Stop()
	for {
		select {
		case <-n.done:
			return
		case now := <-tick.C:
			n.applyMemberEvents(func(v *heartbeat.View) []heartbeat.Event { return v.Tick(now) })
		case <-n.hb.now:
			n.sendBeat()
			beat.Reset(n.cfg.HeartbeatInterval)
		case <-beat.C:
			n.sendBeat()
			j := 0.9 + 0.2*mrand.Float64()
			beat.Reset(time.Duration(j * float64(n.cfg.HeartbeatInterval)))
		}
	}
}

// sendBeat posts one heartbeat and records it in our own view.
func (n *Node) sendBeat() {
	if n.current() == nil || n.sealed.Load() {
		return
	}
	n.hb.mu.Lock()
	n.hb.seq++
	seq := n.hb.seq
	n.hb.mu.Unlock()
	b := n.beat(seq)
	sentAt := time.Now()
	payload, err := heartbeat.Encode(b)
	if err != nil {
		n.log.Error("encoding heartbeat", "err", err)
		return
	}
	env := envelope.New(envelope.KindHeartbeat, n.sender(), n.cfg.Service, payload, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HeartbeatInterval)
	defer cancel()
	j, err := n.send(ctx, HeartbeatChannel(n.cfg.Namespace), env)
	if err != nil {
		n.log.Debug("heartbeat not sent", "err", err)
		return
	}
	sent := false
	select {
	case <-j.done:
		sent = j.err == nil // written by the writer before done closed
	case <-ctx.Done():
	}
	if sent {
		nick := n.Nick()
		n.applyMemberEvents(func(v *heartbeat.View) []heartbeat.Event { return v.Heartbeat(nick, b, time.Now()) })
		n.feedModes(false)
		// Others suspect us SuspectAfter intervals after this beat at the
		// earliest; our claims hold until a quarter interval before that.
		iv := n.cfg.HeartbeatInterval
		until := sentAt.Add(time.Duration(n.cfg.SuspectAfter*float64(iv)) - iv/4)
		for _, m := range n.modes() {
			m.session(until)
		}
	}
}

// beat describes this node now.
func (n *Node) beat(seq uint64) *heartbeat.Beat {
	b := &heartbeat.Beat{
		Service:        n.cfg.Service,
		Instance:       n.Instance(),
		Incarnation:    n.incarnation,
		Seq:            seq,
		IntervalMillis: uint32(n.cfg.HeartbeatInterval / time.Millisecond),
		Depends:        n.cfg.Depends,
	}
	b.Domains, b.DomainDepends = n.domains.beat()
	n.mu.Lock()
	queued, capacity := len(n.reqQueue), cap(n.reqQueue)
	for _, s := range n.subs {
		b.Subs = append(b.Subs, s.mode.announce())
		queued += len(s.q)
		capacity += cap(s.q)
	}
	n.mu.Unlock()
	slices.SortFunc(b.Subs, func(x, y heartbeat.Sub) int { return strings.Compare(x.Topic, y.Topic) })
	n.announceTalk(b) // status.go: the methods answered, the subscriptions kicked from
	if capacity > 0 {
		b.Load = float32(queued) / float32(capacity)
	}
	return b
}

// onBeat takes a heartbeat envelope from the heartbeat channel.
func (n *Node) onBeat(in *inbound) {
	if in.echo {
		return // our own beats enter the view when sent
	}
	b, err := heartbeat.Decode(in.env.Payload)
	if err == nil && (b.Service != in.env.Sender.Service || b.Instance != in.env.Sender.Instance) {
		err = fmt.Errorf("heartbeat of %s/%s sent by %s/%s", b.Service, b.Instance, in.env.Sender.Service, in.env.Sender.Instance)
	}
	if err != nil {
		n.stats.rejected.Add(1)
		n.countReject("malformed")
		n.log.Debug("bad heartbeat", "from", in.from, "err", err)
		return
	}
	n.applyMemberEvents(func(v *heartbeat.View) []heartbeat.Event { return v.Heartbeat(in.from, b, time.Now()) })
	n.feedModes(false)
}

// memberGone: the server says nick left the heartbeat channel or the server.
func (n *Node) memberGone(nick, reason string) {
	n.applyMemberEvents(func(v *heartbeat.View) []heartbeat.Event { return v.Gone(nick, reason, time.Now()) })
}

// applyMemberEvents runs f on the view and hands its events to watchers.
func (n *Node) applyMemberEvents(f func(*heartbeat.View) []heartbeat.Event) {
	n.hb.mu.Lock()
	evs := f(n.hb.view)
	if len(evs) > 0 {
		close(n.hb.changed)
		n.hb.changed = make(chan struct{})
	}
	watchers := n.hb.watchers
	n.hb.mu.Unlock()
	if len(evs) > 0 {
		n.feedModes(true)
	}
	n.noteSplits(evs) // netsplit.go
	for _, ev := range evs {
		n.log.Debug("member "+ev.Kind.String(), "member", ev.Member.ID(), "nick", ev.Member.Nick, "reason", ev.Reason)
		if ev.Kind == heartbeat.Left || ev.Kind == heartbeat.Suspected || ev.Kind == heartbeat.SplitAway {
			n.failPendingTargets(ev.Member.Nick)
		}
		for _, w := range watchers {
			select {
			case w.q <- ev:
			default:
				w.dropped.Add(1)
			}
		}
	}
}

func (n *Node) suspendMembership() { n.hb.mu.Lock(); n.hb.view.Suspend(); n.hb.mu.Unlock() }
func (n *Node) resumeMembership()  { n.hb.mu.Lock(); n.hb.view.Resume(time.Now()); n.hb.mu.Unlock() }

// Members returns the live (alive or suspect) instances of service as this
// node sees them, or of every service when service is "".
func (n *Node) Members(service string) []heartbeat.Member {
	n.hb.mu.Lock()
	defer n.hb.mu.Unlock()
	return n.hb.view.Members(service)
}

// AllMembers returns every member the node knows, recently dead ones
// included.
func (n *Node) AllMembers() []heartbeat.Member {
	n.hb.mu.Lock()
	defer n.hb.mu.Unlock()
	return n.hb.view.All()
}

// Dependencies returns the dependency graph the live members announce, and
// its cycles (nil when there are none).
func (n *Node) Dependencies() (graph map[string][]string, cycles [][]string) {
	g := heartbeat.Dependencies(n.Members(""))
	return g, heartbeat.Cycles(g)
}

// WatchMembers calls fn, from one goroutine and in order, for every change
// in the membership view (joined, suspected, recovered, restarted, left),
// until stop is called or the node closes. fn must not block for long: when
// 1024 events wait, newer ones are dropped.
func (n *Node) WatchMembers(fn func(heartbeat.Event)) (stop func()) {
	w := &memberWatcher{q: make(chan heartbeat.Event, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	n.hb.mu.Lock()
	n.hb.watchers = append(slices.Clone(n.hb.watchers), w)
	n.hb.mu.Unlock()
	go func() {
		defer close(w.done)
		for {
			select {
			case ev := <-w.q:
				fn(ev)
			case <-w.stop:
				return
			case <-n.done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.hb.mu.Lock()
			// Copy on write: applyMemberEvents iterates a snapshot of the
			// slice outside the lock.
			n.hb.watchers = slices.DeleteFunc(slices.Clone(n.hb.watchers), func(x *memberWatcher) bool { return x == w })
			n.hb.mu.Unlock()
			close(w.stop)
			<-w.done
		})
	}
}

// WaitFor blocks until every named service has a live instance, or ctx
// ends: the error then names the services still missing.
func (n *Node) WaitFor(ctx context.Context, services ...string) error {
	for {
		n.hb.mu.Lock()
		var missing []string
		for _, s := range services {
			if len(n.hb.view.Members(s)) == 0 {
				missing = append(missing, s)
			}
		}
		changed := n.hb.changed
		n.hb.mu.Unlock()
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

// WaitForDependencies waits for every service in Config.Depends. A
// dependency cycle among the live members is logged as a warning (beats do
// not wait for dependencies, so a cycle does not deadlock start-up, but it
// is usually a design mistake); Dependencies reports it too.
func (n *Node) WaitForDependencies(ctx context.Context) error {
	if err := n.WaitFor(ctx, n.cfg.Depends...); err != nil {
		return err
	}
	if _, cycles := n.Dependencies(); len(cycles) > 0 {
		n.log.Warn("dependency cycle among services", "cycles", cycles)
	}
	return nil
}

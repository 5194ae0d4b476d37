package mesh

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Observation is one PRIVMSG seen in an observed channel: a mesh line of any
// kind (events, claims, acks, heartbeats, ...), a fragment, a rejected line,
// or human chatter. Tools such as `meshbot tail` are built on it.
type Observation struct {
	Time    time.Time // the server's time tag, or the local receive time
	Channel string
	Topic   string
	From    string            // sender nick
	Tags    map[string]string // the line's tags as received
	Body    string            // the PRIVMSG text
	MsgID   string
	// Mesh is false for lines that are not mesh lines.
	Mesh bool
	// Envelope is the decoded envelope; nil for non-mesh lines, for a
	// fragment of an incomplete envelope, and for rejected lines.
	Envelope *envelope.Envelope
	// Err says why a mesh line was rejected.
	Err error
	// Carrier is the carrier of a mesh line; 0 for other lines and for a
	// line too malformed to tell.
	Carrier envelope.Carrier
	// Fragment is set for a fragment held for reassembly (a mesh line
	// with no Envelope and no Err): which fragment of which envelope.
	Fragment *envelope.Fragment
	// Fragments is how many fragment lines Envelope took, when this line
	// completed it; 0 when it came whole.
	Fragments int
	// Signature is what the node's decoder established about Envelope's
	// signature: SigVerified or SigUnsigned (a node checks every
	// signature); SigUnknown when there is no Envelope.
	Signature envelope.SigState
	// Part numbers the observations of one line: a batch (docs/PROTOCOL.md
	// §3.9) is observed once per envelope, Part 0 first. Tools that keep
	// lines (recorders) keep Part 0.
	Part int
	// Gap marks, for an observer made with ObserveGaps, that the
	// connection dropped: lines may be missing between the observation
	// before and the next one. It is not a line (only Time, Channel and
	// Topic are set).
	Gap bool
	// GapSince is, for a Gap after a netsplit (the network joined again),
	// when the lines missing from the other side started; zero for a gap
	// of this node's own connection (docs/PROTOCOL.md §7.10).
	GapSince time.Time

	synced chan struct{} // a Sync barrier, not a line: closed, never observed
}

// ObserveOption tunes one Observe.
type ObserveOption func(*Observer)

// ObserveGaps makes the observer deliver an Observation with Gap set
// where the connection dropped, in order with the lines around it (a
// recorder fills its record's hole from there).
func ObserveGaps() ObserveOption { return func(o *Observer) { o.gaps = true } }

// Observer delivers the Observations of one channel to a callback.
type Observer struct {
	n       *Node
	channel string
	q       chan Observation
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
	gaps    bool        // deliver Gap observations
	gapLost atomic.Bool // a Gap observation did not fit the queue: deliver it next
}

// observerQueue bounds the observations waiting for the callback; more are
// dropped and counted (an observer never slows the node down).
const observerQueue = 4096

// Observe joins topic's channel (system topics such as "_hb" included) and
// calls fn, from one goroutine, for every line seen there, decoded. It
// returns once the join is confirmed. fn must not block for long: when
// observerQueue lines wait, newer ones are dropped and counted.
func (n *Node) Observe(ctx context.Context, topic string, fn func(Observation), opts ...ObserveOption) (*Observer, error) {
	if n.sealed.Load() || n.closing.Load() {
		return nil, ErrClosed
	}
	if err := validName("topic", topic, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTopic, err)
	}
	o := &Observer{
		n:       n,
		channel: Channel(n.cfg.Namespace, topic),
		q:       make(chan Observation, observerQueue),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, opt := range opts {
		opt(o)
	}
	key := strings.ToLower(o.channel)
	n.mu.Lock()
	n.observers[key] = append(n.observers[key], o)
	n.mu.Unlock()
	go o.run(fn)
	if err := n.join(ctx, o.channel); err != nil {
		o.Stop()
		return nil, err
	}
	return o, nil
}

func (o *Observer) run(fn func(Observation)) {
	defer close(o.done)
	for {
		select {
		case ob := <-o.q:
			if ob.synced != nil {
				close(ob.synced)
				continue
			}
			if o.gapLost.Swap(false) && !ob.Gap {
				fn(o.gap(ob.Time))
			}
			fn(ob)
		case <-o.stop:
			return
		}
	}
}

func (o *Observer) gap(at time.Time) Observation {
	topic, _ := TopicOf(o.n.cfg.Namespace, o.channel)
	return Observation{Time: at, Channel: o.channel, Topic: topic, Gap: true}
}

// observeGaps: the connection dropped; observers that asked for gaps get
// one after the lines already queued.
func (n *Node) observeGaps(now time.Time) {
	n.mu.Lock()
	var gaps []*Observer
	for _, list := range n.observers {
		for _, o := range list {
			if o.gaps {
				gaps = append(gaps, o)
			}
		}
	}
	n.mu.Unlock()
	for _, o := range gaps {
		select {
		case o.q <- o.gap(now):
		default:
			o.gapLost.Store(true)
		}
	}
}

// Sync returns once fn has returned for every line the node handed to o
// before Sync was called, or with ctx's error, or ErrClosed once o stops.
// Lines are handed to observers as they are read, before the requests and
// events read after them are routed: a request handler that calls Sync
// answers after the observer took every channel line the server sent
// before the request (a recorder serving a replay).
func (o *Observer) Sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case o.q <- Observation{synced: done}:
	case <-o.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-o.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Dropped counts observations dropped because the callback was too slow.
func (o *Observer) Dropped() uint64 { return o.dropped.Load() }

// Stop ends the observation; fn is not called after Stop returns. The node
// stays in the channel while it has other uses for it.
func (o *Observer) Stop() {
	o.once.Do(func() {
		key := strings.ToLower(o.channel)
		o.n.mu.Lock()
		list := o.n.observers[key]
		for i, x := range list {
			if x == o {
				o.n.observers[key] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(o.n.observers[key]) == 0 {
			delete(o.n.observers, key)
		}
		o.n.mu.Unlock()
		close(o.stop)
		<-o.done
	})
}

// observe hands a line to the observers of its channel; on the event loop.
func (n *Node) observe(ob Observation) {
	n.mu.Lock()
	obs := n.observers[strings.ToLower(ob.Channel)]
	n.mu.Unlock()
	if len(obs) == 0 {
		return
	}
	ob.Topic, _ = TopicOf(n.cfg.Namespace, ob.Channel)
	for _, o := range obs {
		select {
		case o.q <- ob:
		default:
			o.dropped.Add(1)
		}
	}
}

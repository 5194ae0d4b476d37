package meshwatermill

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/meshbot/meshbot/mesh"
)

// How a topic's events reach its consumers. The node runs the handler of
// the topic's meshbot subscription on Concurrency workers; the handler
// turns the event into a Watermill message, hands it to one consumer that
// is not holding a message (a Subscribe call's channel, whichever reads
// first), and waits for its Ack or Nack. Ack returns nil: the event is
// done (with a consumer group the claim is acknowledged). Nack hands it
// out again (multicast) or returns an error (a group: the claim is
// nacked, and the group retries it). A consumer that goes away holding
// the message makes the handler hand it to another.
//
// A consumer's channel is closed only once no handler may send on it: a
// handler registers with the consumers it offers a message to (senders)
// and the consumer waits for them after it left the list.

// errNacked is the handler error of a Nacked message of a consumer group.
var errNacked = errors.New("meshwatermill: message nacked")

// topicSub is one topic of a Subscriber. subMu serializes starting and
// stopping its meshbot subscription (and the observer of
// SubscribeInitialize); it is held across those blocking calls, never by
// a handler. mu guards the consumers; a leaf lock.
type topicSub struct {
	s         *Subscriber
	topic     string // as Watermill names it
	meshTopic string

	subMu sync.Mutex
	sub   interface{ Unsubscribe(context.Context) error }
	obs   *mesh.Observer
	seen  lastSeen // the last event obs saw

	mu        sync.Mutex
	consumers []*consumer
	changed   chan struct{} // closed, and replaced, when consumers change
}

// consumer is one Subscribe call's channel.
type consumer struct {
	ctx     context.Context
	out     chan *message.Message
	gone    chan struct{}  // closed when the consumer leaves
	busy    int            // messages handed out, not settled (under topicSub.mu)
	left    bool           // under topicSub.mu
	senders sync.WaitGroup // handlers offering it a message
}

func newTopicSub(s *Subscriber, topic, meshTopic string) *topicSub {
	return &topicSub{s: s, topic: topic, meshTopic: meshTopic, changed: make(chan struct{})}
}

// startLocked subscribes the node to the topic unless it is subscribed.
func (ts *topicSub) startLocked(ctx context.Context) error {
	if ts.sub != nil {
		return nil
	}
	cfg := &ts.s.cfg
	opts := []mesh.SubOption{mesh.Concurrency(cfg.Concurrency)}
	if cfg.QueueLen > 0 {
		opts = append(opts, mesh.QueueLen(cfg.QueueLen))
	}
	if cfg.ConsumerGroup == "" {
		sub, err := ts.s.n.Subscribe(ctx, ts.meshTopic, ts.handle, opts...)
		if err != nil {
			return fmt.Errorf("meshwatermill: subscribing to %s: %w", ts.topic, err)
		}
		ts.sub = sub
		return nil
	}
	if err := ts.settleBeforeJoin(ctx); err != nil {
		return fmt.Errorf("meshwatermill: subscribing to %s: %w", ts.topic, err)
	}
	opts = append(opts, mesh.Group(cfg.ConsumerGroup))
	if cfg.RetryDelay > 0 {
		opts = append(opts, mesh.RetryDelay(cfg.RetryDelay))
	}
	if cfg.MaxAttempts > 0 {
		opts = append(opts, mesh.MaxAttempts(cfg.MaxAttempts))
	}
	if cfg.ClaimLease > 0 {
		opts = append(opts, mesh.ClaimLease(cfg.ClaimLease))
	}
	sub, err := ts.s.n.SubscribeAnycast(ctx, ts.meshTopic, ts.handle, opts...)
	if err != nil {
		return fmt.Errorf("meshwatermill: subscribing to %s in group %s: %w", ts.topic, cfg.ConsumerGroup, err)
	}
	ts.sub = sub
	return nil
}

// observeLocked joins the topic's channel without subscribing.
func (ts *topicSub) observeLocked(ctx context.Context) error {
	if ts.obs != nil {
		return nil
	}
	o, err := ts.s.n.Observe(ctx, ts.meshTopic, ts.seen.observe)
	if err != nil {
		return fmt.Errorf("meshwatermill: joining %s: %w", ts.topic, err)
	}
	ts.obs = o
	return nil
}

// stopLocked ends the meshbot subscription: handlers waiting for a
// consumer or an acknowledgement are cancelled, queued events dropped;
// it returns once no handler runs.
func (ts *topicSub) stopLocked() {
	if ts.sub != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no draining: nobody is left to take the events
		_ = ts.sub.Unsubscribe(ctx)
		ts.sub = nil
	}
	if ts.obs != nil {
		ts.obs.Stop()
		ts.obs = nil
	}
}

func (ts *topicSub) addConsumer(ctx context.Context) *consumer {
	c := &consumer{ctx: ctx, out: make(chan *message.Message), gone: make(chan struct{})}
	ts.mu.Lock()
	ts.consumers = append(ts.consumers, c)
	ts.changedLocked()
	ts.mu.Unlock()
	return c
}

// removeConsumer takes c out of the list, waits until no handler may send
// to it, and closes its channel.
func (ts *topicSub) removeConsumer(c *consumer) {
	ts.mu.Lock()
	for i, x := range ts.consumers {
		if x == c {
			ts.consumers = append(ts.consumers[:i:i], ts.consumers[i+1:]...)
			break
		}
	}
	c.left = true
	close(c.gone)
	ts.changedLocked()
	ts.mu.Unlock()
	c.senders.Wait()
	close(c.out)
}

func (ts *topicSub) consumerCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.consumers)
}

func (ts *topicSub) changedLocked() {
	close(ts.changed)
	ts.changed = make(chan struct{})
}

// handle is the meshbot handler of the topic.
func (ts *topicSub) handle(ctx context.Context, m *mesh.Message) error {
	r := decodeEvent(m)
	group := ts.s.cfg.ConsumerGroup != ""
	for {
		d, ok := ts.offer(ctx, &r)
		if !ok {
			// Closing or unsubscribing: the subscription's context ends
			// at once (stopLocked); returning then gives no result, so a
			// group's claim is released, not nacked.
			<-ctx.Done()
			return ctx.Err()
		}
		acked, nacked := d.wait(ctx)
		ts.settle(d.c)
		switch {
		case acked:
			return nil
		case nacked && group:
			return fmt.Errorf("%w: %s", errNacked, r.uuid)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		// Nacked (multicast), or the consumer left holding it: hand it
		// out again.
	}
}

// delivery is a message out with a consumer.
type delivery struct {
	c      *consumer
	msg    *message.Message
	cancel context.CancelFunc
}

// wait waits for the message's Ack or Nack, the consumer leaving, or ctx;
// it then cancels the message's context. An Ack that came first wins.
func (d *delivery) wait(ctx context.Context) (acked, nacked bool) {
	defer d.cancel()
	select {
	case <-d.msg.Acked():
		return true, false
	case <-d.msg.Nacked():
		return false, true
	case <-d.c.gone:
	case <-ctx.Done():
	}
	select {
	case <-d.msg.Acked():
		return true, false
	default:
		return false, false
	}
}

func (ts *topicSub) settle(c *consumer) {
	ts.mu.Lock()
	c.busy--
	ts.changedLocked()
	ts.mu.Unlock()
}

// Fixed cases of offer's select, before one send case per idle consumer.
const (
	caseCtx = iota
	caseChanged
	caseClosing
	caseSends
)

// offer hands a new message of r to one idle consumer, whichever reads
// first, and marks it busy. It returns false when ctx ends or the
// Subscriber closes first.
func (ts *topicSub) offer(ctx context.Context, r *received) (*delivery, bool) {
	for {
		ts.mu.Lock()
		var idle []*consumer
		for _, c := range ts.consumers {
			if c.busy == 0 && !c.left {
				c.senders.Add(1)
				idle = append(idle, c)
			}
		}
		changed := ts.changed
		ts.mu.Unlock()

		ds := make([]*delivery, len(idle))
		cases := make([]reflect.SelectCase, caseSends, caseSends+len(idle))
		cases[caseCtx] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}
		cases[caseChanged] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(changed)}
		cases[caseClosing] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ts.s.closeCtx.Done())}
		for i, c := range idle {
			mctx, cancel := context.WithCancel(context.WithValue(c.ctx, meshKey{}, r.m))
			msg := r.message()
			msg.SetContext(mctx)
			ds[i] = &delivery{c: c, msg: msg, cancel: cancel}
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectSend, Chan: reflect.ValueOf(c.out), Send: reflect.ValueOf(msg)})
		}
		chosen, _, _ := reflect.Select(cases)

		ts.mu.Lock()
		for i, c := range idle {
			if i == chosen-caseSends {
				c.busy++
			}
			c.senders.Done()
		}
		ts.mu.Unlock()
		for i, d := range ds {
			if i != chosen-caseSends {
				d.cancel()
			}
		}
		switch chosen {
		case caseCtx, caseClosing:
			return nil, false
		case caseChanged:
			continue
		}
		return ds[chosen-caseSends], true
	}
}

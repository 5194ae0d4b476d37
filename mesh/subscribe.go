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

// Message is a received event.
type Message struct {
	Topic   string
	ID      envelope.ID
	Payload []byte
	Headers envelope.Headers
	// Sender is the instance that published it; SentAt its clock.
	Sender envelope.Sender
	SentAt time.Time
	// ServerTime and MsgID come from the server's tags, when it sends them.
	ServerTime time.Time
	MsgID      string
	// From is the publisher's nick.
	From string
	// Envelope is the whole decoded envelope.
	Envelope *envelope.Envelope
	// Claim is set for anycast deliveries: the claim the handler holds.
	Claim *Claim

	// Set by a delivery mode that tracks its handlers (anycast): the
	// handler's context, and what to call when it returned.
	ctx    context.Context
	finish func(*Message, error)
}

// newMessage is the Message of an event received on topic's channel.
func newMessage(topic string, in *inbound) *Message {
	from, msgid := detach(in.from, in.msgid)
	return &Message{
		Topic:      topic,
		ID:         in.env.ID,
		Payload:    in.env.Payload,
		Headers:    in.env.Headers,
		Sender:     in.env.Sender,
		SentAt:     in.env.SentAt(),
		ServerTime: in.serverTime,
		MsgID:      msgid,
		From:       from,
		Envelope:   in.env,
	}
}

// detach returns copies of a line's nick and msgid, in one allocation.
// Both point into the received line's text, which a handler keeping the
// Message (or a group tracking the event's offset) would keep whole.
func detach(from, msgid string) (string, string) {
	s := from + msgid
	return s[:len(from)], s[len(from):]
}

// Handler processes one event. Its context is cancelled when the node closes
// and the drain deadline has passed (for anycast, also when the claim is
// lost). A returned error (or a panic) is counted and logged; multicast
// does not retry it, anycast nacks the event (see SubscribeAnycast).
type Handler func(ctx context.Context, m *Message) error

// SubOption configures a subscription. Concurrency and QueueLen apply to
// every subscription; the options of anycast.go only to anycast ones
// (Subscribe refuses them with ErrOption).
type SubOption func(*subOptions)

type subOptions struct {
	concurrency int
	queueLen    int
	// Anycast only; anycastOpts names those given, for Subscribe's error.
	anycastOpts []string
	group       string
	key         func(*Message) string
	lease       time.Duration
	maxAttempts int
	retry       time.Duration
	retain      time.Duration
	maxTracked  int
}

// anycastOnly marks an option that applies to anycast subscriptions only.
func (o *subOptions) anycastOnly(name string) { o.anycastOpts = append(o.anycastOpts, name) }

// Concurrency runs up to k handlers of the subscription at once (default 1).
// With k = 1 events are handled one by one in the order the server relayed
// them; with k > 1 that order is not kept.
func Concurrency(k int) SubOption { return func(o *subOptions) { o.concurrency = max(1, k) } }

// QueueLen bounds the events waiting for a handler (default
// Config.QueueLen). See Subscribe for what happens when it is full.
func QueueLen(n int) SubOption { return func(o *subOptions) { o.queueLen = max(1, n) } }

// subscription is what every delivery mode shares: the topic's channel,
// the handler with its bounded queue and workers, and the counters. Its
// exported methods are those of every subscription type (Subscription,
// AnycastSubscription).
type subscription struct {
	n       *Node
	topic   string
	channel string
	h       Handler
	mode    mode
	q       chan *Message
	stop    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	delivered, dropped, failed atomic.Uint64
}

// subscribe joins topic's channel with a subscription whose delivery mode
// newMode makes, and returns once the server confirmed the join.
func (n *Node) subscribe(ctx context.Context, topic string, h Handler, o *subOptions, newMode func(*subscription) (mode, error)) (*subscription, error) {
	if n.sealed.Load() || n.closing.Load() {
		return nil, ErrClosed
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrOption)
	}
	chanLen := 0
	if st := n.current(); st != nil {
		chanLen = st.chanLen
	}
	if err := ValidateTopic(n.cfg.Namespace, topic, chanLen); err != nil {
		return nil, err
	}
	s := &subscription{
		n:       n,
		topic:   topic,
		channel: Channel(n.cfg.Namespace, topic),
		h:       h,
		q:       make(chan *Message, o.queueLen),
		stop:    make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	m, err := newMode(s)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.mode = m
	key := strings.ToLower(s.channel)
	n.mu.Lock()
	if _, dup := n.subs[key]; dup {
		n.mu.Unlock()
		s.cancel()
		m.stopped()
		return nil, fmt.Errorf("%w: %s", ErrDuplicateSubscription, topic)
	}
	n.subs[key] = s
	n.mu.Unlock()
	for range o.concurrency {
		s.wg.Add(1)
		go s.work()
	}
	if err := n.join(ctx, s.channel); err != nil {
		n.mu.Lock()
		delete(n.subs, key)
		n.mu.Unlock()
		s.drain(context.Background())
		return nil, err
	}
	m.joined()
	return s, nil
}

// options applies opts over the node's defaults.
func (n *Node) options(opts []SubOption) subOptions {
	o := subOptions{concurrency: 1, queueLen: n.cfg.QueueLen}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// join joins channel and waits for the server's confirmation, across
// reconnects, until ctx ends.
func (n *Node) join(ctx context.Context, channel string) error {
	for {
		if err := n.waitConnected(ctx); err != nil {
			return err
		}
		w := n.expectJoin(channel)
		select {
		case <-w:
			return nil // in it already: no JOIN to send
		default:
		}
		n.sendJoin(channel) // join.go: with the channel key
		select {
		case <-w:
			return n.joinResult(channel) // a refusal is an error at once
		case <-ctx.Done():
			return fmt.Errorf("mesh: joining %s: %w", channel, context.Cause(ctx))
		case <-n.done:
			return ErrClosed
		case <-time.After(n.cfg.ConnectTimeout):
			// Lost with a connection; try again on the next one.
		}
	}
}

// Topic returns the subscribed topic.
func (s *subscription) Topic() string { return s.topic }

// Delivered, Dropped and Failed count events handed to the handler, events
// dropped because the queue was full or the node closed, and handler errors.
func (s *subscription) Delivered() uint64 { return s.delivered.Load() }
func (s *subscription) Dropped() uint64   { return s.dropped.Load() }
func (s *subscription) Failed() uint64    { return s.failed.Load() }

// Pending returns how many events wait in the queue.
func (s *subscription) Pending() int { return len(s.q) }

// Unsubscribe leaves the topic's channel and drains the subscription: queued
// events are handled until ctx ends, then handlers are cancelled.
func (s *subscription) Unsubscribe(ctx context.Context) error {
	key := strings.ToLower(s.channel)
	s.n.mu.Lock()
	if s.n.subs[key] == s {
		delete(s.n.subs, key)
	}
	s.n.mu.Unlock()
	if s.n.client.IsConnected() {
		s.n.client.Cmd.Part(s.channel)
	}
	return s.drain(ctx)
}

// drain stops the workers after they handled what is queued, or cancels
// them when ctx ends first. It returns once no handler runs.
func (s *subscription) drain(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		s.mode.stopping()
		close(s.stop)
		if !drainWorkers(ctx, &s.wg, s.cancel) {
			err = fmt.Errorf("mesh: draining %s: %w", s.topic, context.Cause(ctx))
		}
		s.mode.stopped()
	})
	return err
}

func (s *subscription) work() {
	defer s.wg.Done()
	for {
		select {
		case m := <-s.q:
			s.handle(m)
		case <-s.stop:
			for {
				select {
				case m := <-s.q:
					if s.ctx.Err() != nil {
						s.dropped.Add(1)
						continue
					}
					s.handle(m)
				default:
					return
				}
			}
		}
	}
}

func (s *subscription) handle(m *Message) {
	ctx := s.ctx
	if m.ctx != nil {
		ctx = m.ctx
		if ctx.Err() != nil { // the claim was lost while the event waited
			m.finish(m, ctx.Err())
			return
		}
	}
	start := time.Now()
	err := s.call(ctx, m)
	if m.finish != nil {
		m.finish(m, err)
	}
	s.n.stats.observe(time.Since(start))
	s.delivered.Add(1)
	s.n.stats.delivered.Add(1)
	if err != nil {
		s.failed.Add(1)
		s.n.stats.handlerErrors.Add(1)
		s.n.log.Warn("handler failed", "topic", s.topic, "id", m.ID.Short(), "err", err)
	}
}

func (s *subscription) call(ctx context.Context, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("mesh: handler panicked: %v", r)
		}
	}()
	return s.h(ctx, m)
}

// deliverOwn hands a confirmed own envelope to the subscription of its
// channel on servers without echo-message (with it, the echo is routed
// instead).
func (n *Node) deliverOwn(j *job) {
	if !strings.HasPrefix(j.target, "#") {
		return
	}
	env := j.env
	if j.plain != nil {
		env = j.plain // what the node sent, in clear
	}
	n.route(&inbound{env: env, from: n.Nick(), target: j.target, echo: true})
}

// offer queues m for a handler without blocking: a full queue drops it
// and counts the drop.
func (s *subscription) offer(m *Message) {
	select {
	case s.q <- m:
	default:
		if s.dropped.Add(1)%1000 == 1 {
			s.n.log.Warn(ErrSlowConsumer.Error(), "topic", s.topic, "dropped", s.dropped.Load(), "queue", cap(s.q))
		}
		s.n.stats.dropped.Add(1)
	}
}

// drainWorkers waits for wg until ctx ends, then cancels the workers'
// context and waits for them to return. It reports whether they finished
// in time. cancel is called in either case (their work is over).
func drainWorkers(ctx context.Context, wg *sync.WaitGroup, cancel context.CancelFunc) (inTime bool) {
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	defer cancel()
	select {
	case <-finished:
		return true
	case <-ctx.Done():
		cancel()
		<-finished
		return false
	}
}

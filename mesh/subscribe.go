package mesh

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/claims"
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

	ctx context.Context // an anycast claim's context
}

// Handler processes one event. Its context is cancelled when the node closes
// and the drain deadline has passed. A returned error (or a panic) is
// counted and logged; for multicast subscriptions the event is not retried.
type Handler func(ctx context.Context, m *Message) error

// SubOption configures a subscription.
type SubOption func(*subOptions)

type subOptions struct {
	concurrency int
	queueLen    int
	anycast     bool
	group       string
	key         func(*Message) string
	lease       time.Duration
	maxAttempts int
	retry       time.Duration
}

// Concurrency runs up to k handlers of the subscription at once (default 1).
// With k = 1 events are handled one by one in the order the server relayed
// them; with k > 1 that order is not kept.
func Concurrency(k int) SubOption { return func(o *subOptions) { o.concurrency = max(1, k) } }

// QueueLen bounds the events waiting for a handler (default
// Config.QueueLen). See Subscribe for what happens when it is full.
func QueueLen(n int) SubOption { return func(o *subOptions) { o.queueLen = max(1, n) } }

// Multicast delivers every event to every instance of the subscribing
// service. It is the default.
func Multicast() SubOption { return func(*subOptions) {} }

// Subscription is a node's subscription to one topic.
type Subscription struct {
	n       *Node
	topic   string
	channel string
	h       Handler
	q       chan *Message
	stop    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	any     *anycast // nil for multicast
	catch   *catchUp // multicast with Config.History: what was delivered

	delivered, dropped, failed atomic.Uint64
}

// Subscribe joins topic's channel and runs h for every event published on
// it. It returns once the server has confirmed the join, so every event
// published after that reaches h.
//
// Overflow policy: events wait for a handler in a bounded queue. When the
// queue is full, the newest event is dropped and counted (Dropped, and the
// node's Stats), and ErrSlowConsumer is logged: the connection's reader
// never blocks on a handler, so a slow handler can never make the server
// drop the bot. Size QueueLen and Concurrency for the load.
func (n *Node) Subscribe(ctx context.Context, topic string, h Handler, opts ...SubOption) (*Subscription, error) {
	if n.sealed.Load() || n.closing.Load() {
		return nil, ErrClosed
	}
	chanLen := 0
	if st := n.current(); st != nil {
		chanLen = st.chanLen
	}
	if err := ValidateTopic(n.cfg.Namespace, topic, chanLen); err != nil {
		return nil, err
	}
	o := subOptions{concurrency: 1, queueLen: n.cfg.QueueLen}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Subscription{
		n:       n,
		topic:   topic,
		channel: Channel(n.cfg.Namespace, topic),
		h:       h,
		q:       make(chan *Message, o.queueLen),
		stop:    make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if o.anycast {
		if o.group == "" {
			o.group = n.cfg.Service
		}
		if err := ValidateGroup(o.group); err != nil {
			s.cancel()
			return nil, err
		}
		s.any = newAnycast(n, s, &o)
	}
	key := strings.ToLower(s.channel)
	n.mu.Lock()
	if s.any == nil && n.cfg.History != nil {
		s.catch = newCatchUp()
	}
	if _, dup := n.subs[key]; dup {
		n.mu.Unlock()
		s.cancel()
		return nil, fmt.Errorf("%w: %s", ErrDuplicateSubscription, topic)
	}
	n.subs[key] = s
	n.mu.Unlock()
	for range o.concurrency {
		s.wg.Add(1)
		go s.work()
	}
	if s.any != nil {
		go s.any.run()
	}
	if err := n.join(ctx, s.channel); err != nil {
		n.mu.Lock()
		delete(n.subs, key)
		n.mu.Unlock()
		s.drain(context.Background())
		return nil, err
	}
	if a := s.any; a != nil {
		// Announce the group now; claim once everyone has heard us and we
		// them (a heartbeat interval and a bit), and once the group's
		// recent history is replayed into the core, when there is history.
		n.beatSoon()
		warm := time.After(n.cfg.HeartbeatInterval * 6 / 5)
		b := n.cfg.History
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if b != nil {
				a.resume(b, time.Now().Add(-n.cfg.ResumeWindow))
			}
			select {
			case <-warm:
			case <-s.ctx.Done():
				return
			}
			a.input(func(c *claims.Core, now time.Time) []claims.Action { return c.SetReady(true, now) })
		}()
	}
	return s, nil
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
		n.client.Cmd.Join(channel)
		select {
		case <-w:
			return nil
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
func (s *Subscription) Topic() string { return s.topic }

// Delivered, Dropped and Failed count events handed to the handler, events
// dropped because the queue was full or the node closed, and handler errors.
func (s *Subscription) Delivered() uint64 { return s.delivered.Load() }
func (s *Subscription) Dropped() uint64   { return s.dropped.Load() }
func (s *Subscription) Failed() uint64    { return s.failed.Load() }

// Pending returns how many events wait in the queue.
func (s *Subscription) Pending() int { return len(s.q) }

// Unsubscribe leaves the topic's channel and drains the subscription: queued
// events are handled until ctx ends, then handlers are cancelled.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
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
func (s *Subscription) drain(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		if a := s.any; a != nil {
			a.input(func(c *claims.Core, now time.Time) []claims.Action { return c.SetReady(false, now) })
		}
		close(s.stop)
		if !drainWorkers(ctx, &s.wg, s.cancel) {
			err = fmt.Errorf("mesh: draining %s: %w", s.topic, context.Cause(ctx))
		}
		if s.any != nil {
			s.any.stop()
		}
	})
	return err
}

func (s *Subscription) work() {
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

func (s *Subscription) handle(m *Message) {
	ctx := s.ctx
	if m.Claim != nil {
		ctx = m.ctx
		if ctx.Err() != nil { // the claim was lost while the event waited
			s.any.finished(m, ctx.Err())
			return
		}
	}
	start := time.Now()
	err := s.call(ctx, m)
	if m.Claim != nil {
		s.any.finished(m, err)
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

func (s *Subscription) call(ctx context.Context, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("mesh: handler panicked: %v", r)
		}
	}()
	return s.h(ctx, m)
}

// deliver queues an event for the subscription of its channel. It runs on
// the event loop and never blocks.
func (n *Node) deliver(in *inbound) {
	n.mu.Lock()
	s := n.subs[strings.ToLower(in.target)]
	n.mu.Unlock()
	if s == nil {
		n.stats.unrouted.Add(1)
		return
	}
	m := &Message{
		Topic:      s.topic,
		ID:         in.env.ID,
		Payload:    in.env.Payload,
		Headers:    in.env.Headers,
		Sender:     in.env.Sender,
		SentAt:     in.env.SentAt(),
		ServerTime: in.serverTime,
		MsgID:      in.msgid,
		From:       in.from,
		Envelope:   in.env,
	}
	if s.any != nil {
		s.any.event(m)
		return
	}
	if s.catch != nil {
		at := in.serverTime
		if at.IsZero() {
			at = time.Now()
		}
		if !s.catch.deliverOnce(m.ID, at) {
			return // delivered by a backfill already
		}
	}
	s.offer(m)
}

// deliverOwn hands a confirmed own event to the node's own subscription on
// servers without echo-message (with it, the echo is delivered instead).
func (n *Node) deliverOwn(j *job) {
	in := &inbound{env: j.env, from: n.Nick(), target: j.target, echo: true}
	switch j.env.Kind {
	case envelope.KindEvent:
		n.deliver(in)
	case envelope.KindClaim, envelope.KindAck, envelope.KindNack, envelope.KindDeadLetter,
		envelope.KindHistoryClaim, envelope.KindHistoryAck, envelope.KindHistoryReject:
		n.claimLine(in)
	}
}

// claimLine hands a claims-protocol line to the anycast subscription of its
// channel and group, if we have one.
func (n *Node) claimLine(in *inbound) {
	n.mu.Lock()
	s := n.subs[strings.ToLower(in.target)]
	n.mu.Unlock()
	if s != nil && s.any != nil && s.any.group == in.env.Topic {
		s.any.line(in)
	}
}

func (s *Subscription) offer(m *Message) {
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

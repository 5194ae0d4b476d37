package meshwatermill

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/meshbot/meshbot/mesh"
)

// ErrSubscriberClosed is returned by Subscribe and SubscribeInitialize
// after Close.
var ErrSubscriberClosed = errors.New("meshwatermill: subscriber closed")

// SubscriberConfig configures a Subscriber; every zero field takes its
// default.
type SubscriberConfig struct {
	// ConsumerGroup, when set, makes every subscription an anycast
	// subscription of this group (mesh.SubscribeAnycast): each message
	// is handled by exactly one Subscriber of the group. Empty: multicast
	// (mesh.Subscribe), every Subscriber gets every message. A name that
	// is not a valid group (mesh.ValidateGroup) is rewritten like a topic
	// (DefaultTopicMapper).
	ConsumerGroup string
	// TopicMapper maps Watermill topics to meshbot topics
	// (DefaultTopicMapper of the node's namespace). Publishers and
	// subscribers of a topic must map it alike.
	TopicMapper TopicMapper
	// QueueLen bounds, per topic, the events waiting for a consumer
	// (default: the node's mesh.Config.QueueLen). With multicast, events
	// that arrive when QueueLen wait are dropped (the newest;
	// mesh.ErrSlowConsumer is logged). With a consumer group it bounds
	// the claims this member holds; the events it owns beyond it wait
	// (a member at its bound claims again only after the claims
	// protocol's claim timeout, 2 s: keep it well above what a burst
	// brings).
	QueueLen int
	// Concurrency is how many messages of one topic may be out with
	// consumers, unacknowledged, at once (1: one by one, in the order the
	// server relayed them).
	Concurrency int
	// RetryDelay is how long a Nacked message of a consumer group waits
	// before it is delivered again, to any member (1 s). With multicast
	// a Nacked message is delivered again at once, to this Subscriber.
	RetryDelay time.Duration
	// MaxAttempts is how many Nacks (or lost claims) a message of a
	// consumer group takes before it goes to the dead-letter topic
	// <topic>._dead (5; see mesh.MaxAttempts).
	MaxAttempts int
	// ClaimLease is the lease of a consumer group's claims (mesh.ClaimLease;
	// 30 s): it bounds how long a member that stopped renewing it blocks a
	// message. It is renewed while the message is out with a consumer.
	ClaimLease time.Duration
	// ResumeSettle is how long a consumer group's Subscribe waits, when
	// the node has mesh.Config.History, before it joins the group and
	// the node replays the group's record (500 ms): a history recorder
	// commits what it receives in groups (every 100 ms by default), and
	// the replay finds only what is committed. When the Subscriber
	// initialized the topic (SubscribeInitialize), it waits instead until
	// the record holds the last event it saw on the topic (20 s at most).
	// A message published during Subscribe, while no member of the group
	// is subscribed, may be found only by the group's next resume.
	// Negative: no wait.
	ResumeSettle time.Duration
	// CloseNode makes Close close the node too (ConnectSubscriber sets it).
	CloseNode bool
	// CloseTimeout bounds closing the node when CloseNode is set (30 s).
	CloseTimeout time.Duration
	// Logger receives the subscriber's few logs (nil: none).
	Logger watermill.LoggerAdapter
}

func (c SubscriberConfig) withDefaults(n *mesh.Node) SubscriberConfig {
	if c.TopicMapper == nil {
		c.TopicMapper = DefaultTopicMapper(n.Namespace())
	}
	if c.ConsumerGroup != "" {
		c.ConsumerGroup = groupName(c.ConsumerGroup)
		if c.ResumeSettle == 0 {
			c.ResumeSettle = defaultResumeSettle
		}
	}
	c.Concurrency = max(c.Concurrency, 1)
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	return c
}

// defaultResumeSettle is SubscriberConfig.ResumeSettle's default: a few
// of the recorder store's group-commit intervals.
const defaultResumeSettle = 500 * time.Millisecond

// Subscriber is a Watermill message.Subscriber over one meshbot node: a
// meshbot subscription per topic, multicast or, with a consumer group,
// anycast. Subscribe calls for the same topic share that subscription:
// each message goes to one of them (the node is one member of the topic).
// It is safe for concurrent use.
type Subscriber struct {
	n   *mesh.Node
	cfg SubscriberConfig

	mu     sync.Mutex
	closed bool
	topics map[string]*topicSub
	// closeCtx ends when Close starts: handlers stop offering messages,
	// consumers leave, Subscribe calls in progress are cut short.
	closeCtx context.Context
	closeNow context.CancelFunc

	watchers sync.WaitGroup // one per consumer
	once     sync.Once
	closeErr error
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber on node n. The node stays the
// caller's unless cfg.CloseNode is set; it must not subscribe to the
// Subscriber's topics itself (mesh.ErrDuplicateSubscription).
func NewSubscriber(n *mesh.Node, cfg SubscriberConfig) (*Subscriber, error) {
	if n == nil {
		return nil, errors.New("meshwatermill: nil node")
	}
	cfg = cfg.withDefaults(n)
	if cfg.ConsumerGroup != "" {
		if err := mesh.ValidateGroup(cfg.ConsumerGroup); err != nil {
			return nil, fmt.Errorf("meshwatermill: consumer group: %w", err)
		}
	}
	s := &Subscriber{n: n, cfg: cfg, topics: map[string]*topicSub{}}
	s.closeCtx, s.closeNow = context.WithCancel(context.Background())
	return s, nil
}

// ConnectSubscriber connects a node with mcfg and returns a Subscriber
// that owns it: Close closes it.
func ConnectSubscriber(ctx context.Context, mcfg mesh.Config, cfg SubscriberConfig) (*Subscriber, error) {
	n, err := mesh.Connect(ctx, mcfg)
	if err != nil {
		return nil, err
	}
	cfg.CloseNode = true
	s, err := NewSubscriber(n, cfg)
	if err != nil {
		_ = n.Close(ctx)
		return nil, err
	}
	return s, nil
}

// Node returns the subscriber's node.
func (s *Subscriber) Node() *mesh.Node { return s.n }

// topic returns the state of topic, made on first use;
// ErrSubscriberClosed after Close.
func (s *Subscriber) topic(topic string) (*topicSub, error) {
	t, err := mapTopic(s.cfg.TopicMapper, s.n.Namespace(), topic)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSubscriberClosed
	}
	ts := s.topics[t]
	if ts == nil {
		ts = newTopicSub(s, topic, t)
		s.topics[t] = ts
	}
	return ts, nil
}

func (s *Subscriber) isClosed() bool {
	select {
	case <-s.closeCtx.Done():
		return true
	default:
		return false
	}
}

// Subscribe returns the messages of topic. The channel is closed when ctx
// ends or the Subscriber closes. Each message must be acknowledged: Ack
// completes it, Nack delivers it again (with a consumer group after
// RetryDelay, to any member, and to the dead-letter topic after
// MaxAttempts); a message left unacknowledged when its subscription ends
// is delivered again too. A message's context carries ctx's values and
// is cancelled once it is acknowledged or the subscription ends;
// MeshMessage gives the meshbot event behind it.
//
// Multicast: the first Subscribe (or SubscribeInitialize) of a topic
// subscribes the node; events published from then on are delivered,
// waiting (up to QueueLen) for a consumer. With a consumer group the node
// is a member of the group while the topic has consumers; with
// mesh.Config.History it first completes what the group left undone
// (mesh.SubscribeAnycast).
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	ts, err := s.topic(topic)
	if err != nil {
		return nil, err
	}
	ts.subMu.Lock()
	defer ts.subMu.Unlock()
	if s.isClosed() {
		return nil, ErrSubscriberClosed
	}
	// The subscribe call holds the topic's lock, which Close needs:
	// Close cuts it short.
	sctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closeCtx, cancel)
	err = ts.startLocked(sctx)
	stop()
	cancel()
	if err != nil {
		return nil, err
	}
	c := ts.addConsumer(ctx)
	s.watchers.Add(1)
	go s.watch(ts, c)
	return c.out, nil
}

// watch closes c when its context ends or the Subscriber closes; a topic
// of a consumer group left without consumers leaves the group (its claims
// go to the other members).
func (s *Subscriber) watch(ts *topicSub, c *consumer) {
	defer s.watchers.Done()
	select {
	case <-c.ctx.Done():
	case <-s.closeCtx.Done():
	}
	ts.removeConsumer(c)
	if s.cfg.ConsumerGroup == "" || s.isClosed() {
		return
	}
	ts.subMu.Lock()
	defer ts.subMu.Unlock()
	if ts.consumerCount() == 0 {
		ts.stopLocked()
	}
}

// SubscribeInitialize prepares topic before anything is published on it.
// Multicast: the node subscribes now, so the messages published from now
// on wait for the first Subscribe (up to QueueLen). With a consumer group
// the node only joins the topic's channel, which creates it on the
// server so that a history recorder finds it (its scan interval later:
// publish once it records the topic); the group's messages are then
// replayed from the record by the first Subscribe of each member.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ts, err := s.topic(topic)
	if err != nil {
		return err
	}
	ts.subMu.Lock()
	defer ts.subMu.Unlock()
	if s.isClosed() {
		return ErrSubscriberClosed
	}
	ctx, cancel := context.WithTimeout(s.closeCtx, initTimeout)
	defer cancel()
	if s.cfg.ConsumerGroup != "" {
		return ts.observeLocked(ctx)
	}
	return ts.startLocked(ctx)
}

// initTimeout bounds SubscribeInitialize.
const initTimeout = 30 * time.Second

// Close closes every subscription: when it returns, every output channel
// is closed, no message is sent on one any more, every delivered message's
// context is cancelled, and the node runs no handler of this Subscriber.
// A message handed out and not acknowledged goes to another member of a
// consumer group; a multicast Subscriber drops it, and what waits in its
// queues. Subscribe fails afterwards. The node is closed when the
// Subscriber owns it. Close is safe to call twice.
func (s *Subscriber) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.closeNow()
		topics := make([]*topicSub, 0, len(s.topics))
		for _, ts := range s.topics {
			topics = append(topics, ts)
		}
		s.mu.Unlock()
		for _, ts := range topics {
			ts.subMu.Lock()
			ts.stopLocked()
			ts.subMu.Unlock()
		}
		s.watchers.Wait()
		if s.cfg.CloseNode {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
			defer cancel()
			s.closeErr = s.n.Close(ctx)
		}
	})
	return s.closeErr
}

// meshKey is the context key of the meshbot event behind a message.
type meshKey struct{}

// MeshMessage returns the meshbot event a received message was made from
// (sender, envelope id, server time, and for a consumer group the claim
// whose Token fences side effects: mesh.Claim).
func MeshMessage(msg *message.Message) (*mesh.Message, bool) {
	m, ok := msg.Context().Value(meshKey{}).(*mesh.Message)
	return m, ok
}

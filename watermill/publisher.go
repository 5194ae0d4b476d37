package meshwatermill

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/meshbot/meshbot/mesh"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("meshwatermill: publisher closed")

// PublisherConfig configures a Publisher; every zero field takes its
// default.
type PublisherConfig struct {
	// TopicMapper maps Watermill topics to meshbot topics
	// (DefaultTopicMapper of the node's namespace).
	TopicMapper TopicMapper
	// PublishTimeout bounds how long one Publish waits for the server to
	// confirm its messages, reconnects included (30 s). Messages' own
	// contexts are not used: Watermill does not tie a publish to them.
	PublishTimeout time.Duration
	// CloseNode makes Close close the node too (ConnectPublisher sets it).
	CloseNode bool
	// CloseTimeout bounds Close: waiting for running Publish calls, then
	// closing the node when CloseNode is set (30 s).
	CloseTimeout time.Duration
}

func (c PublisherConfig) withDefaults(n *mesh.Node) PublisherConfig {
	if c.TopicMapper == nil {
		c.TopicMapper = DefaultTopicMapper(n.Namespace())
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 30 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 30 * time.Second
	}
	return c
}

// Publisher is a Watermill message.Publisher that publishes each message
// as a meshbot event (see ContentType for the framing). It is safe for
// concurrent use.
type Publisher struct {
	n   *mesh.Node
	cfg PublisherConfig

	ctx    context.Context // ends when Close gives up waiting
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	once     sync.Once
	closeErr error
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher on node n. The node stays the
// caller's unless cfg.CloseNode is set.
func NewPublisher(n *mesh.Node, cfg PublisherConfig) (*Publisher, error) {
	if n == nil {
		return nil, errors.New("meshwatermill: nil node")
	}
	p := &Publisher{n: n, cfg: cfg.withDefaults(n)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// ConnectPublisher connects a node with mcfg and returns a Publisher that
// owns it: Close closes it.
func ConnectPublisher(ctx context.Context, mcfg mesh.Config, cfg PublisherConfig) (*Publisher, error) {
	n, err := mesh.Connect(ctx, mcfg)
	if err != nil {
		return nil, err
	}
	cfg.CloseNode = true
	return NewPublisher(n, cfg)
}

// Node returns the publisher's node.
func (p *Publisher) Node() *mesh.Node { return p.n }

// Publish publishes messages on topic, in order, and returns once the
// server has accepted every one of them (a publish confirm), or with the
// first error. The messages are written pipelined: when one fails, the
// ones after it may have been sent. A message's UUID, metadata and
// payload reach subscribers unchanged; its "traceparent" metadata, when
// set, is also copied to the event's traceparent header.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPublisherClosed
	}
	p.inflight.Add(1)
	p.mu.Unlock()
	defer p.inflight.Done()

	t, err := mapTopic(p.cfg.TopicMapper, p.n.Namespace(), topic)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.PublishTimeout)
	defer cancel()
	futures := make([]*mesh.PubFuture, 0, len(messages))
	var errs []error
	for _, msg := range messages {
		payload, err := marshalFrame(msg)
		if err != nil {
			errs = append(errs, fmt.Errorf("meshwatermill: message %s: %w", msg.UUID, err))
			break
		}
		opts := []mesh.PublishOption{mesh.WithContentType(ContentType)}
		if tp := msg.Metadata.Get(MetadataTraceparent); tp != "" {
			opts = append(opts, mesh.WithTraceparent(tp))
		}
		f, err := p.n.PublishAsync(ctx, t, payload, opts...)
		if err != nil {
			errs = append(errs, fmt.Errorf("meshwatermill: publishing %s on %s: %w", msg.UUID, t, err))
			break
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("meshwatermill: publishing %s on %s: %w", messages[i].UUID, t, err))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// Close refuses new publishes, waits for the running ones to be
// confirmed (until CloseTimeout, then cancels them), and closes the node
// when the publisher owns it. It is safe to call twice.
func (p *Publisher) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CloseTimeout)
		defer cancel()
		done := make(chan struct{})
		go func() { p.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			p.cancel()
			<-done
			p.closeErr = fmt.Errorf("meshwatermill: publisher closed with publishes unconfirmed after %s", p.cfg.CloseTimeout)
		}
		p.cancel()
		if p.cfg.CloseNode {
			if err := p.n.Close(ctx); err != nil && p.closeErr == nil {
				p.closeErr = err
			}
		}
	})
	return p.closeErr
}

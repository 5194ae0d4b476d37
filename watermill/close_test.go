package meshwatermill_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/meshbot/meshbot/mesh"
	meshwatermill "github.com/meshbot/meshbot/watermill"
)

// modes runs fn once with multicast subscribers and once with a consumer
// group, each on an env of its own.
func modes(t *testing.T, fn func(t *testing.T, e *env, group string)) {
	for _, mode := range []struct{ name, ns, group string }{
		{"multicast", "wmc", ""},
		{"group", "wmcg", "workers"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, mode.ns, 4)
			e.sub.RetryDelay = 100 * time.Millisecond
			fn(t, e, mode.group)
		})
	}
}

// subscriber makes a Subscriber on a pool node the test keeps (Close
// leaves it open), so the test can look at the node afterwards.
func (e *env) subscriber(t *testing.T, group string) (*meshwatermill.Subscriber, func(string) error) {
	t.Helper()
	n, err := e.pool.get()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.sub
	cfg.ConsumerGroup = group
	s, err := meshwatermill.NewSubscriber(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	initialize := s.SubscribeInitialize
	if group != "" {
		rs := &recordedSubscriber{Subscriber: s, e: e}
		initialize = rs.SubscribeInitialize
	}
	return s, initialize
}

func (e *env) publisher(t *testing.T) *meshwatermill.Publisher {
	t.Helper()
	n, err := e.pool.get()
	if err != nil {
		t.Fatal(err)
	}
	p, err := meshwatermill.NewPublisher(n, meshwatermill.PublisherConfig{CloseNode: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func newMessages(n int) []*message.Message {
	out := make([]*message.Message, n)
	for i := range out {
		out[i] = message.NewMessage(watermill.NewUUID(), []byte("x"))
	}
	return out
}

func receive(t *testing.T, ch <-chan *message.Message, within time.Duration) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(within):
		t.Fatalf("no message in %s", within)
		return nil
	}
}

// TestClose: once Close returns, the output channel is closed, the
// message a consumer held has its context cancelled, the node holds no
// subscription of the Subscriber any more (it may subscribe to the topic
// itself), Close again is fine and Subscribe fails. With a consumer
// group, the message the closed member held unacknowledged goes to
// another member.
func TestClose(t *testing.T) {
	modes(t, func(t *testing.T, e *env, group string) {
		topic := "close-" + watermill.NewUUID()
		pub := e.publisher(t)
		a, initA := e.subscriber(t, group)
		if err := initA(topic); err != nil {
			t.Fatal(err)
		}
		msgs := newMessages(20)
		if err := pub.Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
		ch, err := a.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		held := receive(t, ch, 15*time.Second)

		var other <-chan *message.Message
		if group != "" {
			b, _ := e.subscriber(t, group)
			if other, err = b.Subscribe(context.Background(), topic); err != nil {
				t.Fatal(err)
			}
		}

		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case m, ok := <-ch:
			if ok {
				t.Fatalf("message %s received after Close returned", m.UUID)
			}
		default:
			t.Fatal("output channel not closed when Close returned")
		}
		select {
		case <-held.Context().Done():
		default:
			t.Fatal("the held message's context is not cancelled after Close")
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := a.Subscribe(context.Background(), topic); !errors.Is(err, meshwatermill.ErrSubscriberClosed) {
			t.Fatalf("Subscribe after Close: %v, want ErrSubscriberClosed", err)
		}
		if err := a.SubscribeInitialize(topic); !errors.Is(err, meshwatermill.ErrSubscriberClosed) {
			t.Fatalf("SubscribeInitialize after Close: %v, want ErrSubscriberClosed", err)
		}
		mt, err := a.DeadLetterTopic(topic) // the mapped topic, plus "._dead"
		if err != nil {
			t.Fatal(err)
		}
		mt = mt[:len(mt)-len("._dead")]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := a.Node().Subscribe(ctx, mt, func(context.Context, *mesh.Message) error { return nil })
		if err != nil {
			t.Fatalf("the node still holds the topic after Close: %v", err)
		}
		_ = s.Unsubscribe(ctx)

		if group != "" {
			// The claim of the held message was released: the other
			// member gets it (among the rest).
			seen := map[string]bool{}
			deadline := time.After(20 * time.Second)
			for !seen[held.UUID] {
				select {
				case m := <-other:
					seen[m.UUID] = true
					m.Ack()
				case <-deadline:
					t.Fatalf("the message the closed member held did not reach the other member (it got %d)", len(seen))
				}
			}
		}
	})
}

// TestRouterNoHandlerAfterClose: a router's handlers over the Pub/Sub
// never start once Router.Close returned, while messages keep coming.
func TestRouterNoHandlerAfterClose(t *testing.T) {
	modes(t, func(t *testing.T, e *env, group string) {
		topic := "router-" + watermill.NewUUID()
		pub := e.publisher(t)
		sub, initialize := e.subscriber(t, group)
		if err := initialize(topic); err != nil {
			t.Fatal(err)
		}
		r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		r.AddMiddleware(middleware.Recoverer)
		var handled, afterClose atomic.Int64
		var closed atomic.Bool
		r.AddNoPublisherHandler("count", topic, sub, func(m *message.Message) error {
			if closed.Load() {
				afterClose.Add(1)
			}
			handled.Add(1)
			time.Sleep(time.Millisecond)
			return nil
		})
		go func() { _ = r.Run(context.Background()) }()
		<-r.Running()

		stop := make(chan struct{})
		published := make(chan struct{})
		go func() {
			defer close(published)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = pub.Publish(topic, newMessages(5)...)
				time.Sleep(2 * time.Millisecond)
			}
		}()
		deadline := time.Now().Add(20 * time.Second)
		for handled.Load() < 50 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d messages handled in 20 s", handled.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("router Close: %v", err)
		}
		closed.Store(true)
		at := handled.Load()
		time.Sleep(500 * time.Millisecond) // publishing goes on
		close(stop)
		<-published
		if n := afterClose.Load(); n > 0 {
			t.Fatalf("%d handlers ran after Router.Close returned", n)
		}
		if n := handled.Load(); n != at {
			t.Fatalf("%d messages handled after Router.Close returned", n-at)
		}
	})
}

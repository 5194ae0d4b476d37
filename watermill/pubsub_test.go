package meshwatermill_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/meshbot/meshbot/mesh"
	meshwatermill "github.com/meshbot/meshbot/watermill"
)

// TestSameTopicTwice: two Subscribe calls of one Subscriber on one topic
// share its messages, each message going to one of them; when one
// subscription ends, the other gets the rest.
func TestSameTopicTwice(t *testing.T) {
	modes(t, func(t *testing.T, e *env, group string) {
		topic := "twice-" + watermill.NewUUID()
		pub := e.publisher(t)
		sub, initialize := e.subscriber(t, group)
		if err := initialize(topic); err != nil {
			t.Fatal(err)
		}
		ctx1, cancel1 := context.WithCancel(context.Background())
		defer cancel1()
		ch1, err := sub.Subscribe(ctx1, topic)
		if err != nil {
			t.Fatal(err)
		}
		ch2, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		first := newMessages(100)
		if err := pub.Publish(topic, first...); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		from := [2]int{}
		for len(seen) < len(first) {
			select {
			case m := <-ch1:
				seen[m.UUID]++
				from[0]++
				m.Ack()
			case m := <-ch2:
				seen[m.UUID]++
				from[1]++
				m.Ack()
			case <-time.After(15 * time.Second):
				t.Fatalf("got %d of %d", len(seen), len(first))
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("message %s delivered %d times", id, n)
			}
		}
		if from[0] == 0 || from[1] == 0 {
			t.Fatalf("one subscription got nothing: %v", from)
		}

		cancel1()
		for range ch1 { // closed once the subscription ended
		}
		second := newMessages(20)
		if err := pub.Publish(topic, second...); err != nil {
			t.Fatal(err)
		}
		for range second {
			m := receive(t, ch2, 15*time.Second)
			if seen[m.UUID] > 0 {
				t.Fatalf("message %s delivered twice", m.UUID)
			}
			seen[m.UUID]++
			m.Ack()
		}
	})
}

// TestMessages: UUID, metadata and payload travel unchanged, the
// traceparent metadata also becomes the event's header, MeshMessage
// gives the event (and a group's claim); events of plain meshbot
// publishers arrive with their envelope id as UUID, and a frame that
// does not decode arrives as it is, marked.
func TestMessages(t *testing.T) {
	modes(t, func(t *testing.T, e *env, group string) {
		topic := "messages-" + watermill.NewUUID()
		pub := e.publisher(t)
		sub, initialize := e.subscriber(t, group)
		if err := initialize(topic); err != nil {
			t.Fatal(err)
		}
		tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		msg := message.NewMessage(watermill.NewUUID(), []byte{0, 1, 2, 0xff})
		msg.Metadata.Set("a", "1")
		msg.Metadata.Set("empty", "")
		msg.Metadata.Set("traceparent", tp)
		if err := pub.Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
		mt, err := sub.DeadLetterTopic(topic)
		if err != nil {
			t.Fatal(err)
		}
		mt = strings.TrimSuffix(mt, "._dead")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		plain, err := pub.Node().Publish(ctx, mt, []byte("plain"), mesh.WithContentType("text/plain"))
		if err != nil {
			t.Fatal(err)
		}
		bad, err := pub.Node().Publish(ctx, mt, []byte{0xff, 0x00}, mesh.WithContentType(meshwatermill.ContentType))
		if err != nil {
			t.Fatal(err)
		}

		ch, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]*message.Message{}
		for range 3 {
			m := receive(t, ch, 15*time.Second)
			got[m.UUID] = m
			m.Ack()
		}
		m := got[msg.UUID]
		if m == nil {
			t.Fatalf("the Watermill message is missing; got %v", keys(got))
		}
		if string(m.Payload) != string(msg.Payload) || len(m.Metadata) != 3 || m.Metadata["a"] != "1" || m.Metadata["traceparent"] != tp {
			t.Fatalf("got payload %q metadata %v, want %q %v", m.Payload, m.Metadata, msg.Payload, msg.Metadata)
		}
		if v, ok := m.Metadata["empty"]; !ok || v != "" {
			t.Fatalf("empty metadata value lost: %v", m.Metadata)
		}
		mm, ok := meshwatermill.MeshMessage(m)
		if !ok || mm.Headers.Traceparent != tp || mm.Headers.ContentType != meshwatermill.ContentType || mm.Sender.Instance != pub.Node().Instance() {
			t.Fatalf("MeshMessage: %v %+v", ok, mm)
		}
		if (group != "") != (mm.Claim != nil) {
			t.Fatalf("claim %+v for group %q", mm.Claim, group)
		}
		if mm.Claim != nil && (mm.Claim.Token == 0 || mm.Claim.Group != group) {
			t.Fatalf("claim %+v", mm.Claim)
		}

		p := got[plain.ID.String()]
		if p == nil || string(p.Payload) != "plain" || p.Metadata[meshwatermill.MetadataContentType] != "text/plain" {
			t.Fatalf("plain event: %+v (got %v)", p, keys(got))
		}
		b := got[bad.ID.String()]
		if b == nil || string(b.Payload) != "\xff\x00" || b.Metadata[meshwatermill.MetadataFrameError] == "" {
			t.Fatalf("bad frame: %+v", b)
		}
	})
}

func keys(m map[string]*message.Message) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDeadLetter: a consumer group gives a message up after MaxAttempts
// Nacks and publishes it on the dead-letter topic, where a Subscriber
// reads it back.
func TestDeadLetter(t *testing.T) {
	e := newEnv(t, "wmd", 4)
	e.sub.RetryDelay = 50 * time.Millisecond
	e.sub.MaxAttempts = 3
	topic := "dead-" + watermill.NewUUID()
	pub := e.publisher(t)
	sub, initialize := e.subscriber(t, "workers")
	if err := initialize(topic); err != nil {
		t.Fatal(err)
	}
	watcher, _ := e.subscriber(t, "")
	deadTopic, err := sub.DeadLetterTopic(topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.SubscribeInitialize(deadTopic); err != nil {
		t.Fatal(err)
	}
	dead, err := watcher.Subscribe(context.Background(), deadTopic)
	if err != nil {
		t.Fatal(err)
	}
	poison := message.NewMessage(watermill.NewUUID(), []byte("poison"))
	poison.Metadata.Set("k", "v")
	if err := pub.Publish(topic, poison); err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := receive(t, ch, 15*time.Second)
		if m.UUID != poison.UUID {
			t.Fatalf("attempt %d: got %s", i+1, m.UUID)
		}
		m.Nack()
	}
	d := receive(t, dead, 20*time.Second)
	d.Ack()
	dl, err := meshwatermill.DecodeDeadLetter(d)
	if err != nil {
		t.Fatal(err)
	}
	if dl.Message.UUID != poison.UUID || string(dl.Message.Payload) != "poison" || dl.Message.Metadata["k"] != "v" ||
		dl.Group != "workers" || dl.Attempts != 3 || len(dl.Reasons) == 0 {
		t.Fatalf("dead letter %+v (message %+v)", dl, dl.Message)
	}
	select {
	case m := <-ch:
		t.Fatalf("message %s delivered again after it was dead-lettered", m.UUID)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := meshwatermill.DecodeDeadLetter(poison); err == nil {
		t.Fatal("DecodeDeadLetter accepted a plain message")
	}
}

// TestTopicErrors: a TopicMapper that yields an invalid meshbot topic
// fails Publish and Subscribe with mesh.ErrInvalidTopic.
func TestTopicErrors(t *testing.T) {
	e := newEnv(t, "wmt", 4)
	n, err := e.pool.get()
	if err != nil {
		t.Fatal(err)
	}
	bad := func(string) string { return "Not Valid" }
	pub, err := meshwatermill.NewPublisher(n, meshwatermill.PublisherConfig{TopicMapper: bad})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := meshwatermill.NewSubscriber(n, meshwatermill.SubscriberConfig{TopicMapper: bad, CloseNode: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	defer pub.Close()
	if err := pub.Publish("x", newMessages(1)...); !errors.Is(err, mesh.ErrInvalidTopic) {
		t.Fatalf("Publish: %v", err)
	}
	if _, err := sub.Subscribe(context.Background(), "x"); !errors.Is(err, mesh.ErrInvalidTopic) {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("x", newMessages(1)...); !errors.Is(err, meshwatermill.ErrPublisherClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

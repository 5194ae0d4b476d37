package mesh_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestJoinTooManyChannels: on a server that lets a client into three
// channels, a node in its heartbeat channel and two topics is refused a
// third topic (405): Subscribe and Publish fail with a JoinError rather
// than wait, the node keeps working in its channels, and a topic it left
// makes room for another.
func TestJoinTooManyChannels(t *testing.T) {
	t.Parallel()
	srv := ircdtest.StartWith(t, ircdtest.Spec(t), ircd.Options{MaxChannels: 3})
	n := connect(t, testConfig(srv, "many"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	col := newCollector()
	if _, err := n.Subscribe(ctx, "a", col.handle); err != nil {
		t.Fatal(err)
	}
	b, err := n.Subscribe(ctx, "b", newCollector().handle)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(op string, err error, topic string) {
		t.Helper()
		var je *mesh.JoinError
		if !errors.Is(err, mesh.ErrJoinRefused) || !errors.As(err, &je) || je.Numeric != "405" || je.Channel != mesh.Channel("t", topic) {
			t.Fatalf("%s %s with three channels: %v, want a JoinError 405", op, topic, err)
		}
		t.Logf("%s %s: %v", op, topic, err)
	}
	_, err = n.Subscribe(ctx, "c", newCollector().handle)
	refused("subscribe", err, "c")
	_, err = n.Publish(ctx, "d", []byte("x"))
	refused("publish", err, "d")

	if _, err := n.Publish(ctx, "a", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, 1, 10*time.Second)
	if err := b.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Subscribe(ctx, "c", newCollector().handle); err != nil {
		t.Fatalf("subscribe c after leaving b: %v", err)
	}
}

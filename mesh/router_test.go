package mesh_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestSubscriptionKinds: Subscribe is multicast and refuses the options
// that only make sense for anycast, naming them; SubscribeAnycast takes
// them; one node cannot subscribe twice to a topic, whatever the mode.
func TestSubscriptionKinds(t *testing.T) {
	srv := ircdtest.Start(t)
	n := connect(t, testConfig(srv, "kinds"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := func(context.Context, *mesh.Message) error { return nil }
	_, err := n.Subscribe(ctx, "jobs", h, mesh.Concurrency(2), mesh.ByKey(func(*mesh.Message) string { return "" }), mesh.MaxAttempts(2))
	if !errors.Is(err, mesh.ErrOption) || !strings.Contains(err.Error(), "ByKey, MaxAttempts") {
		t.Fatalf("Subscribe with anycast options: %v, want ErrOption naming ByKey and MaxAttempts", err)
	}
	if _, err := n.Subscribe(ctx, "jobs", nil); !errors.Is(err, mesh.ErrOption) {
		t.Fatalf("Subscribe with a nil handler: %v", err)
	}
	a, err := n.SubscribeAnycast(ctx, "jobs", h, mesh.Group("crew"), mesh.ByKey(func(*mesh.Message) string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	if a.Group() != "crew" || a.Topic() != "jobs" {
		t.Fatalf("group %q topic %q", a.Group(), a.Topic())
	}
	if _, err := n.Subscribe(ctx, "jobs", h); !errors.Is(err, mesh.ErrDuplicateSubscription) {
		t.Fatalf("a multicast subscription beside an anycast one on the same node: %v", err)
	}
	if _, err := n.SubscribeAnycast(ctx, "bad", h, mesh.Group("no spaces")); err == nil {
		t.Fatal("an invalid group was accepted")
	}
	if err := a.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := n.Subscribe(ctx, "jobs", h)
	if err != nil {
		t.Fatalf("subscribing again after Unsubscribe: %v", err)
	}
	_ = m.Unsubscribe(ctx)
}

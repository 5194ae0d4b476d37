package mesh_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

func TestTopicsListsTheNamespace(t *testing.T) {
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "pub"), testConfig(srv, "lister"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := nodes[0].Publish(ctx, "orders.created", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Subscribe(ctx, "payments", newCollector().handle); err != nil {
		t.Fatal(err)
	}
	other := testConfig(srv, "elsewhere")
	other.Namespace = "other"
	if _, err := connect(t, other).Publish(ctx, "secret", []byte("x")); err != nil {
		t.Fatal(err)
	}
	topics, err := nodes[1].Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"_hb", "orders.created", "payments"} {
		if !slices.Contains(topics, want) {
			t.Errorf("topics %v lack %s", topics, want)
		}
	}
	if slices.Contains(topics, "secret") {
		t.Errorf("topics %v include another namespace's", topics)
	}
}

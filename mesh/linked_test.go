package mesh_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestAcrossLinkedServers runs a mesh over two linked InspIRCd servers:
// the publisher and a responder on one, subscribers and the caller on the
// other. Events cross the link exactly once and in order; requests find
// their responder on the other server.
func TestAcrossLinkedServers(t *testing.T) {
	t.Parallel()
	a, b := ircdtest.StartLinked(t)
	nodes := connectAll(t,
		testConfig(a, "orders"), testConfig(a, "pricing"),
		testConfig(b, "audit"), testConfig(b, "audit"), testConfig(b, "shop"))
	pub, pricing, subs, shop := nodes[0], nodes[1], nodes[2:4], nodes[4]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cols := []*collector{newCollector(), newCollector()}
	for i, n := range subs {
		if _, err := n.Subscribe(ctx, "orders", cols[i].handle); err != nil {
			t.Fatal(err)
		}
	}
	// The subscribers' joins must have crossed the link before publishing.
	waitPresent(t, pub, "audit", 2)
	const events = 500
	for i := range events {
		f, err := pub.PublishAsync(ctx, "orders", []byte(fmt.Sprintf("e-%03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if i == events-1 {
			if _, err := f.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, c := range cols {
		c.waitFor(t, events, 30*time.Second)
		c.mu.Lock()
		for j, m := range c.got {
			if want := fmt.Sprintf("e-%03d", j); string(m.Payload) != want {
				t.Fatalf("subscriber %d: event %d is %q, want %q", i, j, m.Payload, want)
			}
		}
		c.mu.Unlock()
	}

	pricing.Handle("quote", func(context.Context, *mesh.Request) ([]byte, error) { return []byte("42"), nil })
	waitPresent(t, shop, "pricing", 1)
	out, err := shop.Request(ctx, "pricing", "quote", []byte("apple"))
	if err != nil || string(out) != "42" {
		t.Fatalf("request across the link: %q %v", out, err)
	}
}

package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// testConfig is a node config for srv with timings suited to tests. The
// keep-alive timeout stays at the default's 6 s: a loaded machine (the
// race detector, signatures, other packages' tests) can stall the server
// or the node for seconds, and a connection dropped for that is a
// reconnect the test did not ask for (released claims, a second handler
// run). Tests of a silent server set their own.
func testConfig(srv *ircd.Server, service string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server = srv.Addr()
	cfg.Namespace = "t"
	cfg.Service = service
	cfg.KeepAlive = 500 * time.Millisecond
	cfg.KeepAliveTimeout = 6 * time.Second
	cfg.ReconnectMin = 50 * time.Millisecond
	cfg.ReconnectMax = 500 * time.Millisecond
	return cfg
}

func connect(t *testing.T, cfg mesh.Config) *mesh.Node { return meshtest.Connect(t, cfg) }

// forEachMode runs fn in every trust mode (meshtest.ForEachMode), the
// modes in parallel: fn must start a server of its own, or keep to a
// namespace of the mode's on a shared one (modeConfig).
func forEachMode(t *testing.T, fn func(t *testing.T, m *meshtest.Mode)) {
	t.Helper()
	meshtest.ForEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		t.Parallel()
		fn(t, m)
	})
}

func connectAll(t *testing.T, cfgs ...mesh.Config) []*mesh.Node {
	return meshtest.ConnectAll(t, cfgs...)
}

// collector records the events a subscription receives.
type collector struct {
	mu   sync.Mutex
	got  []*mesh.Message
	seen map[string]int
	cond chan struct{}
}

func newCollector() *collector {
	return &collector{seen: map[string]int{}, cond: make(chan struct{}, 1)}
}

func (c *collector) handle(_ context.Context, m *mesh.Message) error {
	c.mu.Lock()
	c.got = append(c.got, m)
	c.seen[string(m.Payload)]++
	c.mu.Unlock()
	select {
	case c.cond <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// waitFor waits until the collector holds n events or the timeout passes.
func (c *collector) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for c.len() < n {
		select {
		case <-c.cond:
		case <-deadline:
			t.Fatalf("got %d events, want %d", c.len(), n)
		}
	}
}

func TestPublishSubscribeExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	const subscribers, events = 3, 1000
	cfgs := []mesh.Config{testConfig(srv, "orders")}
	for range subscribers {
		cfgs = append(cfgs, testConfig(srv, "audit"))
	}
	nodes := connectAll(t, cfgs...)
	pub := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cols := make([]*collector, subscribers)
	for i, n := range nodes[1:] {
		cols[i] = newCollector()
		if _, err := n.Subscribe(ctx, "orders.created", cols[i].handle); err != nil {
			t.Fatal(err)
		}
	}
	var futures []*mesh.PubFuture
	for i := range events {
		f, err := pub.PublishAsync(ctx, "orders.created", []byte(fmt.Sprintf("order-%04d", i)))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for i, c := range cols {
		c.waitFor(t, events, 30*time.Second)
		time.Sleep(100 * time.Millisecond) // let any duplicate arrive
		c.mu.Lock()
		if len(c.got) != events {
			t.Errorf("subscriber %d got %d events, want %d", i, len(c.got), events)
		}
		for j, m := range c.got {
			if want := fmt.Sprintf("order-%04d", j); string(m.Payload) != want {
				t.Fatalf("subscriber %d event %d is %q, want %q", i, j, m.Payload, want)
			}
			if m.Sender.Service != "orders" || m.Topic != "orders.created" {
				t.Fatalf("event %d: sender %+v topic %q", j, m.Sender, m.Topic)
			}
		}
		c.mu.Unlock()
	}
}

func TestLargePayload(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "blobs"), testConfig(srv, "sink"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newCollector()
	if _, err := nodes[1].Subscribe(ctx, "blobs", c.handle); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 256<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	ack, err := nodes[0].Publish(ctx, "blobs", payload)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Lines < 2 {
		t.Fatalf("256 KiB in %d lines", ack.Lines)
	}
	c.waitFor(t, 1, 30*time.Second)
	if !bytes.Equal(c.got[0].Payload, payload) {
		t.Fatal("payload corrupted")
	}
	t.Logf("256 KiB payload in %d lines", ack.Lines)
}

package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestSlowConsumer: a handler that cannot keep up overflows its bounded
// queue; the newest events are dropped and counted, the connection stays up
// and another subscription on the same node still gets everything.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "src"), testConfig(srv, "sink"))
	pub, sink := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release := make(chan struct{})
	var slowGot atomic.Int64
	slow, err := sink.Subscribe(ctx, "slow", func(ctx context.Context, _ *mesh.Message) error {
		slowGot.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, mesh.QueueLen(5))
	if err != nil {
		t.Fatal(err)
	}
	fast := newCollector()
	if _, err := sink.Subscribe(ctx, "fast", fast.handle); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if _, err := pub.Publish(ctx, "slow", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, "fast", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	fast.waitFor(t, n, 10*time.Second)
	waitUntil(t, 5*time.Second, "the overflow to be counted", func() bool {
		return slow.Dropped()+uint64(slow.Pending())+uint64(slowGot.Load()) == n
	})
	close(release)
	// 1 in the handler + 5 queued; the rest dropped.
	if slow.Dropped() != n-6 || sink.Stats().Dropped != n-6 {
		t.Errorf("dropped %d (stats %d), want %d", slow.Dropped(), sink.Stats().Dropped, n-6)
	}
	if !sink.Connected() || sink.Stats().Reconnects != 0 {
		t.Error("the slow handler cost the connection")
	}
}

// TestCloseDrains: Close lets a running handler finish, handles what is
// queued, and no handler runs after Close returns; later calls are no-ops
// and the node refuses new work.
func TestCloseDrains(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "src"), testConfig(srv, "sink"))
	pub, sink := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var running, handled atomic.Int64
	var afterClose atomic.Bool
	var closed atomic.Bool
	started := make(chan struct{}, 10)
	sub, err := sink.Subscribe(ctx, "work", func(ctx context.Context, _ *mesh.Message) error {
		if closed.Load() {
			afterClose.Store(true)
		}
		running.Add(1)
		defer running.Add(-1)
		started <- struct{}{}
		time.Sleep(200 * time.Millisecond)
		handled.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := pub.Publish(ctx, "work", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	// One running, two queued: Close must finish all three.
	waitUntil(t, 5*time.Second, "two queued events", func() bool { return sub.Pending() == 2 })
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := sink.Close(cctx); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	if handled.Load() != 3 || running.Load() != 0 {
		t.Errorf("after Close: handled %d of 3, %d still running", handled.Load(), running.Load())
	}
	if err := sink.Close(cctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := sink.Publish(ctx, "work", nil); !errors.Is(err, mesh.ErrClosed) {
		t.Errorf("publish after Close: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if afterClose.Load() {
		t.Error("a handler ran after Close returned")
	}
}

// TestCloseDeadlineCancelsHandlers: a handler that outlives the drain
// deadline has its context cancelled, and Close still returns.
func TestCloseDeadlineCancelsHandlers(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "src"), testConfig(srv, "sink"))
	ctx := context.Background()
	started := make(chan struct{})
	var cancelled atomic.Bool
	if _, err := nodes[1].Subscribe(ctx, "stuck", func(ctx context.Context, _ *mesh.Message) error {
		close(started)
		<-ctx.Done()
		cancelled.Store(true)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Publish(ctx, "stuck", nil); err != nil {
		t.Fatal(err)
	}
	<-started
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := nodes[1].Close(cctx)
	if !errors.Is(err, context.DeadlineExceeded) || !cancelled.Load() {
		t.Fatalf("Close = %v, handler cancelled = %v", err, cancelled.Load())
	}
}

// TestNickCollision: a second instance with the same id picks another.
func TestNickCollision(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	cfg := testConfig(srv, "twin")
	cfg.Instance = "same"
	a := connect(t, cfg)
	// A fixed instance whose nick is taken is an error naming the nick,
	// never a node running under another nick (docs/PROTOCOL.md §4.4).
	_, err := mesh.Connect(context.Background(), cfg)
	if !errors.Is(err, mesh.ErrNickUnavailable) || !strings.Contains(err.Error(), "twin-same is in use") {
		t.Fatalf("second node with the same fixed instance: %v", err)
	}
	// Random instances pick another one while they register.
	cfg.Instance = ""
	b := connect(t, cfg)
	if a.Nick() == b.Nick() {
		t.Fatalf("nicks %s and %s", a.Nick(), b.Nick())
	}
	waitPresent(t, a, "twin", 2)
}

// TestConfigErrors: bad configuration is refused before connecting.
func TestConfigErrors(t *testing.T) {
	for name, mutate := range map[string]func(*mesh.Config){
		"no service":      func(c *mesh.Config) { c.Service = "" },
		"upper case":      func(c *mesh.Config) { c.Service = "Pricing" },
		"bad server":      func(c *mesh.Config) { c.Server = "localhost" },
		"namespace dot":   func(c *mesh.Config) { c.Namespace = "a.b" },
		"long nick":       func(c *mesh.Config) { c.Service = "a-very-long-service-name-indeed" },
		"keepalive order": func(c *mesh.Config) { c.KeepAlive, c.KeepAliveTimeout = 5*time.Second, time.Second },
		"signed, no keys": func(c *mesh.Config) { c.RequireSigned = true },
	} {
		cfg := mesh.DefaultConfig()
		cfg.Service = "svc"
		mutate(&cfg)
		_, err := mesh.Connect(context.Background(), cfg)
		if !errors.Is(err, mesh.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestConnectRefused: with nothing listening, Connect fails at once with the
// dial error, not after its timeout.
func TestConnectRefused(t *testing.T) {
	cfg := mesh.DefaultConfig()
	cfg.Server = meshtest.ClosedAddr(t)
	cfg.Service = "lonely"
	cfg.ConnectTimeout = 5 * time.Minute // a Connect that waited would take this long
	start := time.Now()
	_, err := mesh.Connect(context.Background(), cfg)
	if !errors.Is(err, mesh.ErrDisconnected) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("want a refused dial error, got %v", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("Connect took %s to report a refused connection", d)
	}
}

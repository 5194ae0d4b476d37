package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// waitUntil polls cond until it holds or the timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServerRestart kills the server under a running mesh and starts it
// again. Every node comes back by itself with its subscriptions; a publish
// made during the outage blocks and succeeds once the server is back (with
// a server msgid where the server echoes); no publish reports success for a
// line the server did not accept; delivery resumes.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	caps := ircdtest.Probe(t, srv)
	nodes := connectAll(t, testConfig(srv, "orders"), testConfig(srv, "audit"), testConfig(srv, "audit"))
	pub, subs := nodes[0], nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cols := []*collector{newCollector(), newCollector()}
	for i, n := range subs {
		if _, err := n.Subscribe(ctx, "orders", cols[i].handle); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if _, err := pub.Publish(ctx, "orders", []byte(fmt.Sprintf("before-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cols {
		c.waitFor(t, 50, 10*time.Second)
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "every node to notice the outage", func() bool {
		for _, n := range nodes {
			if n.Connected() {
				return false
			}
		}
		return true
	})

	// Publishes during the outage wait for the server.
	type result struct {
		ack mesh.PubAck
		err error
	}
	outage := make(chan result, 1)
	go func() {
		ack, err := pub.Publish(ctx, "orders", []byte("during"))
		outage <- result{ack, err}
	}()
	// So does a request: it waits for a connection across failed attempts
	// to reconnect, then goes out.
	for _, n := range subs { // both audit instances answer
		if err := n.Handle("ping", func(_ context.Context, q *mesh.Request) ([]byte, error) { return q.Payload, nil }); err != nil {
			t.Fatal(err)
		}
	}
	reqDone := make(chan error, 1)
	go func() {
		for {
			out, err := pub.Request(ctx, "audit", "ping", []byte("across"))
			if errors.Is(err, mesh.ErrNoResponders) && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond) // back before the responders
				continue
			}
			if err == nil && string(out) != "across" {
				err = fmt.Errorf("answer %q", out)
			}
			reqDone <- err
			return
		}
	}()
	shortCtx, shortCancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := pub.Publish(shortCtx, "orders", []byte("gives-up"))
	shortCancel()
	if err == nil {
		t.Fatal("a publish succeeded while the server was down")
	}
	select {
	case r := <-outage:
		t.Fatalf("publish returned during the outage: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}

	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "every node to reconnect", func() bool {
		for _, n := range nodes {
			if !n.Connected() {
				return false
			}
		}
		return true
	})
	select {
	case err := <-reqDone:
		if err != nil {
			t.Fatalf("request across the outage: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a request made during the outage still waits 20 s after every node reconnected")
	}
	r := <-outage
	if r.err != nil {
		t.Fatalf("publish across the outage: %v", r.err)
	}
	if caps.Has("echo-message") && caps.Has("message-tags") && r.ack.MsgID == "" {
		t.Fatal("publish confirmed without the server's msgid")
	}
	for _, n := range nodes {
		if n.Stats().Reconnects == 0 {
			t.Errorf("%s: no reconnect counted", n.Nick())
		}
	}

	// Delivery resumes: everything published now reaches both subscribers,
	// exactly once, in order.
	var mu sync.Mutex
	var acked []string
	for i := range 100 {
		p := fmt.Sprintf("after-%d", i)
		if _, err := pub.Publish(ctx, "orders", []byte(p)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		acked = append(acked, p)
		mu.Unlock()
	}
	for i, c := range cols {
		waitUntil(t, 10*time.Second, "events after the restart", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.seen["after-99"] == 1
		})
		c.mu.Lock()
		var after []string
		for _, m := range c.got {
			if p := string(m.Payload); len(p) > 6 && p[:6] == "after-" {
				after = append(after, p)
			}
		}
		for p, k := range c.seen {
			if k > 1 {
				t.Errorf("subscriber %d got %q %d times", i, p, k)
			}
		}
		c.mu.Unlock()
		if fmt.Sprint(after) != fmt.Sprint(acked) {
			t.Errorf("subscriber %d after the restart got %d events, want %d in order", i, len(after), len(acked))
		}
	}
}

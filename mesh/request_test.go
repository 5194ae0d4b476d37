package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

func TestRequestResponse(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "pricing"), testConfig(srv, "shop"))
	pricing, shop := nodes[0], nodes[1]
	pricing.Handle("quote", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		if string(r.Payload) == "" {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "empty item")
		}
		return []byte("price of " + string(r.Payload) + ": 42"), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shop.WaitFor(ctx, "pricing"); err != nil {
		t.Fatal(err)
	}

	out, err := shop.Request(ctx, "pricing", "quote", []byte("apple"))
	if err != nil || string(out) != "price of apple: 42" {
		t.Fatalf("got %q, %v", out, err)
	}

	_, err = shop.Request(ctx, "pricing", "quote", nil)
	var re *mesh.RemoteError
	if !errors.As(err, &re) || re.Code != mesh.CodeBadRequest || re.Service != "pricing" {
		t.Fatalf("want RemoteError 400, got %v", err)
	}

	_, err = shop.Request(ctx, "pricing", "nosuch", []byte("x"))
	if !errors.As(err, &re) || re.Code != mesh.CodeNoHandler {
		t.Fatalf("want RemoteError 404, got %v", err)
	}

	// Without a responder the request fails at once, not at its deadline.
	long, longCancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer longCancel()
	start := time.Now()
	_, err = shop.Request(long, "billing", "quote", []byte("x"))
	if !errors.Is(err, mesh.ErrNoResponders) {
		t.Fatalf("want ErrNoResponders, got %v", err)
	}
	if time.Since(start) > time.Minute {
		t.Errorf("no-responder request took %s; it must not wait for its deadline", time.Since(start))
	}
}

func TestRequestDeadline(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "slow"), testConfig(srv, "caller"))
	var cancelled atomic.Bool
	nodes[0].Handle("wait", func(ctx context.Context, _ *mesh.Request) ([]byte, error) {
		<-ctx.Done()
		cancelled.Store(true)
		return nil, ctx.Err()
	})
	waitPresent(t, nodes[1], "slow", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := nodes[1].Request(ctx, "slow", "wait", nil)
	// The caller's deadline and the handler's are one instant: on a loaded
	// machine the caller's timer may fire after the handler's answer (504,
	// its context's deadline) arrived, and either says the deadline passed.
	var re *mesh.RemoteError
	if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &re) && re.Code == mesh.CodeDeadline) {
		t.Fatalf("want deadline exceeded (or the handler's 504), got %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !cancelled.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !cancelled.Load() {
		t.Fatal("the handler's context did not carry the caller's deadline")
	}
}

// TestRequestFailover: two responders; one dies abruptly (its socket is
// closed without QUIT, as when its process is killed) in the middle of the
// run. Every request is still answered.
func TestRequestFailover(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "echo"), testConfig(srv, "echo"), testConfig(srv, "client"))
	var served [2]atomic.Int64
	for i, n := range nodes[:2] {
		n.Handle("echo", func(_ context.Context, r *mesh.Request) ([]byte, error) {
			served[i].Add(1)
			time.Sleep(2 * time.Millisecond)
			return r.Payload, nil
		})
	}
	client := nodes[2]
	waitPresent(t, client, "echo", 2)
	const requests = 300
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	sem := make(chan struct{}, 8)
	for i := range requests {
		if i == requests/3 {
			mesh.Crash(nodes[0])
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			want := fmt.Sprintf("req-%d", i)
			out, err := client.Request(ctx, "echo", "echo", []byte(want))
			if err == nil && string(out) != want {
				err = fmt.Errorf("request %d answered %q", i, out)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var msgs []string
	for err := range errs {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) > 0 {
		t.Fatalf("%d of %d requests failed: %s", len(msgs), requests, strings.Join(msgs[:min(5, len(msgs))], "; "))
	}
	if served[0].Load() == 0 || served[1].Load() == 0 {
		t.Errorf("served %d and %d: both responders should have worked", served[0].Load(), served[1].Load())
	}
	t.Logf("served: %d by the crashed one, %d by the survivor; retries %d", served[0].Load(), served[1].Load(), client.Stats().RequestRetries)
}

// waitPresent waits until n sees count live instances of service.
func waitPresent(t *testing.T, n *mesh.Node, service string, count int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(n.Members(service)) < count {
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %v, want %d live instances of %s", n.Nick(), n.Members(service), count, service)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

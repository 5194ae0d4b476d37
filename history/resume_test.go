package history_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestAnycastGroupResumes: a whole anycast group is stopped while 2,000
// events are published; when its members start again they replay the
// group's history and complete every one of those events exactly once,
// and none of the events completed before the stop runs again.
func TestAnycastGroupResumes(t *testing.T) {
	srv := ircdtest.Start(t)
	rec, _ := startRecorder(t, srv)
	pub := meshtest.Connect(t, nodeConfig(srv, "jobs"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var mu sync.Mutex
	runs := map[string]int{}
	handler := func(_ context.Context, m *mesh.Message) error {
		mu.Lock()
		runs[string(m.Payload)]++
		mu.Unlock()
		return nil
	}
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(runs)
	}
	waitDistinct := func(n int, what string) {
		deadline := time.Now().Add(60 * time.Second)
		for distinct() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d distinct events handled, want %d", what, distinct(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	startGroup := func() []*mesh.Node {
		var cfgs []mesh.Config
		for i := range 3 {
			cfg := nodeConfig(srv, "workers")
			cfg.Instance = fmt.Sprintf("w%d", i)
			cfgs = append(cfgs, cfg)
		}
		nodes := meshtest.ConnectAll(t, cfgs...)
		for _, n := range nodes {
			n.SetBackfiller(history.NewBackfiller(n, nil))
			if _, err := n.Subscribe(ctx, "jobs.todo", handler, mesh.Anycast()); err != nil {
				t.Fatal(err)
			}
		}
		return nodes
	}
	publish := func(prefix string, n int) {
		var last *mesh.PubFuture
		for i := range n {
			f, err := pub.PublishAsync(ctx, "jobs.todo", []byte(fmt.Sprintf("%s-%04d", prefix, i)))
			if err != nil {
				t.Fatal(err)
			}
			last = f
		}
		if _, err := last.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}

	group := startGroup()
	waitTopic(t, rec, "jobs.todo")
	time.Sleep(1500 * time.Millisecond) // the group is ready
	publish("before", 200)
	waitDistinct(200, "before the stop")
	time.Sleep(500 * time.Millisecond) // the last acks are out
	for _, n := range group {
		if err := n.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	publish("away", 2000)
	time.Sleep(300 * time.Millisecond) // the recorder commits

	startGroup()
	waitDistinct(2200, "after the restart")
	time.Sleep(time.Second) // a second run would show by now
	mu.Lock()
	defer mu.Unlock()
	for p, n := range runs {
		if n != 1 {
			t.Errorf("%s handled %d times", p, n)
		}
	}
	if len(runs) != 2200 {
		t.Errorf("%d distinct events handled, want 2200", len(runs))
	}
}

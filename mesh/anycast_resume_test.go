package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// failingHistory is a history source whose first replays fail (a recorder
// restarting) and whose record is empty afterwards.
type failingHistory struct{ fails atomic.Int32 }

func (h *failingHistory) Replay(context.Context, *mesh.Node, string, time.Time, func(mesh.Recorded) error) (mesh.ReplayCount, error) {
	if h.fails.Add(-1) >= 0 {
		return mesh.ReplayCount{}, errors.New("the recorder is restarting")
	}
	return mesh.ReplayCount{}, nil
}

func (h *failingHistory) Committed(context.Context, *mesh.Node, string, string) (envelope.Offset, error) {
	return envelope.Offset{}, nil
}

// TestAnycastResumeFails: an anycast member whose history replay fails
// when it starts still processes the events published meanwhile (it
// claims after the failure instead of waiting for a replay forever), and
// replays again until a replay succeeds.
func TestAnycastResumeFails(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) { testAnycastResumeFails(t, modeConfig(srv, m)) })
}

func testAnycastResumeFails(t *testing.T, config func(string) mesh.Config) {
	hist := &failingHistory{}
	hist.fails.Store(2)
	wcfg := config("workers")
	wcfg.History = hist
	nodes := connectAll(t, config("jobs"), wcfg)
	pub, worker := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	done := map[string]int{}
	s, err := worker.SubscribeAnycast(ctx, "jobs.resume", func(_ context.Context, m *mesh.Message) error {
		mu.Lock()
		done[string(m.Payload)]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const events = 20
	for i := range events {
		if _, err := pub.Publish(ctx, "jobs.resume", []byte(fmt.Sprintf("e%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 30*time.Second, "every event processed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == events
	})
	waitUntil(t, 30*time.Second, "a replay that succeeds", func() bool { return s.Resumed().Done })
	mu.Lock()
	defer mu.Unlock()
	for k, c := range done {
		if c != 1 {
			t.Errorf("event %s processed %d times", k, c)
		}
	}
	if r := s.Resumed(); r.Attempts != 3 || r.Err != nil {
		t.Errorf("resume %+v: want 3 attempts (two failed) and no error", r)
	}
}

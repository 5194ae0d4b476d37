package history_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestRecordersConverge: two recorders; one is stopped while 500 events
// are published and started again on the same store; it fills the hole
// from the other, and in the end both stores hold the same lines in the
// same order. A third recorder started afterwards, with an empty store,
// copies the whole history.
func TestRecordersConverge(t *testing.T) {
	srv := ircdtest.Start(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type running struct {
		rec  *history.Recorder
		st   *history.Store
		stop func()
	}
	start := func(name string) *running {
		st, err := history.Open(history.Options{Path: filepath.Join(dir, name+".db")})
		if err != nil {
			t.Fatal(err)
		}
		cfg := nodeConfig(srv, history.Service)
		cfg.Instance = name
		n, err := mesh.Connect(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rec := history.NewRecorder(n, st, history.RecorderConfig{Rescan: 200 * time.Millisecond, SkipHeartbeats: true})
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); rec.Run(rctx) }()
		r := &running{rec: rec, st: st}
		var stopped bool
		r.stop = func() {
			if stopped {
				return
			}
			stopped = true
			rcancel()
			<-done
			n.Close(ctx)
			st.Close()
		}
		t.Cleanup(r.stop)
		return r
	}
	pub := meshtest.Connect(t, nodeConfig(srv, "news"))
	if _, err := pub.Publish(ctx, "news", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	a, b := start("a"), start("b")
	waitTopic(t, a.rec, "news")
	waitTopic(t, b.rec, "news")
	publish := func(prefix string, n int) {
		for i := range n {
			if _, err := pub.Publish(ctx, "news", []byte(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("both", 100)
	time.Sleep(300 * time.Millisecond)
	b.stop()
	publish("only-a", 500)
	b = start("b")
	waitTopic(t, b.rec, "news")
	publish("again", 100)
	c := start("c")
	waitTopic(t, c.rec, "news")
	publish("three", 50)

	ch := mesh.Channel("h", "news")
	ids := func(st *history.Store) []string {
		var out []string
		if err := st.Scan(ch, 1, func(r history.Record) bool { out = append(out, r.MsgID); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		la, lb, lc := ids(a.st), ids(b.st), ids(c.st)
		if len(la) >= 750 && slices.Equal(la, lb) && slices.Equal(la, lc) {
			t.Logf("%d lines in each store; b filled %d, c filled %d", len(la), b.rec.Filled(), c.rec.Filled())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stores differ after 30 s: a %d lines, b %d (filled %d), c %d (filled %d)", len(la), len(lb), b.rec.Filled(), len(lc), c.rec.Filled())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if b.rec.Filled() < 500 {
		t.Errorf("b filled %d lines, want at least the 500 it missed", b.rec.Filled())
	}
}

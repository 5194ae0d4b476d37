package history_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestCatchUpAfterDisconnect, in each trust mode: a multicast subscriber
// loses its connection while 200 events are published; after it
// reconnects it receives every one of them from the recorder, once, and
// no event twice, and its keys refuse none of the recorded lines.
func TestCatchUpAfterDisconnect(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	historytest.ForEachMode(t, srv, "cu", testCatchUp)
}

func testCatchUp(t *testing.T, m *historytest.Mesh) {
	rec := m.StartRecorderIn(t, t.TempDir(), "", "r", recorder.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := startCatchUpReader(t, ctx, m)
	historytest.WaitTopic(t, rec.Recorder, "news")
	r.publish(t, ctx, "before", 100)
	r.waitDistinct(t, 100)

	r.proxy.Cut()
	historytest.WaitConnected(t, r.sub, false)
	r.publish(t, ctx, "during", 200)
	time.Sleep(300 * time.Millisecond) // the recorder commits
	r.proxy.Restore()
	r.waitDistinct(t, 300)
	r.publish(t, ctx, "after", 50)
	r.waitDistinct(t, 350)
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now

	r.checkOnce(t, 350)
	st := r.sub.Stats()
	if st.Backfilled != 200 {
		t.Errorf("backfilled %d events, want the 200 missed", st.Backfilled)
	}
	if st.HistoryRejected != 0 {
		t.Errorf("%d recorded lines refused by the subscriber's keys", st.HistoryRejected)
	}
}

// catchUpReader is a multicast subscriber of topic news with history,
// connected through a proxy that can cut it off, and a publisher.
type catchUpReader struct {
	sub, pub *mesh.Node
	proxy    *historytest.CutProxy
	mu       sync.Mutex
	got      map[string]int // deliveries by payload
	total    int
}

func startCatchUpReader(t *testing.T, ctx context.Context, m *historytest.Mesh) *catchUpReader {
	t.Helper()
	r := &catchUpReader{proxy: historytest.NewCutProxy(t, m.Srv.Addr()), got: map[string]int{}}
	scfg := m.Config("reader")
	scfg.Server = r.proxy.Addr()
	scfg.ReconnectMin, scfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	scfg.History = history.NewSource()
	r.sub = meshtest.Connect(t, scfg)
	r.pub = meshtest.Connect(t, m.Config("news"))
	if _, err := r.sub.Subscribe(ctx, "news", func(_ context.Context, m *mesh.Message) error {
		r.mu.Lock()
		r.got[string(m.Payload)]++
		r.total++
		r.mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// publish publishes n events "prefix-NNN".
func (r *catchUpReader) publish(t *testing.T, ctx context.Context, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := r.pub.Publish(ctx, "news", []byte(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
			t.Fatal(err)
		}
	}
}

// waitDistinct waits (30 s at most) until the subscriber got n distinct
// events.
func (r *catchUpReader) waitDistinct(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		d := len(r.got)
		r.mu.Unlock()
		if d >= n {
			return
		}
		if time.Now().After(deadline) {
			st := r.sub.Stats()
			t.Fatalf("the subscriber has %d distinct events, want %d (backfilled %d, history lines refused %d)", d, n, st.Backfilled, st.HistoryRejected)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkOnce checks that each event was delivered once, n in all.
func (r *catchUpReader) checkOnce(t *testing.T, n int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, c := range r.got {
		if c != 1 {
			t.Errorf("%s delivered %d times", p, c)
		}
	}
	if r.total != n {
		t.Errorf("%d deliveries for %d events", r.total, n)
	}
}

// TestCatchUpRecorderLate, in each trust mode: a multicast subscriber
// loses its connection while 100 events are published, and when it is
// back no recorder is live (it was restarting; after a move to another
// server the node may not have heard one yet). The recorder is back a
// second later: the subscriber's catch-up tries again and delivers every
// missed event, once.
func TestCatchUpRecorderLate(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	historytest.ForEachMode(t, srv, "cl", testCatchUpRecorderLate)
}

func testCatchUpRecorderLate(t *testing.T, m *historytest.Mesh) {
	dir := t.TempDir()
	rec := m.StartRecorderIn(t, dir, "", "r", recorder.Config{SkipHeartbeats: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := startCatchUpReader(t, ctx, m)
	historytest.WaitTopic(t, rec.Recorder, "news")
	r.publish(t, ctx, "before", 20)
	r.waitDistinct(t, 20)
	r.proxy.Cut()
	historytest.WaitConnected(t, r.sub, false)
	r.publish(t, ctx, "during", 100)
	time.Sleep(300 * time.Millisecond) // the recorder commits
	rec.Stop()
	gone := time.Now().Add(20 * time.Second)
	for len(r.pub.Members(history.Service)) > 0 {
		if time.Now().After(gone) {
			t.Fatal("the stopped recorder is still a live member")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.proxy.Restore()
	historytest.WaitConnected(t, r.sub, true)
	time.Sleep(time.Second) // the first catch-up finds no recorder
	rec = m.StartRecorderIn(t, dir, "", "r", recorder.Config{SkipHeartbeats: true})
	historytest.WaitTopic(t, rec.Recorder, "news")
	r.waitDistinct(t, 120)
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now
	r.checkOnce(t, 120)
}

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
	proxy := historytest.NewCutProxy(t, m.Srv.Addr())
	scfg := m.Config("reader")
	scfg.Server = proxy.Addr()
	scfg.ReconnectMin, scfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	scfg.History = history.NewSource()
	sub := meshtest.Connect(t, scfg)
	pub := meshtest.Connect(t, m.Config("news"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var mu sync.Mutex
	got := map[string]int{}
	total := 0
	if _, err := sub.Subscribe(ctx, "news", func(_ context.Context, m *mesh.Message) error {
		mu.Lock()
		got[string(m.Payload)]++
		total++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	historytest.WaitTopic(t, rec.Recorder, "news")
	publish := func(prefix string, n int) {
		for i := range n {
			if _, err := pub.Publish(ctx, "news", []byte(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitDistinct := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			d := len(got)
			mu.Unlock()
			if d >= n {
				return
			}
			if time.Now().After(deadline) {
				st := sub.Stats()
				t.Fatalf("the subscriber has %d distinct events, want %d (backfilled %d, history lines refused %d)", d, n, st.Backfilled, st.HistoryRejected)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publish("before", 100)
	waitDistinct(100)

	proxy.Cut()
	historytest.WaitConnected(t, sub, false)
	publish("during", 200)
	time.Sleep(300 * time.Millisecond) // the recorder commits
	proxy.Restore()
	waitDistinct(300)
	publish("after", 50)
	waitDistinct(350)
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now

	mu.Lock()
	defer mu.Unlock()
	for p, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", p, n)
		}
	}
	if total != 350 {
		t.Errorf("%d deliveries for 350 events", total)
	}
	st := sub.Stats()
	if st.Backfilled != 200 {
		t.Errorf("backfilled %d events, want the 200 missed", st.Backfilled)
	}
	if st.HistoryRejected != 0 {
		t.Errorf("%d recorded lines refused by the subscriber's keys", st.HistoryRejected)
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
	proxy := historytest.NewCutProxy(t, m.Srv.Addr())
	scfg := m.Config("reader")
	scfg.Server = proxy.Addr()
	scfg.ReconnectMin, scfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	scfg.History = history.NewSource()
	sub := meshtest.Connect(t, scfg)
	pub := meshtest.Connect(t, m.Config("news"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]int{}
	if _, err := sub.Subscribe(ctx, "news", func(_ context.Context, m *mesh.Message) error {
		mu.Lock()
		got[string(m.Payload)]++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	historytest.WaitTopic(t, rec.Recorder, "news")
	publish := func(prefix string, n int) {
		for i := range n {
			if _, err := pub.Publish(ctx, "news", []byte(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	publish("before", 20)
	for deadline := time.Now().Add(20 * time.Second); distinct() < 20; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the first 20 events delivered", distinct())
		}
	}
	proxy.Cut()
	historytest.WaitConnected(t, sub, false)
	publish("during", 100)
	time.Sleep(300 * time.Millisecond) // the recorder commits
	rec.Stop()
	waitGone := time.Now().Add(20 * time.Second)
	for len(pub.Members(history.Service)) > 0 {
		if time.Now().After(waitGone) {
			t.Fatal("the stopped recorder is still a live member")
		}
		time.Sleep(20 * time.Millisecond)
	}
	proxy.Restore()
	historytest.WaitConnected(t, sub, true)
	time.Sleep(time.Second) // the first catch-up finds no recorder
	rec = m.StartRecorderIn(t, dir, "", "r", recorder.Config{SkipHeartbeats: true})
	historytest.WaitTopic(t, rec.Recorder, "news")
	for deadline := time.Now().Add(40 * time.Second); distinct() < 120; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 120 events delivered 40 s after the recorder came back (backfilled %d)", distinct(), sub.Stats().Backfilled)
		}
	}
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now
	mu.Lock()
	defer mu.Unlock()
	for p, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", p, n)
		}
	}
}

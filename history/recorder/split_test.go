package recorder_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
)

// TestRecorderSplitFillWaits, in each trust mode: the network joins again
// after a split, and the recorder of the other side answers only a few
// seconds later (it comes back with its side's members). The recorder
// that fills the split's gap waits for it instead of settling for the
// server's history, which lacks the other side's lines: it ends with the
// lines only the other recorder had.
func TestRecorderSplitFillWaits(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	historytest.ForEachMode(t, srv, "sw", testRecorderSplitFillWaits)
}

func testRecorderSplitFillWaits(t *testing.T, m *historytest.Mesh) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(name string) *historytest.Recorder {
		return m.StartRecorderIn(t, dir, "", name, recorder.Config{SkipHeartbeats: true})
	}
	ch := m.Channel("news")
	count := func(r *historytest.Recorder) int { return len(historytest.StoredIDs(t, r.Store, ch)) }
	waitCount := func(r *historytest.Recorder, name string, n int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for count(r) < n {
			if time.Now().After(deadline) {
				t.Fatalf("recorder %s holds %d lines after %v, want %d", name, count(r), within, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	pub := meshtest.Connect(t, m.Config("news"))
	if _, err := pub.Publish(ctx, "news", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	splitAt := time.Now()
	// The far side: only b records these.
	b := start("b")
	historytest.WaitTopic(t, b.Recorder, "news")
	publishNews(t, ctx, pub, "far", 30)
	waitCount(b, "b", 30, 10*time.Second)
	far := count(b)
	b.Stop()
	// This side: a records these, and has none of b's (on a server
	// without CHATHISTORY; with it, a copies them at its start).
	a := start("a")
	historytest.WaitTopic(t, a.Recorder, "news")
	publishNews(t, ctx, pub, "near", 20)
	waitCount(a, "a", 20, 10*time.Second)
	before := count(a)
	// The netjoin, with b back a second later.
	if !a.SplitGap("news", splitAt) {
		t.Fatal("a records no topic news")
	}
	time.Sleep(time.Second)
	b = start("b")
	waitCount(a, "a", 20+far, 20*time.Second)
	t.Logf("a held %d lines before the netjoin, %d after (filled %d); b had %d of the far side", before, count(a), a.Filled(), far)
}

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

// TestRecorderSplitRepair, in each trust mode: the network joins again
// after a split, and the recorder of the other side answers only a second
// later (it comes back with its side's members; or it was filling too and
// held its live lines out of its store). The recorder's first fill of the
// split's gap cannot get the other side's lines; it fills the gap again a
// few seconds later and ends with the lines only the other recorder had.
// The two stores then hold the same lines in different orders; a fill
// after the other recorder's reconnect appends none of them twice.
func TestRecorderSplitRepair(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	historytest.ForEachMode(t, srv, "sr", testRecorderSplitRepair)
}

func testRecorderSplitRepair(t *testing.T, m *historytest.Mesh) {
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
	proxy := historytest.NewCutProxy(t, m.Srv.Addr())
	b = m.StartRecorderIn(t, dir, proxy.Addr(), "b", recorder.Config{SkipHeartbeats: true})
	waitCount(a, "a", 20+far, 20*time.Second)
	waitCount(b, "b", 20+far, 20*time.Second)
	t.Logf("a held %d lines before the netjoin, %d after (filled %d); b had %d of the far side", before, count(a), a.Filled(), far)

	// The two stores now hold the same lines in two orders (each its own
	// side's first). b loses its connection and fills its hole from a,
	// after its last line in a's order: what a has after it, b holds
	// before it, and must not append again.
	proxy.Cut()
	historytest.WaitConnected(t, b.Node, false)
	publishNews(t, ctx, pub, "after", 5)
	proxy.Restore()
	historytest.WaitConnected(t, b.Node, true)
	waitCount(b, "b", 25+far, 20*time.Second)
	time.Sleep(time.Second) // a line appended twice would show by now
	for name, r := range map[string]*historytest.Recorder{"a": a, "b": b} {
		ids := historytest.StoredIDs(t, r.Store, ch)
		seen := map[string]bool{}
		for _, id := range ids {
			if id != "" && seen[id] {
				t.Errorf("recorder %s holds line %s twice (%d lines)", name, id, len(ids))
				break
			}
			seen[id] = true
		}
		if len(ids) != 25+far {
			t.Errorf("recorder %s holds %d lines, want %d", name, len(ids), 25+far)
		}
	}
}

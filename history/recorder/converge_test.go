package recorder_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestRecordersConverge, in each trust mode (every recorder with the
// mode's keys): two recorders; one is stopped while 300 events are
// published and started again on the same store; it fills the hole from
// the other, and in the end both stores hold the same lines in the same
// order. A third recorder started afterwards, with an empty store, copies
// the whole history.
func TestRecordersConverge(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	historytest.ForEachMode(t, srv, "cv", testRecordersConverge)
}

func testRecordersConverge(t *testing.T, m *historytest.Mesh) {
	ctx, _, start, pub := newsRecorders(t, m)
	a, b := start("a"), start("b")
	historytest.WaitTopic(t, a.Recorder, "news")
	historytest.WaitTopic(t, b.Recorder, "news")
	publish := func(prefix string, n int) { publishNews(t, ctx, pub, prefix, n) }
	const missed = 300
	publish("both", 100)
	time.Sleep(300 * time.Millisecond)
	b.Stop()
	publish("only-a", missed)
	b = start("b")
	historytest.WaitTopic(t, b.Recorder, "news")
	publish("again", 100)
	c := start("c")
	historytest.WaitTopic(t, c.Recorder, "news")
	publish("three", 50)

	ch := m.Channel("news")
	ids := func(r *historytest.Recorder) []string { return historytest.StoredIDs(t, r.Store, ch) }
	deadline := time.Now().Add(30 * time.Second)
	for {
		la, lb, lc := ids(a), ids(b), ids(c)
		if len(la) >= 250+missed && slices.Equal(la, lb) && slices.Equal(la, lc) {
			t.Logf("%d lines in each store; b filled %d, c filled %d", len(la), b.Filled(), c.Filled())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stores differ after 30 s: a %d lines, b %d (filled %d), c %d (filled %d); b against a: %s; c against a: %s",
				len(la), len(lb), b.Filled(), len(lc), c.Filled(), idsDiff(la, lb), idsDiff(la, lc))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if b.Filled() < missed {
		t.Errorf("b filled %d lines, want at least the %d it missed", b.Filled(), missed)
	}
	for name, r := range map[string]*historytest.Recorder{"a": a, "b": b, "c": c} {
		if u := r.Unverified(); u != 0 {
			t.Errorf("recorder %s could not verify %d lines", name, u)
		}
	}
}

// TestRecorderReconnectFills: a recorder loses its connection (not its
// process) while 400 events are published by a publisher that keeps
// going; once reconnected it fills the hole from the other recorder, and
// both stores end with the same lines in the same order.
func TestRecorderReconnectFills(t *testing.T) {
	t.Parallel()
	m, dir, ctx, proxy, pub := cutSetup(t)
	a := m.StartRecorderIn(t, dir, "", "a", recorder.Config{SkipHeartbeats: true})
	b := m.StartRecorderIn(t, dir, proxy.Addr(), "b", recorder.Config{SkipHeartbeats: true})
	historytest.WaitTopic(t, a.Recorder, "news")
	historytest.WaitTopic(t, b.Recorder, "news")
	publish := func(prefix string, n int) { publishNews(t, ctx, pub, prefix, n) }
	publish("both", 100)
	time.Sleep(300 * time.Millisecond)
	proxy.Cut()
	historytest.WaitConnected(t, b.Node, false)
	publish("only-a", 400)
	// Publishing goes on while b comes back: lines around the reconnect
	// arrive live while b fills.
	done := make(chan struct{})
	go func() { defer close(done); publish("after", 200) }()
	proxy.Restore()
	<-done

	deadline := time.Now().Add(30 * time.Second)
	for {
		la, lb := historytest.StoredIDs(t, a.Store, m.Channel("news")), historytest.StoredIDs(t, b.Store, m.Channel("news"))
		if len(la) >= 700 && slices.Equal(la, lb) {
			t.Logf("%d lines in each store; b filled %d after %d reconnect(s)", len(la), b.Filled(), b.Node.Stats().Reconnects)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stores differ after 30 s: a %d lines, b %d (filled %d)", len(la), len(lb), b.Filled())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if b.Filled() < 400 {
		t.Errorf("b filled %d lines, want at least the 400 it missed", b.Filled())
	}
	if b.Node.Stats().Reconnects == 0 {
		t.Error("b never reconnected")
	}
}

// TestRecorderFillsFromChatHistory: the only recorder loses its connection
// while 300 events are published. Where the server offers CHATHISTORY
// (ergo), it fills the hole from there once back: its store then holds
// every line, in the server's order. Where it does not, the hole stays,
// and the lines before and after it are kept.
func TestRecorderFillsFromChatHistory(t *testing.T) {
	t.Parallel()
	m, dir, ctx, proxy, pub := cutSetup(t)
	a := m.StartRecorderIn(t, dir, proxy.Addr(), "a", recorder.Config{SkipHeartbeats: true})
	historytest.WaitTopic(t, a.Recorder, "news")
	withHistory := a.Node.ChatHistoryLimit() > 0
	var sent []string // msgids of the published lines, in order
	publish := func(prefix string, n int) {
		for i := range n {
			ack, err := pub.Publish(ctx, "news", []byte(fmt.Sprintf("%s-%03d", prefix, i)))
			if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, ack.MsgID)
		}
	}
	// Lines before the recorder (the warm-up) come from CHATHISTORY too:
	// wait for its first fill to end before the cut.
	time.Sleep(500 * time.Millisecond)
	publish("before", 100)
	time.Sleep(300 * time.Millisecond)
	proxy.Cut()
	historytest.WaitConnected(t, a.Node, false)
	publish("away", 300)
	proxy.Restore()
	historytest.WaitConnected(t, a.Node, true)
	time.Sleep(time.Second) // a fill, if any, is under way
	publish("after", 100)

	want := sent // with CHATHISTORY: everything published after the warm-up
	if !withHistory {
		want = append(slices.Clone(sent[:100]), sent[400:]...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := historytest.StoredIDs(t, a.Store, m.Channel("news"))
		if withHistory && len(got) > 0 {
			got = got[1:] // the warm-up line, copied from the server at the start
		}
		if slices.Equal(got, want) {
			t.Logf("CHATHISTORY: %v; %d lines stored, %d filled", withHistory, len(got), a.Filled())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CHATHISTORY: %v; the store holds %d lines, want %d (filled %d)", withHistory, len(got), len(want), a.Filled())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// idsDiff describes how got differs from want: where they first part, the
// lines got repeats and the lines it lacks.
func idsDiff(want, got []string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	var repeated, missing []string
	for id, n := range count {
		if n > 1 {
			repeated = append(repeated, id)
		}
	}
	for _, id := range want {
		if count[id] == 0 {
			missing = append(missing, id)
		}
	}
	if i == len(want) && i == len(got) {
		return "the same"
	}
	return fmt.Sprintf("first difference at line %d, repeated %v, missing %v", i+1, repeated, missing)
}

// publishNews publishes n events "prefix-NNN" to topic news, one by one.
func publishNews(t *testing.T, ctx context.Context, pub *mesh.Node, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := pub.Publish(ctx, "news", []byte(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
			t.Fatal(err)
		}
	}
}

// cutSetup starts a server, a proxy to it that can cut connections, and a
// publisher that has published a warm-up event on topic news (so that the
// channel exists); ctx ends with the test (2 minutes at most).
func cutSetup(t *testing.T) (*historytest.Mesh, string, context.Context, *historytest.CutProxy, *mesh.Node) {
	t.Helper()
	m := historytest.NewMesh(ircdtest.Start(t), "h", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	proxy := historytest.NewCutProxy(t, m.Srv.Addr())
	pub := meshtest.Connect(t, m.Config("news"))
	if _, err := pub.Publish(ctx, "news", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	return m, t.TempDir(), ctx, proxy, pub
}

// newsRecorders is what the recorder tests start from: a context that
// ends with the test (2 minutes at most), a directory for the stores, a
// way to start a recorder by name on a store of that name there, and a
// publisher that has published a warm-up event on topic news.
func newsRecorders(t *testing.T, m *historytest.Mesh) (context.Context, string, func(string) *historytest.Recorder, *mesh.Node) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	start := func(name string) *historytest.Recorder {
		return m.StartRecorderIn(t, dir, "", name, recorder.Config{SkipHeartbeats: true})
	}
	pub := meshtest.Connect(t, m.Config("news"))
	if _, err := pub.Publish(ctx, "news", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	return ctx, dir, start, pub
}

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
	ctx, dir, start, pub := newsRecorders(t, m)
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

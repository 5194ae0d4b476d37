package history_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/ircd"
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
	start := func(name string) *running {
		return startRunning(t, ctx, srv, dir, srv.Addr(), name)
	}
	pub := meshtest.Connect(t, nodeConfig(srv, "news"))
	if _, err := pub.Publish(ctx, "news", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	a, b := start("a"), start("b")
	waitTopic(t, a.rec, "news")
	waitTopic(t, b.rec, "news")
	publish := func(prefix string, n int) { publishNews(t, ctx, pub, prefix, n) }
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

	ids := func(st *history.Store) []string { return storedIDs(t, st, "news") }
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

// running is a recorder started by a test on a store of its own.
type running struct {
	rec  *history.Recorder
	st   *history.Store
	node *mesh.Node
	stop func()
}

// startRunning starts a recorder instance name, connected to addr, on the
// store name.db in dir.
func startRunning(t *testing.T, ctx context.Context, srv *ircd.Server, dir, addr, name string) *running {
	t.Helper()
	st, err := history.Open(history.Options{Path: filepath.Join(dir, name+".db")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := nodeConfig(srv, history.Service)
	cfg.Server = addr
	cfg.Instance = name
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	n, err := mesh.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := history.NewRecorder(n, st, history.RecorderConfig{Rescan: 200 * time.Millisecond, SkipHeartbeats: true})
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(rctx) }()
	r := &running{rec: rec, st: st, node: n}
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

// storedIDs lists the msgids of topic's lines in st, in the store's order.
func storedIDs(t *testing.T, st *history.Store, topic string) []string {
	var out []string
	if err := st.Scan(mesh.Channel("h", topic), 1, func(r history.Record) bool { out = append(out, r.MsgID); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRecorderReconnectFills: a recorder loses its connection (not its
// process) while 400 events are published by a publisher that keeps
// going; once reconnected it fills the hole from the other recorder, and
// both stores end with the same lines in the same order.
func TestRecorderReconnectFills(t *testing.T) {
	srv, dir, ctx, proxy, pub := cutSetup(t)
	a, b := startRunning(t, ctx, srv, dir, srv.Addr(), "a"), startRunning(t, ctx, srv, dir, proxy.addr(), "b")
	waitTopic(t, a.rec, "news")
	waitTopic(t, b.rec, "news")
	publish := func(prefix string, n int) { publishNews(t, ctx, pub, prefix, n) }
	publish("both", 100)
	time.Sleep(300 * time.Millisecond)
	proxy.cut()
	waitConnected(t, b.node, false)
	publish("only-a", 400)
	// Publishing goes on while b comes back: lines around the reconnect
	// arrive live while b fills.
	done := make(chan struct{})
	go func() { defer close(done); publish("after", 200) }()
	proxy.restore()
	<-done

	deadline := time.Now().Add(30 * time.Second)
	for {
		la, lb := storedIDs(t, a.st, "news"), storedIDs(t, b.st, "news")
		if len(la) >= 700 && slices.Equal(la, lb) {
			t.Logf("%d lines in each store; b filled %d after %d reconnect(s)", len(la), b.rec.Filled(), b.node.Stats().Reconnects)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stores differ after 30 s: a %d lines, b %d (filled %d)", len(la), len(lb), b.rec.Filled())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if b.rec.Filled() < 400 {
		t.Errorf("b filled %d lines, want at least the 400 it missed", b.rec.Filled())
	}
	if b.node.Stats().Reconnects == 0 {
		t.Error("b never reconnected")
	}
}

// TestRecorderFillsFromChatHistory: the only recorder loses its connection
// while 300 events are published. Where the server offers CHATHISTORY
// (ergo), it fills the hole from there once back: its store then holds
// every line, in the server's order. Where it does not, the hole stays,
// and the lines before and after it are kept.
func TestRecorderFillsFromChatHistory(t *testing.T) {
	srv, dir, ctx, proxy, pub := cutSetup(t)
	a := startRunning(t, ctx, srv, dir, proxy.addr(), "a")
	waitTopic(t, a.rec, "news")
	withHistory := a.node.ChatHistoryLimit() > 0
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
	proxy.cut()
	waitConnected(t, a.node, false)
	publish("away", 300)
	proxy.restore()
	waitConnected(t, a.node, true)
	time.Sleep(time.Second) // a fill, if any, is under way
	publish("after", 100)

	want := sent // with CHATHISTORY: everything published after the warm-up
	if !withHistory {
		want = append(slices.Clone(sent[:100]), sent[400:]...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := storedIDs(t, a.st, "news")
		if withHistory && len(got) > 0 {
			got = got[1:] // the warm-up line, copied from the server at the start
		}
		if slices.Equal(got, want) {
			t.Logf("CHATHISTORY: %v; %d lines stored, %d filled", withHistory, len(got), a.rec.Filled())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CHATHISTORY: %v; the store holds %d lines, want %d (filled %d)", withHistory, len(got), len(want), a.rec.Filled())
		}
		time.Sleep(200 * time.Millisecond)
	}
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

// waitConnected waits until n's connection is up (or down, with !up).
func waitConnected(t *testing.T, n *mesh.Node, up bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n.Connected() != up {
		if time.Now().After(deadline) {
			t.Fatalf("the node's connection is not up=%v after 20 s", up)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cutSetup starts a server, a proxy to it that can cut connections, and a
// publisher that has published a warm-up event on topic news (so that the
// channel exists); ctx ends with the test (2 minutes at most).
func cutSetup(t *testing.T) (*ircd.Server, string, context.Context, *cutProxy, *mesh.Node) {
	t.Helper()
	srv := ircdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	proxy := newCutProxy(t, srv.Addr())
	pub := meshtest.Connect(t, nodeConfig(srv, "news"))
	if _, err := pub.Publish(ctx, "news", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	return srv, t.TempDir(), ctx, proxy, pub
}

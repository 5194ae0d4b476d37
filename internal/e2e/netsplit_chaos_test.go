package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// splitChaosEnv names the environment variable that turns on the long
// netsplit chaos run: its value is the number of seeds (CI sets it for one
// bounded run). Without it the suite runs one short seed.
const splitChaosEnv = "MESHBOT_SPLIT_CHAOS"

// splitChaosLogsEnv names a directory the chaos run writes every node's
// log to (one file per node, overwritten by each seed), for a failure's
// post-mortem.
const splitChaosLogsEnv = "MESHBOT_SPLIT_CHAOS_LOGS"

// TestNetsplitChaos: a whole mesh on a chain of three servers — an anycast
// group with a worker on each server, multicast subscribers with history
// on each server fed by publishers on both ends, an echo service answering
// a client's requests from the far servers, and a recorder on each end —
// while the network breaks: the middle server killed and restarted, frozen
// then killed and restarted, a link cut and healed, in an order and with
// outages drawn from the seed. Every bot that can move is given every
// server. Checked, per seed: no event lost to a subscriber with history,
// none delivered twice; no anycast event started twice at one epoch, none
// dead-lettered (no handler fails), every one completed; both recorders
// end with the same lines, each once; every bot back on a live server
// within 2 s of its server's death; every node sees every other alive
// within one heartbeat interval of the netjoin; no request fails once the
// mesh is whole again.
//
// The suite runs one seed with two faults; MESHBOT_SPLIT_CHAOS=N runs N
// seeds of four faults each (about a minute a seed under -race).
func TestNetsplitChaos(t *testing.T) {
	t.Parallel()
	seeds, faults := 1, 2
	if v := os.Getenv(splitChaosEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a number of seeds", splitChaosEnv, v)
		}
		seeds, faults = n, 4
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { splitChaosRun(t, uint64(seed), faults) })
	}
}

// chaosMesh is everything a chaos run starts on the network.
type chaosMesh struct {
	nw      *ircd.Network
	all     []*mesh.Node // every node: the mesh is whole when each sees every other
	movers  []*mesh.Node // the nodes given every server
	group   *splitGroup
	readers []*mesh.Node
	got     []*tally
	r0, r2  *historytest.Recorder
	pubA    *mesh.Node
	pubC    *mesh.Node
	client  *mesh.Node
}

const chaosNews = "news"

func startChaosMesh(t *testing.T, nw *ircd.Network) *chaosMesh {
	t.Helper()
	dir := t.TempDir()
	logs := os.Getenv(splitChaosLogsEnv)
	withLog := func(c mesh.Config) mesh.Config {
		if logs == "" {
			return c
		}
		f, err := os.Create(filepath.Join(logs, c.Service+"-"+c.Instance+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		c.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
		return c
	}
	m := &chaosMesh{nw: nw, group: &splitGroup{nw: nw, dead: newTally(), ledger: newSplitLedger()}}
	m.r0 = historytest.StartRecorder(t, withLog(splitConfig(nw, 0, history.Service, "r0")), filepath.Join(dir, "r0.db"), recorder.Config{Log: withLog(mesh.Config{Service: "rec", Instance: "r0"}).Logger})
	m.r2 = historytest.StartRecorder(t, withLog(splitConfig(nw, 2, history.Service, "r2")), filepath.Join(dir, "r2.db"), recorder.Config{Log: withLog(mesh.Config{Service: "rec", Instance: "r2"}).Logger})
	addrs := nw.Addrs()
	mover := func(i int, service, instance string) mesh.Config {
		cfg := splitConfig(nw, i, service, instance)
		cfg.History = history.NewSource()
		for j := range addrs {
			if j != i {
				cfg.Servers = append(cfg.Servers, addrs[j])
			}
		}
		return cfg
	}
	var cfgs []mesh.Config
	for i := range 3 {
		cfgs = append(cfgs, mover(i, "worker", fmt.Sprintf("w%d", i)))
	}
	for i := range 3 {
		cfgs = append(cfgs, mover(i, "reader", fmt.Sprintf("n%d", i)))
	}
	cfgs = append(cfgs, mover(1, "echo", "e1"), mover(2, "echo", "e2"))
	const moving = 8
	cfgs = append(cfgs,
		splitConfig(nw, 0, "pub", "jobs"), splitConfig(nw, 0, "dlq", "d"),
		splitConfig(nw, 0, "pub", "a"), splitConfig(nw, 2, "pub", "c"),
		splitConfig(nw, 0, "client", "q"))
	for i := range cfgs {
		cfgs[i] = withLog(cfgs[i])
	}
	nodes := meshtest.ConnectAll(t, cfgs...)
	m.all, m.movers = nodes, nodes[:moving]
	m.group.workers, m.readers = nodes[:3], nodes[3:6]
	m.group.pub, m.pubA, m.pubC, m.client = nodes[8], nodes[10], nodes[11], nodes[12]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, e := range nodes[6:8] {
		if err := e.Handle("echo", func(_ context.Context, r *mesh.Request) ([]byte, error) { return r.Payload, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nodes[9].Subscribe(ctx, claims.DeadTopic(splitTopic), m.group.dead.handle); err != nil {
		t.Fatal(err)
	}
	for i, w := range m.group.workers {
		s, err := w.SubscribeAnycast(ctx, splitTopic, m.group.ledger.handler(fmt.Sprintf("w%d", i)), mesh.Concurrency(8))
		if err != nil {
			t.Fatal(err)
		}
		m.group.subs = append(m.group.subs, s)
	}
	for _, r := range m.readers {
		c := newTally()
		m.got = append(m.got, c)
		if _, err := r.Subscribe(ctx, chaosNews, c.handle); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*historytest.Recorder{m.r0, m.r2} {
		historytest.WaitTopic(t, r.Recorder, chaosNews)
		historytest.WaitTopic(t, r.Recorder, splitTopic)
	}
	all := append(slices.Clone(m.all), m.r0.Node, m.r2.Node)
	m.all = all
	if _, ok := m.waitWhole(30 * time.Second); !ok {
		t.Fatalf("the mesh is not whole after 30 s: %s", m.missingViews())
	}
	time.Sleep(1500 * time.Millisecond) // the workers are ready (a heartbeat interval and a bit)
	return m
}

// missingViews says which node misses which member.
func (m *chaosMesh) missingViews() string {
	var out []string
	for _, n := range m.all {
		for _, o := range m.all {
			if n != o && !sees(n, o) {
				out = append(out, n.Nick()+" misses "+o.Nick())
			}
		}
	}
	return strings.Join(out[:min(10, len(out))], "; ")
}

// sees reports whether n counts o among the live members.
func sees(n, o *mesh.Node) bool {
	for _, mb := range n.Members(o.Service()) {
		if mb.Instance == o.Instance() {
			return true
		}
	}
	return false
}

// waitWhole waits until every node sees every other alive and reports when
// it saw that.
func (m *chaosMesh) waitWhole(timeout time.Duration) (time.Time, bool) {
	start := time.Now()
	for {
		whole := true
		for _, n := range m.all {
			for _, o := range m.all {
				if n != o && !sees(n, o) {
					whole = false
					break
				}
			}
			if !whole {
				break
			}
		}
		if now := time.Now(); whole {
			return now, true
		} else if now.Sub(start) > timeout {
			return now, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLive waits until every mover is connected to a server other than
// dead, and reports the longest wait since since.
func (m *chaosMesh) waitLive(t *testing.T, dead string, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	var worst time.Duration
	for _, n := range m.movers {
		for !n.Connected() || n.Server() == dead {
			if time.Since(since) > timeout {
				t.Errorf("%s not on a live server %v after %s died (on %s, connected %v)", n.Nick(), timeout, dead, n.Server(), n.Connected())
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		worst = max(worst, time.Since(since))
	}
	return worst
}

// requester asks the echo service every period until stopped and keeps
// when each failed request was made.
type requester struct {
	mu    sync.Mutex
	ok    int
	fails []window // each failed request, from its start to its failure
	errs  []string
	worst time.Duration
	stop  chan struct{}
	done  chan struct{}
}

func startRequester(n *mesh.Node, period time.Duration) *requester {
	r := &requester{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for i := 0; ; i++ {
			select {
			case <-r.stop:
				return
			case <-time.After(period):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			start := time.Now()
			_, err := n.Request(ctx, "echo", "echo", []byte(strconv.Itoa(i)))
			cancel()
			d := time.Since(start)
			r.mu.Lock()
			if err == nil {
				r.ok++
				r.worst = max(r.worst, d)
			} else {
				r.fails = append(r.fails, window{from: start, to: time.Now()})
				r.errs = append(r.errs, err.Error())
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *requester) halt() {
	close(r.stop)
	<-r.done
}

// window is a time a fault may disturb requests: from the fault to the
// mesh being whole again.
type window struct{ from, to time.Time }

// wholeBound is how soon after the netjoin every node must see every other
// alive: one heartbeat interval (1 s, beats jittered by up to 10 %) — the
// members lost in the split come back at once with their JOINs, those a
// node lost to silence (it moved servers during the split) with their next
// beat — and a margin for the lines to be read.
const wholeBound = 1100*time.Millisecond + 200*time.Millisecond

func splitChaosRun(t *testing.T, seed uint64, faults int) {
	rng := rand.New(rand.NewPCG(seed, 19))
	nw := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 3, Topology: ircd.Chain})
	m := startChaosMesh(t, nw)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	jobs := startPublisher(m.group.pub, "j", splitTopic, 20*time.Millisecond)
	pa := startPublisher(m.pubA, "a", chaosNews, 20*time.Millisecond)
	pc := startPublisher(m.pubC, "c", chaosNews, 20*time.Millisecond)
	req := startRequester(m.client, 50*time.Millisecond)
	time.Sleep(time.Second)

	middle := nw.Server(1).Addr()
	kinds := []string{"kill", "freeze", "cut"}
	var windows []window
	var report []string
	for f := range faults {
		kind := kinds[rng.IntN(len(kinds))]
		if f == 0 && faults == 2 {
			kind = "cut" // the short run: a link cut, then the middle server killed
		} else if f == 1 && faults == 2 {
			kind = "kill"
		}
		outage := 2*time.Second + time.Duration(rng.IntN(2000))*time.Millisecond
		w := window{from: time.Now()}
		var what string
		var back time.Duration
		switch kind {
		case "cut":
			l := nw.Links()[rng.IntN(len(nw.Links()))]
			what = "link " + l.String() + " cut"
			l.Cut()
			time.Sleep(outage)
			if err := l.Heal(ctx); err != nil {
				t.Fatal(err)
			}
		case "kill", "freeze":
			if kind == "freeze" {
				what = "middle server frozen, then killed"
				if err := nw.Freeze(1); err != nil {
					t.Fatal(err)
				}
				time.Sleep(outage)
			} else {
				what = "middle server killed"
			}
			died := time.Now()
			if err := nw.Kill(1); err != nil {
				t.Fatal(err)
			}
			back = m.waitLive(t, middle, died, 5*time.Second)
			if back > 2*time.Second {
				t.Errorf("%s: a bot was back on a live server only %v after the middle server died, want within 2 s", what, back)
			}
			time.Sleep(outage - time.Since(died))
			if err := nw.Restart(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		joined := time.Now()
		at, ok := m.waitWhole(time.Second)
		if !ok {
			t.Logf("%s: 1 s after the netjoin: %s", what, m.missingViews())
			at, ok = m.waitWhole(10 * time.Second)
		}
		whole := at.Sub(joined)
		if !ok {
			t.Errorf("%s: the mesh is not whole %v after the netjoin: %s", what, whole, m.missingViews())
		} else if whole > wholeBound {
			t.Errorf("%s: the mesh was whole %v after the netjoin, want within a heartbeat interval (%v with its jitter and a delivery margin)", what, whole, wholeBound)
		}
		w.to = joined.Add(whole)
		windows = append(windows, w)
		line := fmt.Sprintf("%s for %v: whole %v after the netjoin", what, outage.Round(time.Millisecond), whole.Round(time.Millisecond))
		if back > 0 {
			line += fmt.Sprintf(", every bot on a live server %v after the death", back.Round(time.Millisecond))
		}
		report = append(report, line)
		time.Sleep(time.Second + time.Duration(rng.IntN(1000))*time.Millisecond)
	}
	time.Sleep(time.Second)
	req.halt()
	jobs.halt()
	want := append(pa.halt(), pc.halt()...)
	t.Logf("seed %d:\n%s", seed, strings.Join(report, "\n"))

	// Multicast: every subscriber with history got every event once.
	for i, c := range m.got {
		checkAll(t, fmt.Sprintf("the subscriber first on server %d", i), c, want, 30*time.Second)
	}
	for _, r := range m.readers {
		st := r.Stats()
		t.Logf("%s on %s: %+v; delivered %d, dropped %d, rejected %v, backfilled %d, reconnects %d, timeouts %d",
			r.Nick(), r.Server(), r.SplitStats(), st.Delivered, st.Dropped, st.RejectedBy, st.Backfilled, st.Reconnects, st.Timeouts)
	}
	// Anycast: every event completed, none twice at one epoch, none
	// dead-lettered.
	m.group.finish(t, jobs.sent)
	// Recording: both recorders end with the same lines, each once.
	for _, topic := range []string{chaosNews, splitTopic} {
		ch := mesh.Channel(splitNS, topic)
		deadline := time.Now().Add(20 * time.Second)
		for {
			ids0, ids2 := historytest.StoredIDs(t, m.r0.Store, ch), historytest.StoredIDs(t, m.r2.Store, ch)
			slices.Sort(ids0)
			slices.Sort(ids2)
			n0, some0 := twice(t, m.r0.Store, ch)
			n2, some2 := twice(t, m.r2.Store, ch)
			if slices.Equal(ids0, ids2) && n0 == 0 && n2 == 0 {
				t.Logf("%s: both recorders hold the same %d lines", topic, len(ids0))
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: the recorders differ: %d and %d lines; only r0's: %s; only r2's: %s; r0 holds %d twice %v; r2 holds %d twice %v",
					topic, len(ids0), len(ids2), onlyIn(t, m.r0.Store, m.r2.Store, ch), onlyIn(t, m.r2.Store, m.r0.Store, ch), n0, some0, n2, some2)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Requests: failures only while a fault disturbed the mesh.
	req.mu.Lock()
	defer req.mu.Unlock()
	var outside []string
	for k, f := range req.fails {
		in := false
		for _, w := range windows {
			if !f.to.Before(w.from) && !f.from.After(w.to) { // in flight when a fault began, or started during one
				in = true
			}
		}
		if !in {
			outside = append(outside, f.from.Format("15:04:05.000")+"–"+f.to.Format("15:04:05.000")+" "+req.errs[k])
		}
	}
	t.Logf("requests: %d answered (slowest %v), %d failed during faults, %d outside", req.ok, req.worst.Round(time.Millisecond), len(req.fails)-len(outside), len(outside))
	if len(outside) > 0 {
		t.Errorf("%d requests failed while the mesh was whole: %v", len(outside), outside[:min(5, len(outside))])
	}
}

// checkAll waits until c got every payload of want, once; it reports
// what is missing or doubled otherwise.
func checkAll(t *testing.T, name string, c *tally, want []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing, twice := c.missing(want)
		if len(twice) > 0 {
			t.Errorf("%s got %d events twice: %v", name, len(twice), twice[:min(5, len(twice))])
			return
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s misses %d of %d events after %v: %v", name, len(missing), len(want), timeout, missing[:min(5, len(missing))])
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onlyIn describes the lines of channel that a holds and b does not (by
// msgid): how many, of whom, and the first few.
func onlyIn(t *testing.T, a, b *store.Store, channel string) string {
	t.Helper()
	held := map[string]bool{}
	if err := b.Scan(channel, 1, func(r store.Record) bool { held[r.MsgID] = true; return true }); err != nil {
		t.Fatal(err)
	}
	var n int
	by := map[string]int{}
	var first []string
	if err := a.Scan(channel, 1, func(r store.Record) bool {
		if held[r.MsgID] {
			return true
		}
		n++
		by[r.Nick]++
		if len(first) < 3 {
			first = append(first, fmt.Sprintf("%s %s %s %.40q", r.Time.Format("15:04:05.000"), r.MsgID, r.Nick, r.Body))
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d lines by %v, first %v", n, by, first)
}

// twice counts the lines of channel that st holds more than once (by
// msgid), and describes the first few with their sequence numbers.
func twice(t *testing.T, st *store.Store, channel string) (int, []string) {
	t.Helper()
	first := map[string]store.Record{}
	var n int
	var some []string
	if err := st.Scan(channel, 1, func(r store.Record) bool {
		if r.MsgID == "" {
			return true
		}
		if f, ok := first[r.MsgID]; ok {
			n++
			if len(some) < 3 {
				some = append(some, fmt.Sprintf("%s %s at %d and %d (%s)", r.MsgID, r.Time.Format("15:04:05.000"), f.Seq, r.Seq, r.Nick))
			}
			return true
		}
		first[r.MsgID] = r
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return n, some
}

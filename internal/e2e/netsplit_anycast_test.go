package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// splitLedger records every handler start of an anycast group: which
// worker ran which event at which epoch, and which runs succeeded.
type splitLedger struct {
	mu     sync.Mutex
	starts map[string]map[uint64][]string // payload → epoch → workers
	done   map[string]int                 // payload → successful runs
	failed int                            // handler failures (none expected)
}

func newSplitLedger() *splitLedger {
	return &splitLedger{starts: map[string]map[uint64][]string{}, done: map[string]int{}}
}

func (l *splitLedger) handler(worker string) mesh.Handler {
	return func(ctx context.Context, m *mesh.Message) error {
		p := string(m.Payload)
		l.mu.Lock()
		if l.starts[p] == nil {
			l.starts[p] = map[uint64][]string{}
		}
		l.starts[p][m.Claim.Epoch] = append(l.starts[p][m.Claim.Epoch], worker)
		l.mu.Unlock()
		select {
		case <-time.After(5 * time.Millisecond): // a little work
		case <-ctx.Done():
			return ctx.Err()
		}
		l.mu.Lock()
		l.done[p]++
		l.mu.Unlock()
		return nil
	}
}

// check reports the events never completed, those started twice at one
// epoch, and those completed more than once (at different epochs: the
// fencing token orders them).
func (l *splitLedger) check(want []string) (lost, sameEpoch, again []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range want {
		if l.done[p] == 0 {
			lost = append(lost, p)
		}
		if l.done[p] > 1 {
			again = append(again, p)
		}
		for ep, ws := range l.starts[p] {
			if len(ws) > 1 {
				sameEpoch = append(sameEpoch, fmt.Sprintf("%s@%d by %v", p, ep, ws))
			}
		}
	}
	sort.Strings(sameEpoch)
	return lost, sameEpoch, again
}

// splitGroup is an anycast group of three workers, one per server of a
// chain, each able to move to the others (Config.Servers), with history
// (a recorder on each end), a dead-letter watcher and a publisher on the
// first server.
type splitGroup struct {
	nw      *ircd.Network
	workers []*mesh.Node
	subs    []*mesh.AnycastSubscription
	pub     *mesh.Node
	dead    *tally
	ledger  *splitLedger
}

const splitTopic = "jobs"

func startSplitGroup(t *testing.T, nw *ircd.Network) *splitGroup {
	t.Helper()
	dir := t.TempDir()
	historytest.StartRecorder(t, splitConfig(nw, 0, history.Service, "r0"), filepath.Join(dir, "r0.db"), recorder.Config{})
	historytest.StartRecorder(t, splitConfig(nw, 2, history.Service, "r2"), filepath.Join(dir, "r2.db"), recorder.Config{})
	addrs := nw.Addrs()
	var cfgs []mesh.Config
	for i := range 3 {
		cfg := splitConfig(nw, i, "worker", fmt.Sprintf("w%d", i))
		cfg.History = history.NewSource()
		for j := range addrs {
			if j != i {
				cfg.Servers = append(cfg.Servers, addrs[j])
			}
		}
		cfgs = append(cfgs, cfg)
	}
	cfgs = append(cfgs, splitConfig(nw, 0, "pub", "p"), splitConfig(nw, 0, "dlq", "d"))
	nodes := meshtest.ConnectAll(t, cfgs...)
	g := &splitGroup{nw: nw, workers: nodes[:3], pub: nodes[3], dead: newTally(), ledger: newSplitLedger()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := nodes[4].Subscribe(ctx, claims.DeadTopic(splitTopic), g.dead.handle); err != nil {
		t.Fatal(err)
	}
	for i, w := range g.workers {
		s, err := w.SubscribeAnycast(ctx, splitTopic, g.ledger.handler(fmt.Sprintf("w%d", i)), mesh.Concurrency(8))
		if err != nil {
			t.Fatal(err)
		}
		g.subs = append(g.subs, s)
	}
	for _, n := range nodes {
		if err := n.WaitFor(ctx, "worker", history.Service); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, w := range g.workers {
		for len(w.Members("worker")) != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d workers", w.Nick(), len(w.Members("worker")))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(1500 * time.Millisecond) // the workers are ready (a heartbeat interval and a bit)
	return g
}

// finish checks the run: every event completed, none started twice at one
// epoch, none dead-lettered (no handler failed).
func (g *splitGroup) finish(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		lost, _, _ := g.ledger.check(want)
		if len(lost) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d of %d events never completed: %v", len(lost), len(want), lost[:min(5, len(lost))])
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would show
	lost, same, again := g.ledger.check(want)
	if len(same) > 0 {
		t.Errorf("%d events had two handlers at one epoch: %v", len(same), same[:min(5, len(same))])
	}
	g.dead.mu.Lock()
	dead := len(g.dead.got)
	g.dead.mu.Unlock()
	if dead > 0 {
		t.Errorf("%d events dead-lettered though no handler failed", dead)
	}
	var stats []string
	for i, s := range g.subs {
		st := s.ClaimStats()
		stats = append(stats, fmt.Sprintf("w%d %s: acked %d takeovers %d released %d quorum-lost %d resent %d",
			i, g.workers[i].Server(), st.Acked, st.Takeovers, st.Released, st.QuorumLost, st.Resent))
	}
	t.Logf("%d events: %d lost, %d at one epoch twice, %d completed at two epochs (fencing tokens order them), %d dead-lettered\n%s",
		len(want), len(lost), len(same), len(again), dead, strings.Join(stats, "\n"))
}

// TestNetsplitAnycastLinkCut: three workers, one on each server of a
// chain; the link to the last server is cut for 3 s while events are
// published on the first at 50/s. The first two keep the majority and
// take the third's claims over at its fence; the third, alone, claims
// nothing (it moves to another server: its side lost most of the mesh).
// Every event is completed, none by two handlers at one epoch, none
// dead-lettered.
func TestNetsplitAnycastLinkCut(t *testing.T) {
	t.Parallel()
	nw := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 3, Topology: ircd.Chain})
	g := startSplitGroup(t, nw)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startPublisher(g.pub, "e", splitTopic, 20*time.Millisecond)
	time.Sleep(time.Second)
	nw.Link(1, 2).Cut()
	time.Sleep(3 * time.Second)
	if err := nw.Link(1, 2).Heal(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	g.finish(t, p.halt())
}

// TestNetsplitAnycastMiddleKilled: the same group while the middle server
// is killed for 3 s and restarted: its worker moves to another server at
// once, the last server's worker (split away from most of the mesh) too.
func TestNetsplitAnycastMiddleKilled(t *testing.T) {
	t.Parallel()
	nw := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 3, Topology: ircd.Chain})
	g := startSplitGroup(t, nw)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startPublisher(g.pub, "e", splitTopic, 20*time.Millisecond)
	time.Sleep(time.Second)
	killed := time.Now()
	if err := nw.Kill(1); err != nil {
		t.Fatal(err)
	}
	for _, w := range g.workers {
		deadline := killed.Add(5 * time.Second)
		for !w.Connected() || w.Server() == nw.Server(1).Addr() {
			if time.Now().After(deadline) {
				t.Fatalf("%s not on a live server 5 s after the middle server died", w.Nick())
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("%s on %s after %v", w.Nick(), w.Server(), time.Since(killed).Round(time.Millisecond))
	}
	time.Sleep(3*time.Second - time.Since(killed))
	if err := nw.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	g.finish(t, p.halt())
}

package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// splitNS is the namespace of the netsplit tests.
const splitNS = "split"

// splitConfig is an in-process node's config on server i of a network.
func splitConfig(nw *ircd.Network, i int, service, instance string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server = nw.Server(i).Addr()
	cfg.Namespace = splitNS
	cfg.Service, cfg.Instance = service, instance
	cfg.AllowUnsigned = true
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 500*time.Millisecond
	return cfg
}

// tally counts the payloads a subscription got.
type tally struct {
	mu  sync.Mutex
	got map[string]int
}

func newTally() *tally { return &tally{got: map[string]int{}} }

func (c *tally) handle(_ context.Context, m *mesh.Message) error {
	c.mu.Lock()
	c.got[string(m.Payload)]++
	c.mu.Unlock()
	return nil
}

// missing returns the payloads of want not got, and those got twice.
func (c *tally) missing(want []string) (missing, twice []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range want {
		switch c.got[w] {
		case 0:
			missing = append(missing, w)
		case 1:
		default:
			twice = append(twice, w)
		}
	}
	return missing, twice
}

// publisher publishes numbered events every period until stopped and
// keeps what the server confirmed.
type publisher struct {
	n      *mesh.Node
	name   string
	mu     sync.Mutex
	sent   []string
	failed int
	stop   chan struct{}
	done   chan struct{}
}

func startPublisher(n *mesh.Node, name, topic string, period time.Duration) *publisher {
	p := &publisher{n: n, name: name, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			payload := fmt.Sprintf("%s-%05d", name, i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := n.Publish(ctx, topic, []byte(payload))
			cancel()
			p.mu.Lock()
			if err == nil {
				p.sent = append(p.sent, payload)
			} else {
				p.failed++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// halt stops publishing and returns what was confirmed.
func (p *publisher) halt() []string {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// waitAll waits until c got every payload of want, once; it fails the
// test with what is missing or doubled otherwise.
func waitAll(t *testing.T, name string, c *tally, want []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing, twice := c.missing(want)
		if len(twice) > 0 {
			t.Fatalf("%s got %d events twice: %v", name, len(twice), twice[:min(5, len(twice))])
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s misses %d of %d events after %v: %v", name, len(missing), len(want), timeout, missing[:min(5, len(missing))])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNetsplitMulticastHistory: on a chain of three servers, with a
// recorder and a subscriber with history on each end and a publisher on
// each end publishing at 50/s, the far link is cut for 3 s. Each side's
// subscriber misses the other side's events during the split; after the
// netjoin both get every event exactly once (from a recorder: their own
// side's once it filled its hole, or the other side's), and the two
// recorders end with the same lines. A subscriber without history cannot
// fill its gap: the gap is counted.
func TestNetsplitMulticastHistory(t *testing.T) {
	t.Parallel()
	nw := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 3, Topology: ircd.Chain})
	dir := t.TempDir()
	const topic = "news"
	r0 := historytest.StartRecorder(t, splitConfig(nw, 0, history.Service, "r0"), filepath.Join(dir, "r0.db"), recorder.Config{})
	r2 := historytest.StartRecorder(t, splitConfig(nw, 2, history.Service, "r2"), filepath.Join(dir, "r2.db"), recorder.Config{})

	withHistory := func(cfg mesh.Config) mesh.Config { cfg.History = history.NewSource(); return cfg }
	nodes := meshtest.ConnectAll(t,
		withHistory(splitConfig(nw, 0, "reader", "a")),
		withHistory(splitConfig(nw, 2, "reader", "c")),
		splitConfig(nw, 2, "plain", "c"),
		splitConfig(nw, 0, "pub", "a"),
		splitConfig(nw, 2, "pub", "c"))
	subA, subC, plain, pubA, pubC := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gotA, gotC, gotPlain := newTally(), newTally(), newTally()
	for _, s := range []struct {
		n *mesh.Node
		c *tally
	}{{subA, gotA}, {subC, gotC}, {plain, gotPlain}} {
		if _, err := s.n.Subscribe(ctx, topic, s.c.handle); err != nil {
			t.Fatal(err)
		}
	}
	historytest.WaitTopic(t, r0.Recorder, topic)
	historytest.WaitTopic(t, r2.Recorder, topic)
	for _, n := range nodes {
		if err := n.WaitFor(ctx, history.Service); err != nil {
			t.Fatal(err)
		}
	}

	pa := startPublisher(pubA, "a", topic, 20*time.Millisecond)
	pc := startPublisher(pubC, "c", topic, 20*time.Millisecond)
	time.Sleep(time.Second)
	nw.Link(1, 2).Cut()
	time.Sleep(3 * time.Second)
	if err := nw.Link(1, 2).Heal(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	want := append(pa.halt(), pc.halt()...)
	t.Logf("%d events published on both sides", len(want))

	waitAll(t, "the subscriber on the first server", gotA, want, 30*time.Second)
	waitAll(t, "the subscriber on the last server", gotC, want, 30*time.Second)

	// Both recorders end with the same lines.
	ch := mesh.Channel(splitNS, topic)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ids0, ids2 := historytest.StoredIDs(t, r0.Store, ch), historytest.StoredIDs(t, r2.Store, ch)
		slices.Sort(ids0)
		slices.Sort(ids2)
		if slices.Equal(ids0, ids2) && len(ids0) >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorders differ: %d and %d lines", len(ids0), len(ids2))
		}
		time.Sleep(100 * time.Millisecond)
	}

	missing, _ := gotPlain.missing(want)
	st := plain.SplitStats()
	t.Logf("without history: %d events missed; split stats %+v; with history: %+v, %+v", len(missing), st, subA.SplitStats(), subC.SplitStats())
	if len(missing) == 0 {
		t.Errorf("the subscriber without history missed nothing: was there a split?")
	}
	if st.Netjoins == 0 || st.Missed == 0 {
		t.Errorf("the subscriber without history did not count its gap: %+v", st)
	}
}

package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// Domain state against a real server (docs/PROTOCOL.md §8), in every trust
// mode.

// stateConfig is a test node of service that owns or depends on domains.
func stateConfig(srv *ircd.Server, m *meshtest.Mode, service string, owns, depends []string) mesh.Config {
	cfg := testConfig(srv, service)
	cfg.HeartbeatInterval = 300 * time.Millisecond
	cfg.KeepAliveTimeout = 6 * time.Second // a loaded machine can stall the server for seconds
	cfg.Owns, cfg.DomainDepends = owns, depends
	m.Apply(&cfg)
	return cfg
}

// changeLog records a watcher's changes.
type changeLog struct {
	mu sync.Mutex
	cs []state.Change
}

func (l *changeLog) add(c state.Change) { l.mu.Lock(); l.cs = append(l.cs, c); l.mu.Unlock() }

func (l *changeLog) kinds() []state.ChangeKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []state.ChangeKind
	for _, c := range l.cs {
		out = append(out, c.Kind)
	}
	return out
}

func (l *changeLog) has(k state.ChangeKind) bool {
	for _, x := range l.kinds() {
		if x == k {
			return true
		}
	}
	return false
}

// sameState fails unless every domain copy holds exactly want.
func sameState(t *testing.T, want *state.Snapshot, ds ...*mesh.Domain) {
	t.Helper()
	for i, d := range ds {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		got, err := d.Snapshot(ctx)
		cancel()
		if err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		if got.Version != want.Version || len(got.Entries) != len(want.Entries) {
			t.Fatalf("copy %d: version %d with %d keys, want version %d with %d keys", i, got.Version, len(got.Entries), want.Version, len(want.Entries))
		}
		for j, e := range want.Entries {
			g := got.Entries[j]
			if g.Key != e.Key || string(g.Value) != string(e.Value) || g.Version != e.Version || g.ID != e.ID {
				t.Fatalf("copy %d: key %s@%d=%q, want %s@%d=%q", i, g.Key, g.Version, g.Value, e.Key, e.Version, e.Value)
			}
		}
	}
}

// converged waits until the copies hold the same state and version, and
// returns it.
func converged(t *testing.T, timeout time.Duration, ds ...*mesh.Domain) *state.Snapshot {
	t.Helper()
	var snap *state.Snapshot
	waitUntil(t, timeout, "the copies to converge", func() bool {
		var first *state.Snapshot
		for _, d := range ds {
			s, err := d.Snapshot(context.Background())
			if err != nil {
				return false
			}
			if first == nil {
				first = s
				continue
			}
			if s.Version != first.Version || len(s.Entries) != len(first.Entries) {
				return false
			}
			for j := range s.Entries {
				a, b := s.Entries[j], first.Entries[j]
				if a.Key != b.Key || a.ID != b.ID || a.Version != b.Version {
					return false
				}
			}
		}
		snap = first
		return true
	})
	return snap
}

// TestStateReadWriteWatch: an owner writes (put, compare-and-set, delete,
// replace), a reader's copy follows, reads never wait after the first
// load, and a watcher sees every change in order (§8.3, §8.4).
func TestStateReadWriteWatch(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		srv := ircdtest.Start(t)
		nodes := connectAll(t,
			stateConfig(srv, m, "cfg", []string{"cfg.app"}, nil),
			stateConfig(srv, m, "audit", nil, []string{"cfg.app"}))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := nodes[1].WaitForDomains(ctx); err != nil {
			t.Fatal(err)
		}
		owner, _ := nodes[0].Domain("cfg.app")
		reader, _ := nodes[1].Domain("cfg.app")
		var log changeLog
		stop := reader.Watch(log.add)
		defer stop()

		e, err := owner.Put(ctx, "color", []byte("red"))
		if err != nil {
			t.Fatal(err)
		}
		if e.Version != 1 || e.DomainVersion != 1 {
			t.Fatalf("first put: %+v", e)
		}
		if _, err := owner.Put(ctx, "color", []byte("blue"), mesh.IfVersion(1)); err != nil {
			t.Fatal(err)
		}
		_, err = owner.Put(ctx, "color", []byte("green"), mesh.IfVersion(1))
		var ce *state.ConflictError
		if !errors.As(err, &ce) || ce.Actual.Version != 2 || !errors.Is(err, state.ErrConflict) {
			t.Fatalf("stale compare-and-set: %v", err)
		}
		if _, err := owner.Put(ctx, "size", []byte("xl"), mesh.IfAbsent()); err != nil {
			t.Fatal(err)
		}
		if _, err := owner.Delete(ctx, "size"); err != nil {
			t.Fatal(err)
		}
		v, err := owner.Replace(ctx, map[string][]byte{"color": []byte("black"), "shape": []byte("round")})
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the reader to reach the replace", func() bool { return reader.Info().Version == v })
		got, err := reader.Get(ctx, "color")
		if err != nil || string(got.Value) != "black" || got.Version != 3 || got.Writer != "cfg/"+nodes[0].Instance() {
			t.Fatalf("reader's color: %+v %v", got, err)
		}
		if _, err := reader.Get(ctx, "size"); !errors.Is(err, mesh.ErrNoKey) {
			t.Fatalf("deleted key: %v", err)
		}
		keys, _ := reader.Keys(ctx)
		if strings.Join(keys, ",") != "color,shape" {
			t.Fatalf("keys %v", keys)
		}
		sameState(t, converged(t, 10*time.Second, owner, reader), owner, reader)

		// The watcher saw every key change, in order, each starting where
		// the last one of its key ended.
		waitUntil(t, 5*time.Second, "the watcher", func() bool { return len(log.kinds()) >= 6 })
		log.mu.Lock()
		last := map[string]uint64{}
		var puts, dels int
		for _, c := range log.cs {
			if c.Kind != state.Put && c.Kind != state.Deleted {
				continue
			}
			if c.Old.Version != last[c.Key] || c.New.Version <= c.Old.Version || c.NewVersion < c.OldVersion {
				t.Errorf("change %s %s: old @%d new @%d (last seen @%d), domain v%d→v%d", c.Kind, c.Key, c.Old.Version, c.New.Version, last[c.Key], c.OldVersion, c.NewVersion)
			}
			last[c.Key] = c.New.Version
			if c.Kind == state.Put {
				puts++
			} else {
				dels++
			}
		}
		log.mu.Unlock()
		if puts != 5 || dels != 1 {
			t.Errorf("watched %d puts and %d deletes, want 5 and 1", puts, dels)
		}

		// Only the owner writes.
		if _, err := reader.Put(ctx, "color", []byte("pink")); !errors.Is(err, state.ErrNotOwner) {
			t.Fatalf("reader's put: %v", err)
		}
	})
}

// putMany writes n updates over keys keys, from workers goroutines, and
// fails the test on any error. A put whose outcome is unknown (the
// connection dropped) is made again, as a user would.
func putMany(t *testing.T, ctx context.Context, d *mesh.Domain, n, keys, workers int, value func(i int) []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				for {
					_, err := d.Put(ctx, fmt.Sprintf("key-%04d", i%keys), value(i))
					if errors.Is(err, state.ErrUnknownOutcome) && ctx.Err() == nil {
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("put %d: %w", i, err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestStateNewcomer: after 10,000 updates to a 1,000-key domain, a node
// that starts has the exact current state before its first read returns,
// loaded from a live copy; and again with the owner down (§8.5).
func TestStateNewcomer(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		srv := ircdtest.Start(t)
		nodes := connectAll(t,
			stateConfig(srv, m, "cfg", []string{"cfg"}, nil),
			stateConfig(srv, m, "audit", nil, []string{"cfg"}))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		owner, _ := nodes[0].Domain("cfg")
		reader, _ := nodes[1].Domain("cfg")
		if err := owner.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		// 10,000 updates unsigned, a quarter in the signing modes
		// (modeEvents); 1,000 keys in all: several pages.
		updates, keys := modeEvents(m, 10_000), 1_000
		putMany(t, ctx, owner, updates, keys, 64, func(i int) []byte { return fmt.Appendf(nil, "value %d %s", i, strings.Repeat("x", i%50)) })
		want := converged(t, 60*time.Second, owner, reader)
		if want.Version < uint64(updates) || len(want.Entries) != keys {
			t.Fatalf("version %d with %d keys after %d updates", want.Version, len(want.Entries), updates)
		}

		// A newcomer's first read: the exact state.
		late := meshtest.Connect(t, stateConfig(srv, m, "late", nil, []string{"cfg"}))
		d, err := late.Domain("cfg")
		if err != nil {
			t.Fatal(err)
		}
		sameState(t, want, d)

		// With the owner down: loaded from a reader's copy, stale.
		if err := nodes[0].Close(ctx); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the domain to become unavailable", func() bool { return !reader.Info().Available })
		later := meshtest.Connect(t, stateConfig(srv, m, "later", nil, []string{"cfg"}))
		d2, _ := later.Domain("cfg")
		sameState(t, want, d2)
		if info := d2.Info(); info.Available || !info.Stale {
			t.Errorf("owner down: %+v, want stale and unavailable", info)
		}
	})
}

// TestStateConcurrentOwners: two instances of the owner write the same
// keys at the same time (plain writes and compare-and-sets); every member
// converges on the same state and version, and of the compare-and-sets
// racing from one version at most one wins (§8.3, §8.4).
func TestStateConcurrentOwners(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		srv := ircdtest.Start(t)
		nodes := connectAll(t,
			stateConfig(srv, m, "cfg", []string{"cfg"}, nil),
			stateConfig(srv, m, "cfg", []string{"cfg"}, nil),
			stateConfig(srv, m, "audit", nil, []string{"cfg"}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := nodes[2].WaitForDomains(ctx); err != nil {
			t.Fatal(err)
		}
		ds := make([]*mesh.Domain, len(nodes))
		for i, n := range nodes {
			ds[i], _ = n.Domain("cfg")
			if err := ds[i].Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				putMany(t, ctx, ds[w], 600, 20, 8, func(i int) []byte { return fmt.Appendf(nil, "w%d-%d", w, i) })
			})
		}
		wg.Wait()
		sameState(t, converged(t, 30*time.Second, ds...), ds...)

		// Counters incremented with compare-and-set by both owners at once.
		var wins [2]int
		for w := range 2 {
			wg.Go(func() {
				for range 50 {
					e, err := ds[w].Get(ctx, "counter")
					var cur uint64
					if err == nil {
						cur = e.Version
					}
					opt := mesh.IfVersion(cur)
					if cur == 0 {
						opt = mesh.IfAbsent()
					}
					_, err = ds[w].Put(ctx, "counter", fmt.Appendf(nil, "%d", cur+1), opt)
					switch {
					case err == nil:
						wins[w]++
					case errors.Is(err, state.ErrConflict):
					default:
						t.Errorf("owner %d: %v", w, err)
						return
					}
				}
			})
		}
		wg.Wait()
		snap := converged(t, 30*time.Second, ds...)
		sameState(t, snap, ds...)
		c, ok := snap.Get("counter")
		if !ok {
			t.Fatal("no counter")
		}
		// Every successful compare-and-set raised the key's version by one
		// and no two succeeded from the same version.
		if int(c.Version) != wins[0]+wins[1] || string(c.Value) != fmt.Sprint(c.Version) {
			t.Errorf("counter %q at version %d after %d+%d successful compare-and-sets", c.Value, c.Version, wins[0], wins[1])
		}
	})
}

// TestStateOwnerGone: the owner's process dies (its connection drops
// without QUIT, the server sends one: its last will); every node sees the
// domain unavailable within the heartbeat bounds and keeps the last state,
// stale; a new owner instance loads it, continues the version, and the
// domain is available again (§8.7).
func TestStateOwnerGone(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		srv := ircdtest.Start(t)
		nodes := connectAll(t,
			stateConfig(srv, m, "cfg", []string{"cfg"}, nil),
			stateConfig(srv, m, "audit", nil, []string{"cfg"}),
			stateConfig(srv, m, "billing", nil, []string{"cfg"}))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range nodes[1:] {
			if err := n.WaitForDomains(ctx); err != nil {
				t.Fatal(err)
			}
		}
		owner, _ := nodes[0].Domain("cfg")
		for i := range 20 {
			if _, err := owner.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		readers := []*mesh.Domain{}
		logs := []*changeLog{}
		for _, n := range nodes[1:] {
			d, _ := n.Domain("cfg")
			readers = append(readers, d)
			l := &changeLog{}
			defer d.Watch(l.add)()
			logs = append(logs, l)
		}
		before := converged(t, 10*time.Second, append([]*mesh.Domain{owner}, readers...)...)

		mesh.Crash(nodes[0])
		cfg := stateConfig(srv, m, "cfg", []string{"cfg"}, nil)
		bound := time.Duration(float64(cfg.HeartbeatInterval)*cfg.DeadAfter) + time.Second
		start := time.Now()
		for i, d := range readers {
			waitUntil(t, bound, fmt.Sprintf("reader %d to see the domain unavailable", i), func() bool { return d.Info().Stale })
			if !logs[i].has(state.Unavailable) {
				t.Errorf("reader %d's watcher was not told", i)
			}
		}
		t.Logf("unavailable everywhere %s after the crash", time.Since(start).Round(time.Millisecond))
		sameState(t, before, readers...)
		e, err := readers[0].Get(ctx, "k3")
		if err != nil || string(e.Value) != "v" {
			t.Fatalf("stale read: %+v %v", e, err)
		}

		back := meshtest.Connect(t, cfg)
		d, _ := back.Domain("cfg")
		e, err = d.Put(ctx, "k0", []byte("again"))
		if err != nil {
			t.Fatal(err)
		}
		if e.DomainVersion != before.Version+1 || e.Version != 2 {
			t.Fatalf("the new owner wrote %+v; want domain version %d, key version 2", e, before.Version+1)
		}
		for i, r := range readers {
			waitUntil(t, 10*time.Second, fmt.Sprintf("reader %d to see the domain available", i), func() bool {
				info := r.Info()
				return info.Available && info.Version == before.Version+1
			})
		}
	})
}

// TestStateDependency: a service that depends on a domain waits for it and
// proceeds once its owner is up; without the owner it fails with an error
// that names the domain; with Config.DomainWait, Connect fails (§8.8).
func TestStateDependency(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	m := meshtest.NewMode(meshtest.Unsigned)
	dep := meshtest.Connect(t, stateConfig(srv, m, "billing", nil, []string{"rates.eur"}))

	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	err := dep.WaitForDomains(ctx)
	cancel()
	if !errors.Is(err, mesh.ErrDomainUnavailable) || !strings.Contains(err.Error(), "rates.eur") || !strings.Contains(err.Error(), "no live instance of rates") {
		t.Fatalf("without the owner: %v", err)
	}

	cfg := stateConfig(srv, m, "billing", nil, []string{"rates.eur"})
	cfg.DomainWait = 500 * time.Millisecond
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err = mesh.Connect(cctx, cfg)
	ccancel()
	if !errors.Is(err, mesh.ErrDomainUnavailable) {
		t.Fatalf("Connect with DomainWait and no owner: %v", err)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- dep.WaitForDomains(ctx)
	}()
	owner := meshtest.Connect(t, stateConfig(srv, m, "rates", []string{"rates.eur"}, nil))
	d, _ := owner.Domain("rates.eur")
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.Put(ctx, "usd", []byte("1.08")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("with the owner up: %v", err)
	}
	rd, _ := dep.Domain("rates.eur")
	waitUntil(t, 5*time.Second, "the rate", func() bool {
		e, err := rd.Get(ctx, "usd")
		return err == nil && string(e.Value) == "1.08"
	})

	// A cycle between domains shows in the dependency graph.
	cyc := meshtest.Connect(t, stateConfig(srv, m, "rates", []string{"rates"}, []string{"billing"}))
	billing := meshtest.Connect(t, stateConfig(srv, m, "billing", []string{"billing"}, []string{"rates"}))
	_ = cyc
	waitUntil(t, 10*time.Second, "the cycle", func() bool {
		_, cycles := billing.DomainDependencies()
		return len(cycles) > 0
	})
}

// TestStateLinked: state across two linked InspIRCd servers, which relay
// lines of different senders in different orders: an owner instance on
// each server writes the same keys at the same time, and every member, on
// either server, converges on the same state and version (§8.3). A
// newcomer on the other server loads it.
func TestStateLinked(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		a, b := ircdtest.StartLinked(t)
		nodes := connectAll(t,
			stateConfig(a, m, "cfg", []string{"cfg"}, nil),
			stateConfig(b, m, "cfg", []string{"cfg"}, nil),
			stateConfig(a, m, "audit", nil, []string{"cfg"}),
			stateConfig(b, m, "audit", nil, []string{"cfg"}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		ds := make([]*mesh.Domain, len(nodes))
		for i, n := range nodes {
			ds[i] = mustDomain(t, n, "cfg")
			if err := n.WaitForDomains(ctx, "cfg"); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				putMany(t, ctx, ds[w], 1000, 30, 16, func(i int) []byte { return fmt.Appendf(nil, "server%d-%d", w, i) })
			})
		}
		wg.Wait()
		want := converged(t, 60*time.Second, ds...)
		if want.Version < 1000 || len(want.Entries) != 30 {
			t.Fatalf("version %d with %d keys", want.Version, len(want.Entries))
		}
		late := meshtest.Connect(t, stateConfig(b, m, "late", nil, []string{"cfg"}))
		sameState(t, want, mustDomain(t, late, "cfg"))
	})
}

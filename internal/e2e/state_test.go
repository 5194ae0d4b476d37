package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/internal/proctest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// TestStateOwnerKilled: as a user runs it, in every trust mode: the owner
// of a domain runs as two `meshbot serve --owns` processes, a reader
// depends on the domain. Both owner processes are SIGKILLed: the reader
// sees the domain unavailable within the heartbeat bound, its watcher is
// told, and its stale copy still reads. An owner process started again
// makes the domain available again, and the next write continues its
// version (it loaded the copy from the reader, not from scratch).
func TestStateOwnerKilled(t *testing.T) {
	srv := ircdtest.Start(t)
	for i, name := range meshtest.ModeNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // a namespace each
			m := meshtest.NewMode(name)
			ns := fmt.Sprintf("st%d", i)
			dir := t.TempDir()
			ownerArgs := func(instance string) []string {
				return append([]string{"serve", "--server", srv.Addr(), "--namespace", ns, "--service", "cfg",
					"--instance", fmt.Sprintf("%sm%d", instance, i), "--owns", "cfg"}, m.Flags(t, dir, "cfg", "audit")...)
			}
			o1 := proctest.Start(t, ownerArgs("o1")...)
			o2 := proctest.Start(t, ownerArgs("o2")...)
			o1.WaitReady(startupBudget)
			o2.WaitReady(startupBudget)

			config := func(service, instance string, owns, needs []string) mesh.Config {
				cfg := mesh.DefaultConfig()
				cfg.Server, cfg.Namespace, cfg.Service, cfg.Instance = srv.Addr(), ns, service, fmt.Sprintf("%sm%d", instance, i) // nicks are server-wide
				cfg.Owns, cfg.DomainDepends = owns, needs
				return m.Config(cfg)
			}
			t0 := time.Now()
			step := func(what string) { t.Logf("%6s %s", time.Since(t0).Round(time.Millisecond), what) }
			step("owners ready")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			reader := meshtest.Connect(t, config("audit", "1", nil, []string{"cfg"}))
			if err := reader.WaitForDomains(ctx); err != nil {
				t.Fatal(err)
			}
			step("reader loaded")
			rd, _ := reader.Domain("cfg")
			var changes changeLog
			defer rd.Watch(changes.add)()

			// A third instance of the owner writes, then leaves.
			writer := meshtest.Connect(t, config("cfg", "w", []string{"cfg"}, nil))
			wd, _ := writer.Domain("cfg")
			var last state.Entry
			for k := range 50 {
				e, err := wd.Put(ctx, fmt.Sprintf("k%02d", k), []byte(fmt.Sprintf("v%d", k)))
				if err != nil {
					t.Fatal(err)
				}
				last = e
			}
			if err := writer.Close(ctx); err != nil {
				t.Fatal(err)
			}
			step("written")
			version := last.DomainVersion
			waitFor(t, 20*time.Second, "the reader to hold the written version", func() bool {
				info := rd.Info()
				return info.Version == version && info.Available
			})

			step("reader holds it")
			cfg := config("cfg", "x", nil, nil)
			bound := time.Duration(float64(cfg.HeartbeatInterval)*cfg.DeadAfter) + 2*time.Second
			killed := time.Now()
			o1.Kill()
			o2.Kill()
			waitFor(t, bound, "the reader to see the domain unavailable", func() bool { return rd.Info().Stale })
			t.Logf("unavailable %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
			// Watchers are told on their own goroutine, after Info changed.
			waitFor(t, 5*time.Second, "the reader's watcher to be told the domain became unavailable", func() bool {
				return changes.followed(state.Unavailable)
			})
			if e, err := rd.Get(ctx, "k07"); err != nil || string(e.Value) != "v7" {
				t.Fatalf("stale read of k07: %+v, %v", e, err)
			}

			o1 = proctest.Start(t, ownerArgs("o1")...)
			o1.WaitReady(startupBudget)
			waitFor(t, 20*time.Second, "the domain available again", func() bool { return rd.Info().Available })
			waitFor(t, 5*time.Second, "the reader's watcher to be told the domain is available again", func() bool {
				return changes.followed(state.Unavailable, state.Available)
			})
			step("available again")
			writer = meshtest.Connect(t, config("cfg", "w", []string{"cfg"}, nil))
			wd, _ = writer.Domain("cfg")
			e, err := wd.Put(ctx, "k00", []byte("again"))
			if err != nil {
				t.Fatal(err)
			}
			if e.DomainVersion != version+1 || e.Version != 2 {
				t.Fatalf("the write after the restart is %+v; want domain version %d, key version 2", e, version+1)
			}
			waitFor(t, 20*time.Second, "the reader to see the new version", func() bool { return rd.Info().Version == version+1 })
			step("done")
			if o1.Exited() {
				t.Fatalf("the restarted owner exited:\n%s", o1.Stderr())
			}
		})
	}
}

// changeLog records the changes a watcher is told.
type changeLog struct {
	mu sync.Mutex
	ks []state.ChangeKind
}

func (l *changeLog) add(c state.Change) { l.mu.Lock(); l.ks = append(l.ks, c.Kind); l.mu.Unlock() }

func (l *changeLog) kinds() []state.ChangeKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ks)
}

// followed reports whether the watcher was told kinds, in this order
// (other changes between them).
func (l *changeLog) followed(kinds ...state.ChangeKind) bool {
	for _, k := range l.kinds() {
		if len(kinds) > 0 && k == kinds[0] {
			kinds = kinds[1:]
		}
	}
	return len(kinds) == 0
}

// waitFor polls cond until it holds, or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

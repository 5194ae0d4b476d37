package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/internal/proctest"
	"github.com/meshbot/meshbot/mesh"
)

// TestSignedWorkerCatchesUp: as a user runs it, in every trust mode (and
// HMAC with --require-signed everywhere): a `meshbot history` recorder and
// one `meshbot serve --anycast --catch-up` worker; 10 events are handled
// live; the worker is stopped; 20 events are published; the worker is
// started again. It completes each of the 30 events once: the 20 it missed
// come from the recorder, verified with the worker's own keys, and the
// recorder's answers are signed with its own.
func TestSignedWorkerCatchesUp(t *testing.T) {
	srv := ircdtest.Start(t)
	modes := append([]string(nil), meshtest.ModeNames...)
	modes = append(modes, meshtest.HMACRequired)
	for i, name := range modes {
		t.Run(name, func(t *testing.T) {
			m := meshtest.NewMode(name)
			ns := fmt.Sprintf("sig%d", i)
			dir := t.TempDir()
			base := []string{"--server", srv.Addr(), "--namespace", ns}
			rec := proctest.Start(t, append(append([]string{"history", "--instance", "r1", "--store", filepath.Join(dir, "h.db"),
				"--rescan", "200ms", "--skip-heartbeats"}, base...), m.Flags(t, dir, history.Service, "worker", "pub")...)...)
			rec.WaitReady(startupBudget)
			events := filepath.Join(dir, "events.jsonl")
			workerArgs := append(append([]string{"serve", "--service", "worker", "--instance", "w1", "--subscribe", "jobs",
				"--anycast", "--catch-up", "--events", events}, base...), m.Flags(t, dir, "worker", history.Service, "pub")...)
			worker := proctest.Start(t, workerArgs...)
			worker.WaitReady(startupBudget)

			cfg := mesh.DefaultConfig()
			cfg.Server, cfg.Namespace, cfg.Service = srv.Addr(), ns, "pub"
			pub := meshtest.Connect(t, m.Config(cfg))
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			publish := func(from, to int) {
				t.Helper()
				for i := from; i < to; i++ {
					if _, err := pub.Publish(ctx, "jobs", []byte(fmt.Sprintf("job-%02d", i))); err != nil {
						t.Fatal(err)
					}
				}
			}
			// recorded waits until the recorder holds every job up to n.
			recorded := func(n int) {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for {
					seen := map[string]bool{}
					_, err := history.Replay(ctx, pub, "jobs", history.ReplayOptions{}, func(r history.Replayed) error {
						seen[string(r.Envelope.Payload)] = true
						return nil
					})
					all := err == nil
					for i := range n {
						all = all && seen[fmt.Sprintf("job-%02d", i)]
					}
					if all {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("the recorder holds %d lines of jobs, not all %d jobs (err %v)", len(seen), n, err)
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
			handled := func(n int) []proctest.Event {
				return proctest.WaitEvents(t, events, 60*time.Second, func(evs []proctest.Event) bool {
					return distinctPayloads(evs) >= n
				})
			}

			// The recorder follows the topic once it sees it announced or
			// listed: warm up until it records, so the jobs are all recorded.
			deadline := time.Now().Add(30 * time.Second)
			for w := 0; ; w++ {
				if _, err := pub.Publish(ctx, "jobs", []byte(fmt.Sprintf("warm-%d", w))); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
				n := 0
				_, err := history.Replay(ctx, pub, "jobs", history.ReplayOptions{}, func(history.Replayed) error { n++; return nil })
				if err == nil && n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the recorder records nothing of jobs (%v)", err)
				}
			}
			publish(0, 10)
			handled(10)
			recorded(10)
			if code := worker.Terminate(15 * time.Second); code != 0 {
				t.Fatalf("the worker exited with %d:\n%s", code, worker.Stderr())
			}
			publish(10, 30)
			recorded(30)
			worker = proctest.Start(t, workerArgs...)
			worker.WaitReady(startupBudget)
			evs := handled(30)
			time.Sleep(time.Second) // a second run of any job would show now
			evs, err := proctest.ReadEvents(events)
			if err != nil {
				t.Fatal(err)
			}
			times := map[string]int{}
			for _, e := range evs {
				if e.Kind == "event" && strings.HasPrefix(string(e.Data()), "job-") {
					times[string(e.Data())]++
				}
			}
			for i := range 30 {
				if p := fmt.Sprintf("job-%02d", i); times[p] != 1 {
					t.Errorf("%s handled %d times, want once", p, times[p])
				}
			}
			if len(times) != 30 {
				t.Errorf("%d distinct jobs handled, want 30: %v", len(times), times)
			}
			if strings.Contains(worker.Stderr(), "refused by this node's keys") {
				t.Errorf("the worker refused recorded lines:\n%s", worker.Stderr())
			}
		})
	}
}

// distinctPayloads counts the distinct payloads of handled events.
func distinctPayloads(evs []proctest.Event) int {
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Kind == "event" && strings.HasPrefix(string(e.Data()), "job-") {
			seen[string(e.Data())] = true
		}
	}
	return len(seen)
}

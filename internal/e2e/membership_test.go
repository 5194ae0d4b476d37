package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// The detection bounds of the heartbeat issue, at the default 1 s interval.
const (
	interval      = time.Second
	killBound     = time.Second      // SIGKILL: the server's QUIT
	suspectBound  = 5 * interval / 2 // SIGSTOP: suspected within 2.5 intervals
	deadBound     = 7 * interval / 2 // and dead within 3.5
	startupBudget = 30 * time.Second // process start and registration
)

// TestFailureDetection runs three worker processes and an observer. A
// SIGKILLed worker is seen dead within a second (the server's QUIT); a
// SIGSTOPped one is suspected within 2.5 intervals and dead within 3.5, and
// comes back alive after SIGCONT; a worker restarted with its instance id is
// one member with a new incarnation, not two.
func TestFailureDetection(t *testing.T) {
	srv := ircdtest.Start(t)
	obs := newObserver(t, srv, "watcher")
	w1 := serve(t, srv, "worker", "w1")
	w2 := serve(t, srv, "worker", "w2")
	w3 := serve(t, srv, "worker", "w3")
	for _, w := range []interface{ WaitReady(time.Duration) string }{w1, w2, w3} {
		w.WaitReady(startupBudget)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitLive(t, obs.Node, "worker", 3, ctx)
	before := obs.Members("worker")

	// SIGKILL: dead at once.
	killed := time.Now()
	w1.Kill()
	at := obs.waitEvent(t, heartbeat.Left, "worker-w1", killed, 5*time.Second)
	if d := at.Sub(killed); d > killBound {
		t.Errorf("SIGKILL seen after %s, bound %s", d, killBound)
	}
	t.Logf("SIGKILL: dead after %s", at.Sub(killed).Round(time.Millisecond))

	// SIGSTOP: suspected, then dead; SIGCONT: alive again.
	stopped := time.Now()
	w2.Stop()
	sus := obs.waitEvent(t, heartbeat.Suspected, "worker-w2", stopped, 10*time.Second)
	dead := obs.waitEvent(t, heartbeat.Left, "worker-w2", stopped, 10*time.Second)
	if d := sus.Sub(stopped); d > suspectBound {
		t.Errorf("SIGSTOP suspected after %s, bound %s", d, suspectBound)
	}
	if d := dead.Sub(stopped); d > deadBound {
		t.Errorf("SIGSTOP dead after %s, bound %s", d, deadBound)
	}
	t.Logf("SIGSTOP: suspected after %s, dead after %s", sus.Sub(stopped).Round(time.Millisecond), dead.Sub(stopped).Round(time.Millisecond))
	conted := time.Now()
	w2.Cont()
	back := obs.waitEvent(t, heartbeat.Recovered, "worker-w2", conted, 10*time.Second)
	t.Logf("SIGCONT: alive again after %s", back.Sub(conted).Round(time.Millisecond))

	// w3 was never disturbed: never suspected.
	obs.mu.Lock()
	for _, ev := range obs.events {
		if ev.Member.Nick == "worker-w3" && ev.Kind != heartbeat.Joined {
			t.Errorf("undisturbed worker-w3 had a %s event", ev.Kind)
		}
	}
	obs.mu.Unlock()

	// Restart w1 with the same instance id: one member, new incarnation.
	w1 = w1.Restart(t)
	w1.WaitReady(startupBudget)
	waitLive(t, obs.Node, "worker", 3, ctx)
	var inc0, inc1 uint64
	for _, m := range before {
		if m.Instance == "w1" {
			inc0 = m.Incarnation
		}
	}
	count := 0
	for _, m := range obs.Members("worker") {
		if m.Instance == "w1" {
			count++
			inc1 = m.Incarnation
		}
	}
	if count != 1 || inc1 == inc0 {
		t.Fatalf("restarted w1: %d members, incarnation %d -> %d", count, inc0, inc1)
	}
}

// waitLive waits until n sees count live instances of service.
func waitLive(t *testing.T, n *mesh.Node, service string, count int, ctx context.Context) {
	t.Helper()
	for len(n.Members(service)) != count {
		select {
		case <-ctx.Done():
			t.Fatalf("%s sees %d live %s, want %d: %v", n.Nick(), len(n.Members(service)), service, count, n.Members(service))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

package mesh_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestDuplicateInstanceAcrossSplit: two processes started with one
// instance, one on each side of a netsplit, both register (neither server
// knows the other's nick). When the network joins, the servers rename the
// one that registered later; it sees the first one's lines under its nick
// and stops serving for good with ErrDuplicateInstance, while the first
// keeps its nick and serves; the mesh sees one member, the first.
func TestDuplicateInstanceAcrossSplit(t *testing.T) {
	t.Parallel()
	nw := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	link := nw.Link(0, 1)
	link.Cut()
	if err := nw.WaitSees(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := nw.WaitSees(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cfg := netConfig(nw, 0, "twin")
	cfg.Instance = "x"
	first := connect(t, cfg)
	// Nick timestamps count seconds: the second registers a second later.
	time.Sleep(1100 * time.Millisecond)
	cfg2 := netConfig(nw, 1, "twin")
	cfg2.Instance = "x"
	second := connect(t, cfg2)
	watcher := connect(t, netConfig(nw, 0, "watcher"))
	waitMembers(t, watcher, "twin", 1)

	if err := link.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.Stopped():
	case <-time.After(15 * time.Second):
		t.Fatalf("the second process still serves 15 s after the netjoin (connected %v, err %v)", second.Connected(), second.Err())
	}
	err := second.Err()
	if !errors.Is(err, mesh.ErrDuplicateInstance) || !strings.Contains(err.Error(), "twin-x") {
		t.Fatalf("the second process stopped with %v, want ErrDuplicateInstance naming twin-x", err)
	}
	t.Logf("second: %v", err)
	if first.Err() != nil {
		t.Errorf("the first process stopped too: %v", first.Err())
	}
	// The second never comes back; the first keeps its nick and serves.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if second.Connected() {
			t.Fatalf("the second process reconnected after stopping")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !first.Connected() || first.Nick() != "twin-x" {
		t.Fatalf("the first process: connected %v as %s", first.Connected(), first.Nick())
	}
	got := newCollector()
	if _, err := first.Subscribe(ctx, "news", got.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := watcher.Publish(ctx, "news", []byte("to the first")); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 1, 10*time.Second)
	ms := watcher.Members("twin")
	if len(ms) != 1 || ms[0].Incarnation != uint64(first.Started().UnixNano()) {
		t.Errorf("the watcher sees %+v, want the first process only (incarnation %d)", ms, first.Started().UnixNano())
	}
}

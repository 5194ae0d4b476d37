package mesh_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// waitServer waits until n is connected to addr and returns how long it
// took from since.
func waitServer(t *testing.T, n *mesh.Node, addr string, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := since.Add(timeout)
	for !(n.Connected() && n.Server() == addr) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not on %s within %v (on %s, connected %v)", n.Nick(), addr, timeout, n.Server(), n.Connected())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(since)
}

// TestFailover: a node given the servers of a star network moves to the
// next one within 2 s of its server's death, and within FailoverAfter and
// a registration of its server freezing; the others see the same member
// come back (recovered, the same incarnation), its subscription keeps
// delivering.
func TestFailover(t *testing.T) {
	t.Parallel()
	nw := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 3, Topology: ircd.Star})
	addrs := nw.Addrs()
	cx := netConfig(nw, 1, "mover")
	cx.Instance = "x"
	cx.Servers = []string{addrs[2], addrs[0]}
	co := netConfig(nw, 2, "watcher")
	nodes := connectAll(t, cx, co)
	x, o := nodes[0], nodes[1]
	if got := x.Servers(); len(got) != 3 || got[0] != addrs[1] || got[1] != addrs[2] || got[2] != addrs[0] {
		t.Fatalf("Servers() = %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := newCollector()
	if _, err := x.Subscribe(ctx, "news", got.handle); err != nil {
		t.Fatal(err)
	}
	eo := watch(t, o)
	waitMembers(t, o, "mover", 1)
	inc := o.Members("mover")[0].Incarnation

	// Its server dies: the next one at once.
	killed := time.Now()
	if err := nw.Kill(1); err != nil {
		t.Fatal(err)
	}
	d := waitServer(t, x, addrs[2], killed, 5*time.Second)
	t.Logf("on the next server %v after its server died", d.Round(time.Millisecond))
	if d > 2*time.Second {
		t.Errorf("back on a live server %v after its server died, want within 2 s", d)
	}
	ev, _ := eo.waitEvent(t, heartbeat.Recovered, "x", killed, 5*time.Second)
	if ev.Member.Incarnation != inc {
		t.Errorf("x came back as incarnation %d, want %d (the same instance)", ev.Member.Incarnation, inc)
	}
	for _, k := range eo.kinds("x") {
		if k == heartbeat.Restarted || k == heartbeat.Left {
			t.Errorf("the watcher saw x %s: %v", k, eo.kinds("x"))
		}
	}
	if _, err := o.Publish(ctx, "news", []byte("after the move")); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 1, 10*time.Second)

	// Its new server freezes: silent for FailoverAfter, x leaves it. The
	// network keeps x's nick on the frozen server until its links time
	// out, so no other server takes x yet; once the frozen server is
	// killed (restarted), x is on another within 2 s.
	if err := nw.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	if err := nw.Freeze(2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for x.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("x still connected to its frozen server after 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("left its frozen server after %v (FailoverAfter %v)", time.Since(frozen).Round(time.Millisecond), time.Second)
	time.Sleep(time.Second)
	killed = time.Now()
	if err := nw.Kill(2); err != nil {
		t.Fatal(err)
	}
	deadline = killed.Add(5 * time.Second)
	for !x.Connected() || x.Server() == addrs[2] {
		if time.Now().After(deadline) {
			t.Fatalf("x not on a live server 5 s after its frozen server died (on %s, connected %v)", x.Server(), x.Connected())
		}
		time.Sleep(5 * time.Millisecond)
	}
	d = time.Since(killed)
	t.Logf("on %s %v after its frozen server died", x.Server(), d.Round(time.Millisecond))
	if d > 2*time.Second {
		t.Errorf("back on a live server %v after its frozen server died, want within 2 s", d)
	}
}

// TestFailoverFirstConnect: Connect tries every server of the list before
// it gives up; a dead first server is passed over.
func TestFailoverFirstConnect(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	dead := freeAddr(t)
	cfg := testConfig(srv, "svc")
	cfg.Server = dead
	cfg.Servers = []string{srv.Addr()}
	n := connect(t, cfg)
	if n.Server() != srv.Addr() {
		t.Errorf("connected to %s, want %s", n.Server(), srv.Addr())
	}
	cfg.Server, cfg.Servers = dead, []string{freeAddr(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n, err := mesh.Connect(ctx, cfg); err == nil {
		_ = n.Close(ctx)
		t.Fatal("Connect succeeded with no server listening")
	} else if !errors.Is(err, mesh.ErrDisconnected) {
		t.Errorf("Connect with no server listening: %v", err)
	}
	cfg.Servers = []string{"nohost"}
	if _, err := mesh.Connect(ctx, cfg); !errors.Is(err, mesh.ErrInvalidConfig) {
		t.Errorf("a server without a port: %v, want ErrInvalidConfig", err)
	}
}

// freeAddr is a loopback address nothing listens on (a port that was free
// when picked).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

package mesh_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// netConfig is a test config on server i of a network.
func netConfig(net *ircd.Network, i int, service string) mesh.Config {
	cfg := testConfig(net.Server(i), service)
	cfg.Namespace = "ns"
	return cfg
}

// events records one node's membership events.
type events struct {
	mu  sync.Mutex
	evs []heartbeat.Event
	at  []time.Time
}

func watch(t *testing.T, n *mesh.Node) *events {
	e := &events{}
	stop := n.WatchMembers(func(ev heartbeat.Event) {
		e.mu.Lock()
		e.evs = append(e.evs, ev)
		e.at = append(e.at, time.Now())
		e.mu.Unlock()
	})
	t.Cleanup(stop)
	return e
}

// waitEvent waits for an event of kind about instance and returns it and
// when it came.
func (e *events) waitEvent(t *testing.T, kind heartbeat.EventKind, instance string, after time.Time, timeout time.Duration) (heartbeat.Event, time.Time) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		e.mu.Lock()
		for i, ev := range e.evs {
			if ev.Kind == kind && ev.Member.Instance == instance && !e.at[i].Before(after) {
				e.mu.Unlock()
				return ev, e.at[i]
			}
		}
		e.mu.Unlock()
		if time.Now().After(deadline) {
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("no %s event for %s within %v; events: %v", kind, instance, timeout, e.evs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *events) kinds(instance string) []heartbeat.EventKind {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []heartbeat.EventKind
	for _, ev := range e.evs {
		if ev.Member.Instance == instance {
			out = append(out, ev.Kind)
		}
	}
	return out
}

// TestNetsplitMembership: on a chain of three servers, a link cut makes
// the members on the other side unreachable — not dead, not among the live
// members, no "left" — on both sides, with the split's servers; when the
// link heals they are back (recovered, naming the split, the same
// incarnation) within a heartbeat interval of the network joining, and
// the node counts the split and the netjoin.
func TestNetsplitMembership(t *testing.T) {
	t.Parallel()
	net := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 3, Topology: ircd.Chain})
	ca, cc := netConfig(net, 0, "svc"), netConfig(net, 2, "svc")
	ca.Instance, cc.Instance = "a", "c"
	nodes := connectAll(t, ca, cc)
	a, c := nodes[0], nodes[1]
	ea, ec := watch(t, a), watch(t, c)
	waitMembers(t, a, "svc", 2)
	waitMembers(t, c, "svc", 2)
	incC := a.Members("svc")[1].Incarnation

	cut := time.Now()
	net.Link(1, 2).Cut()
	ev, _ := ea.waitEvent(t, heartbeat.SplitAway, "c", cut, 5*time.Second)
	if ev.Split.Near != ircd.NetworkServerName(1) || ev.Split.Far != ircd.NetworkServerName(2) {
		t.Errorf("a sees c lost in the split %+v, want %s %s", ev.Split, ircd.NetworkServerName(1), ircd.NetworkServerName(2))
	}
	ec.waitEvent(t, heartbeat.SplitAway, "a", cut, 5*time.Second)
	if ms := a.Members("svc"); len(ms) != 1 || ms[0].Instance != "a" {
		t.Errorf("a's live members during the split: %v", ms)
	}
	// Silence says nothing of an unreachable member: past DeadAfter
	// intervals it is still unreachable, never left.
	time.Sleep(time.Duration(a.Members("svc")[0].Beat.Interval()) * 4)
	for _, m := range a.AllMembers() {
		if m.Instance == "c" && m.State != heartbeat.Unreachable {
			t.Errorf("c is %s at a after 4 intervals of split, want unreachable", m.State)
		}
	}
	if slices.Contains(ea.kinds("c"), heartbeat.Left) || slices.Contains(ec.kinds("a"), heartbeat.Left) {
		t.Errorf("a split counted as a departure: a saw %v, c saw %v", ea.kinds("c"), ec.kinds("a"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := net.Link(1, 2).Heal(ctx); err != nil {
		t.Fatal(err)
	}
	whole := time.Now() // every server sees every other
	back, at := ea.waitEvent(t, heartbeat.Recovered, "c", cut, 5*time.Second)
	if back.Split.IsZero() || back.Member.Incarnation != incC {
		t.Errorf("c back at a as %+v (split %+v), want the same incarnation %d and the split", back.Member, back.Split, incC)
	}
	iv := time.Second
	if d := at.Sub(whole); d > iv {
		t.Errorf("c back at a %v after the network joined, want within a heartbeat interval (%v)", d, iv)
	}
	ec.waitEvent(t, heartbeat.Recovered, "a", cut, 5*time.Second)
	waitMembers(t, a, "svc", 2)
	deadline := time.Now().Add(5 * time.Second)
	for a.SplitStats().Netjoins == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := a.SplitStats(); st.Splits == 0 || st.Netjoins == 0 {
		t.Errorf("a's split stats %+v: want the split and the netjoin counted", st)
	}
	t.Logf("c back at a %v after the network joined", at.Sub(whole).Round(time.Millisecond))
}

// waitMembers waits until n sees want live members of service.
func waitMembers(t *testing.T, n *mesh.Node, service string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(n.Members(service)) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %d members of %s, want %d: %v", n.Nick(), len(n.Members(service)), service, want, n.AllMembers())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNetjoinFromSilence: on two linked servers, the second is frozen
// long enough for a member on it to be taken for dead by silence (the
// link stays up: no split QUIT, as for a node that moved servers during
// a split it never saw); when it thaws, the member's beats come back and
// the observer counts a netjoin from the member's last beat, so that what
// that side sent meanwhile is filled from history.
func TestNetjoinFromSilence(t *testing.T) {
	t.Parallel()
	net := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 2, Topology: ircd.Chain})
	ca, cb := netConfig(net, 0, "svc"), netConfig(net, 1, "svc")
	ca.Instance, cb.Instance = "a", "b"
	cb.FailoverAfter, cb.KeepAliveTimeout = time.Minute, time.Minute // b stays with its server
	nodes := connectAll(t, ca, cb)
	a := nodes[0]
	ea := watch(t, a)
	waitMembers(t, a, "svc", 2)
	frozen := time.Now()
	if err := net.Freeze(1); err != nil {
		t.Fatal(err)
	}
	left, _ := ea.waitEvent(t, heartbeat.Left, "b", frozen, 10*time.Second)
	if err := net.Thaw(1); err != nil {
		t.Fatal(err)
	}
	if left.Member.Departed {
		t.Fatalf("b left for certain (%s), want dead by silence", left.Reason)
	}
	back, _ := ea.waitEvent(t, heartbeat.Recovered, "b", frozen, 15*time.Second)
	if back.Split.Since.IsZero() || back.Split.Since.After(frozen) {
		t.Errorf("b back from silence with split %+v, want its last beat before the freeze (%v)", back.Split, frozen)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.SplitStats().Netjoins == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := a.SplitStats(); st.Netjoins == 0 {
		t.Errorf("a's split stats %+v: want a netjoin for the member back from silence", st)
	}
}

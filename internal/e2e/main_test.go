package e2e_test

import (
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/internal/proctest"
	"github.com/meshbot/meshbot/mesh"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// observer is an in-process node that records topology events with their
// arrival times.
type observer struct {
	*mesh.Node
	mu     sync.Mutex
	events []timedEvent
}

type timedEvent struct {
	at time.Time
	heartbeat.Event
}

func newObserver(t *testing.T, srv *ircd.Server, service string) *observer {
	t.Helper()
	cfg := mesh.DefaultConfig()
	cfg.Server = srv.Addr()
	cfg.Namespace = "e2e"
	cfg.Service = service
	n := meshtest.Connect(t, cfg)
	o := &observer{Node: n}
	stop := n.WatchMembers(func(ev heartbeat.Event) {
		o.mu.Lock()
		o.events = append(o.events, timedEvent{time.Now(), ev})
		o.mu.Unlock()
	})
	t.Cleanup(stop)
	return o
}

// waitEvent waits for an event of kind about nick after since, and returns
// its arrival time.
func (o *observer) waitEvent(t *testing.T, kind heartbeat.EventKind, nick string, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		o.mu.Lock()
		for _, ev := range o.events {
			if ev.Kind == kind && ev.Member.Nick == nick && !ev.at.Before(since) {
				o.mu.Unlock()
				return ev.at
			}
		}
		o.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s event for %s within %s; members %v", o.Nick(), kind, nick, timeout, o.AllMembers())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serve starts a meshbot serve process on srv.
func serve(t *testing.T, srv *ircd.Server, service, instance string, extra ...string) *proctest.Proc {
	t.Helper()
	args := append([]string{"serve", "--server", srv.Addr(), "--namespace", "e2e", "--service", service, "--instance", instance}, extra...)
	return proctest.Start(t, args...)
}

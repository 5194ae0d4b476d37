// Package meshtest connects mesh nodes for tests and closes them when the
// test ends.
package meshtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// ConnectTimeout bounds connecting one node in a test.
const ConnectTimeout = 30 * time.Second

// Connect connects one node and closes it (with a 5 s drain) when the test
// ends; an error fails the test.
func Connect(t testing.TB, cfg mesh.Config) *mesh.Node {
	t.Helper()
	return ConnectAll(t, cfg)[0]
}

// ConnectAll connects nodes in parallel (InspIRCd completes registrations
// once a second, so one at a time would be slow) and closes them when the
// test ends; any error fails the test.
func ConnectAll(t testing.TB, cfgs ...mesh.Config) []*mesh.Node {
	t.Helper()
	nodes := make([]*mesh.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
			defer cancel()
			nodes[i], errs[i] = mesh.Connect(ctx, cfg)
		})
	}
	wg.Wait()
	for i, n := range nodes {
		if n == nil {
			continue
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = n.Close(ctx)
		})
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d (%s): %v", i, cfgs[i].Service, err)
		}
	}
	return nodes
}

// ClosedAddr returns a loopback address nothing listens on.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

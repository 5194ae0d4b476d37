//go:build !race

// 100 nodes in one process under the race detector need minutes of CPU on
// two cores, so this test is built only without -race; .ci/run runs it so.

package e2e_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestHundredInstancesConverge connects 100 instances to one server and
// checks that every one of them sees the same 100 live members within three
// heartbeat intervals of the last one joining. It reports the heartbeat line
// rate, which must stay O(instances) per interval.
func TestHundredInstancesConverge(t *testing.T) {
	srv := ircdtest.Start(t)
	testStart := time.Now()
	const n = 100
	nodes := make([]*mesh.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := mesh.DefaultConfig()
			cfg.Server = srv.Addr()
			cfg.Namespace = "big"
			cfg.Service = fmt.Sprintf("svc%d", i%10)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			nodes[i], errs[i] = mesh.Connect(ctx, cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				nd.Close(ctx)
			}()
		}
		wg.Wait()
	})
	joined := time.Now() // every node is connected and beating
	t.Logf("100 connected after %s", time.Since(testStart).Round(time.Millisecond))
	want := make([]string, n)
	for i, nd := range nodes {
		want[i] = nd.Nick()
	}
	sort.Strings(want)
	deadline := joined.Add(3 * interval)
	var converged time.Time
	for {
		all := true
		for _, nd := range nodes {
			if !sameView(nd.Members(""), want) {
				all = false
				break
			}
		}
		if all {
			converged = time.Now()
			break
		}
		if time.Now().After(deadline) {
			bad := 0
			for _, nd := range nodes {
				if !sameView(nd.Members(""), want) {
					bad++
				}
			}
			t.Fatalf("after 3 intervals %d of %d nodes still disagree", bad, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("100 instances converged %s after the last connected", converged.Sub(joined).Round(time.Millisecond))

	// Heartbeat traffic: lines received by one node over 3 intervals.
	in0 := nodes[0].Stats().LinesIn
	time.Sleep(3 * interval)
	rate := float64(nodes[0].Stats().LinesIn-in0) / 3
	t.Logf("heartbeat lines received per node: %.0f/s for %d instances (%.2f per instance per interval)", rate, n, rate/n)
	if rate > 2*n {
		t.Errorf("%.0f lines/s for %d instances: heartbeat traffic is not O(instances) per interval", rate, n)
	}
}

// sameView: the live members are exactly want (sorted nicks).
func sameView(ms []heartbeat.Member, want []string) bool {
	if len(ms) != len(want) {
		return false
	}
	got := make([]string, len(ms))
	for i, m := range ms {
		got[i] = m.Nick
	}
	sort.Strings(got)
	return strings.Join(got, ",") == strings.Join(want, ",")
}

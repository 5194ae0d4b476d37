package mesh_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// benchMembers is how many bots BenchmarkNetworkMembership starts, in
// waves of benchMembersWave.
const benchMembers, benchMembersWave = 300, 50

// BenchmarkNetworkMembership measures membership with several hundred
// bots (docs/performance.md, "A network of servers"): 300 nodes of 30
// services spread evenly over a chain of three servers, and, in the same
// run, 300 on one server. Each round connects them (50 at a time) and
// reports how long after the last registration (the last Connect
// returning) every node saw every other one alive, in ms and in heartbeat
// intervals (the target: at most one).
//
//	go test -run '^$' -bench NetworkMembership -benchtime 1x ./mesh/
func BenchmarkNetworkMembership(b *testing.B) {
	nw := ircdtest.StartNetwork(b, ircd.NetworkOptions{Servers: 3, Topology: ircd.Chain})
	one := ircdtest.Start(b)
	interval := mesh.DefaultConfig().HeartbeatInterval
	var netD, oneD []time.Duration
	for b.Loop() {
		d, err := membersRound(func(i int) *ircd.Server { return nw.Server(i % 3) })
		if err != nil {
			b.Fatal("network: ", err)
		}
		netD = append(netD, d)
		d, err = membersRound(func(int) *ircd.Server { return one })
		if err != nil {
			b.Fatal("one server: ", err)
		}
		oneD = append(oneD, d)
	}
	mean := func(ds []time.Duration) time.Duration {
		var s time.Duration
		for _, d := range ds {
			s += d
		}
		return s / time.Duration(len(ds))
	}
	b.ReportMetric(float64(mean(netD))/float64(time.Millisecond), "network_converge_ms")
	b.ReportMetric(float64(mean(netD))/float64(interval), "network_converge/interval")
	b.ReportMetric(float64(mean(oneD))/float64(time.Millisecond), "one_server_converge_ms")
	b.Logf("%d bots: every one saw every other %v after the last registration on a chain of three, %v on one server (heartbeat interval %v)",
		benchMembers, mean(netD), mean(oneD), interval)
}

// membersRound connects benchMembers nodes, node i to server(i), and
// returns how long after the last registration every node saw every other
// alive; it closes them all.
func membersRound(server func(i int) *ircd.Server) (time.Duration, error) {
	nodes := make([]*mesh.Node, benchMembers)
	errs := make([]error, benchMembers)
	defer func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			if n != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_ = n.Close(ctx)
				}()
			}
		}
		wg.Wait()
	}()
	var mu sync.Mutex
	var last time.Time
	var wg sync.WaitGroup
	for i := range benchMembers {
		if i%benchMembersWave == 0 {
			wg.Wait() // in waves: hundreds of registrations at once time out on two cores
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := benchConfig(server(i), fmt.Sprintf("svc%02d", i%30))
			cfg.Namespace = "bmembers"
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			nodes[i], errs[i] = mesh.Connect(ctx, cfg)
			mu.Lock()
			last = time.Now()
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return 0, fmt.Errorf("node %d: %w", i, err)
		}
	}
	mu.Lock()
	from := last
	mu.Unlock()
	deadline := from.Add(time.Minute)
	for _, n := range nodes {
		for len(n.Members("")) < benchMembers {
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("%s sees %d of %d members a minute after the last registration", n.Nick(), len(n.Members("")), benchMembers)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return time.Since(from), nil
}

package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// Benchmarks on a network of linked InspIRCd servers (docs/performance.md,
// "A network of servers"): the same work as on one server, with the nodes
// spread over a chain of three, compared with one server in the same run.
// Links go through the harness's proxies; with acks=delayed they behave as
// InspIRCd's links do by default (no TCP_NODELAY, delayed ACKs: a line can
// wait 40 ms at each hop), with acks=quick as with `ip route ... quickack
// 1` on the routes between the servers.
//
//	go test -run '^$' -bench Network -benchtime 1x ./mesh/

func benchNetwork(b *testing.B, delayed bool) *ircd.Network {
	return ircdtest.StartNetwork(b, ircd.NetworkOptions{Servers: 3, Topology: ircd.Chain, DelayedAcks: delayed})
}

func benchNetConfig(nw *ircd.Network, i int, service string) mesh.Config {
	cfg := benchConfig(nw.Server(i), service)
	cfg.Namespace = "bnet"
	return cfg
}

// perServer returns the configs of a node of service first on the
// chain's first server, then of one node on each of its three servers,
// of service each(i).
func perServer(nw *ircd.Network, first string, each func(i int) string) []mesh.Config {
	cfgs := []mesh.Config{benchNetConfig(nw, 0, first)}
	for i := range 3 {
		cfgs = append(cfgs, benchNetConfig(nw, i, each(i)))
	}
	return cfgs
}

// numbered returns the service names prefix0, prefix1, …
func numbered(prefix string) func(int) string {
	return func(i int) string { return fmt.Sprintf("%s%d", prefix, i) }
}

func ackModes() []struct {
	name    string
	delayed bool
} {
	return []struct {
		name    string
		delayed bool
	}{{"acks=quick", false}, {"acks=delayed", true}}
}

// BenchmarkNetworkRoundTrip measures requests from a node on the first
// server of a chain to an echo service on the same server, one hop away
// and two hops away: p50, p99 and the worst (µs), and each p99 over the
// same-server p99.
func BenchmarkNetworkRoundTrip(b *testing.B) {
	for _, mode := range ackModes() {
		b.Run(mode.name, func(b *testing.B) {
			nw := benchNetwork(b, mode.delayed)
			nodes := meshtest.ConnectAll(b, perServer(nw, "client", numbered("echo"))...)
			cli := nodes[0]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for i, n := range nodes[1:] {
				if err := n.Handle("echo", func(_ context.Context, r *mesh.Request) ([]byte, error) { return r.Payload, nil }); err != nil {
					b.Fatal(err)
				}
				if err := cli.WaitFor(ctx, fmt.Sprintf("echo%d", i)); err != nil {
					b.Fatal(err)
				}
			}
			payload := bytes.Repeat([]byte("x"), benchBody)
			rt := func(hops int) (time.Duration, error) {
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				defer rcancel()
				start := time.Now()
				_, err := cli.Request(rctx, fmt.Sprintf("echo%d", hops), "echo", payload)
				return time.Since(start), err
			}
			for hops := range 3 { // warm up
				for range 50 {
					if _, err := rt(hops); err != nil {
						b.Fatal(err)
					}
				}
			}
			ds := make([][]time.Duration, 3)
			for b.Loop() {
				start := time.Now()
				for done := 0; done < benchRTs && time.Since(start) < benchRoundLimit; done += benchRTChunk {
					for hops := range 3 {
						for range benchRTChunk {
							d, err := rt(hops)
							if err != nil {
								b.Fatalf("%d hops: %v", hops, err)
							}
							ds[hops] = append(ds[hops], d)
						}
					}
				}
			}
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			var line []string
			for hops, d := range ds {
				slices.Sort(d)
				p50, p99, worst := benchPercentile(d, 50), benchPercentile(d, 99), d[len(d)-1]
				b.ReportMetric(us(p50), fmt.Sprintf("hops%d_p50_µs", hops))
				b.ReportMetric(us(p99), fmt.Sprintf("hops%d_p99_µs", hops))
				b.ReportMetric(us(worst), fmt.Sprintf("hops%d_max_µs", hops))
				if hops > 0 {
					b.ReportMetric(float64(p99)/float64(benchPercentile(ds[0], 99)), fmt.Sprintf("hops%d_p99/local", hops))
				}
				line = append(line, fmt.Sprintf("%d hops: p50 %v p99 %v max %v", hops, p50, p99, worst))
			}
			b.Logf("%s, %d requests each: %s", mode.name, len(ds[0]), strings.Join(line, "; "))
		})
	}
}

// BenchmarkNetworkFanout measures multicast: a node on the first server of
// a chain publishes benchLines 200-byte events (PublishAsync) to a topic
// with a subscriber on each server, and, in the same run, to three
// subscribers on its own server. It reports each subscriber's rate
// (events/s from the first publish to its last event), each network
// subscriber's rate over the same-server one, and the p99 of the events'
// delivery delay on each server (µs from publish to handler).
func BenchmarkNetworkFanout(b *testing.B) {
	for _, mode := range ackModes() {
		b.Run(mode.name, func(b *testing.B) {
			nw := benchNetwork(b, mode.delayed)
			cfgs := perServer(nw, "pub", numbered("net"))
			for i := range 3 {
				cfgs = append(cfgs, benchNetConfig(nw, 0, fmt.Sprintf("local%d", i)))
			}
			nodes := meshtest.ConnectAll(b, cfgs...)
			pub := nodes[0]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			type sub struct {
				name  string
				count atomic.Int64
				want  int64
				done  chan struct{}
				last  atomic.Int64 // unix nanos of the last event
				mu    sync.Mutex
				delay []time.Duration
			}
			var subs []*sub
			for i, n := range nodes[1:] {
				s := &sub{name: n.Service()}
				subs = append(subs, s)
				topic := "fan.net"
				if i >= 3 {
					topic = "fan.local"
				}
				if _, err := n.Subscribe(ctx, topic, func(_ context.Context, m *mesh.Message) error {
					now := time.Now()
					s.mu.Lock()
					s.delay = append(s.delay, now.Sub(m.SentAt))
					s.mu.Unlock()
					s.last.Store(now.UnixNano())
					if s.count.Add(1) == s.want {
						close(s.done)
					}
					return nil
				}, mesh.QueueLen(benchLines+1000)); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(time.Second) // the joins spread over the links
			payload := bytes.Repeat([]byte("x"), benchBody)
			round := func(topic string, group []*sub) ([]float64, error) {
				for _, s := range group {
					s.count.Store(0)
					s.want, s.done = benchLines, make(chan struct{})
					s.mu.Lock()
					s.delay = s.delay[:0]
					s.mu.Unlock()
				}
				start := time.Now()
				for range benchLines {
					if _, err := pub.PublishAsync(ctx, topic, payload); err != nil {
						return nil, err
					}
				}
				var rates []float64
				for _, s := range group {
					select {
					case <-s.done:
					case <-time.After(benchRoundLimit * 2):
						return nil, fmt.Errorf("%s got %d of %d", s.name, s.count.Load(), benchLines)
					}
					rates = append(rates, float64(benchLines)/time.Unix(0, s.last.Load()).Sub(start).Seconds())
				}
				return rates, nil
			}
			var netRates, localRates [3][]float64
			for b.Loop() {
				l, err := round("fan.local", subs[3:])
				if err != nil {
					b.Fatal("same server: ", err)
				}
				nr, err := round("fan.net", subs[:3])
				if err != nil {
					b.Fatal("network: ", err)
				}
				for i := range 3 {
					localRates[i] = append(localRates[i], l[i])
					netRates[i] = append(netRates[i], nr[i])
				}
			}
			mean := func(v []float64) float64 {
				s := 0.0
				for _, x := range v {
					s += x
				}
				return s / float64(len(v))
			}
			local := (mean(localRates[0]) + mean(localRates[1]) + mean(localRates[2])) / 3
			b.ReportMetric(local, "local_events/s")
			var line []string
			for i := range 3 {
				r := mean(netRates[i])
				s := subs[i]
				s.mu.Lock()
				slices.Sort(s.delay)
				p99 := benchPercentile(s.delay, 99)
				s.mu.Unlock()
				b.ReportMetric(r, fmt.Sprintf("server%d_events/s", i))
				b.ReportMetric(r/local, fmt.Sprintf("server%d/local", i))
				b.ReportMetric(float64(p99)/float64(time.Microsecond), fmt.Sprintf("server%d_delay_p99_µs", i))
				line = append(line, fmt.Sprintf("server %d: %.0f/s (%.0f%%), delay p99 %v", i, r, 100*r/local, p99))
			}
			b.Logf("%s: same server %.0f events/s per subscriber; %s", mode.name, local, strings.Join(line, "; "))
		})
	}
}

// BenchmarkNetworkMulticastDelay measures the cross-server tail of
// multicast at a steady rate (no queueing): a node on the first server of
// a chain publishes benchPaced events, one every 5 ms, to a subscriber on
// each server; it reports each server's p50, p99 and worst delay (µs from
// publish to handler) and each far server's p99 over the first server's.
func BenchmarkNetworkMulticastDelay(b *testing.B) {
	const benchPaced = 1000
	for _, mode := range ackModes() {
		b.Run(mode.name, func(b *testing.B) {
			nw := benchNetwork(b, mode.delayed)
			nodes := meshtest.ConnectAll(b, perServer(nw, "pub", numbered("net"))...)
			pub := nodes[0]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			var mu sync.Mutex
			delays := make([][]time.Duration, 3)
			got := make([]atomic.Int64, 3)
			for i, n := range nodes[1:] {
				if _, err := n.Subscribe(ctx, "paced", func(_ context.Context, m *mesh.Message) error {
					d := time.Since(m.SentAt)
					mu.Lock()
					delays[i] = append(delays[i], d)
					mu.Unlock()
					got[i].Add(1)
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(time.Second) // the joins spread over the links
			payload := bytes.Repeat([]byte("x"), benchBody)
			for b.Loop() {
				want := make([]int64, 3)
				for i := range got {
					want[i] = got[i].Load() + benchPaced
				}
				tick := time.NewTicker(5 * time.Millisecond)
				for range benchPaced {
					<-tick.C
					if _, err := pub.PublishAsync(ctx, "paced", payload); err != nil {
						b.Fatal(err)
					}
				}
				tick.Stop()
				deadline := time.Now().Add(30 * time.Second)
				for i := range got {
					for got[i].Load() < want[i] {
						if time.Now().After(deadline) {
							b.Fatalf("server %d: %d of %d events", i, got[i].Load(), want[i])
						}
						time.Sleep(10 * time.Millisecond)
					}
				}
			}
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			mu.Lock()
			defer mu.Unlock()
			var line []string
			p99s := make([]time.Duration, 3)
			for i, d := range delays {
				slices.Sort(d)
				p50, p99, worst := benchPercentile(d, 50), benchPercentile(d, 99), d[len(d)-1]
				p99s[i] = p99
				b.ReportMetric(us(p50), fmt.Sprintf("server%d_p50_µs", i))
				b.ReportMetric(us(p99), fmt.Sprintf("server%d_p99_µs", i))
				b.ReportMetric(us(worst), fmt.Sprintf("server%d_max_µs", i))
				if i > 0 {
					b.ReportMetric(float64(p99)/float64(p99s[0]), fmt.Sprintf("server%d_p99/server0", i))
				}
				line = append(line, fmt.Sprintf("server %d: p50 %v p99 %v max %v", i, p50, p99, worst))
			}
			b.Logf("%s, %d events at 200/s: %s", mode.name, len(delays[0]), strings.Join(line, "; "))
		})
	}
}

// BenchmarkNetworkAnycast measures anycast across servers: a node on the
// first server of a chain publishes benchNetAny events (PublishAsync) to
// a group of three workers, one on each server, and, in the same run, to
// three workers on one server. It reports the events completed per second
// (from the first publish until the handlers ran every event), the
// network's rate over the single server's, and handler runs beyond one
// per event (0 when nothing failed).
func BenchmarkNetworkAnycast(b *testing.B) {
	const benchNetAny = 5000
	nw := benchNetwork(b, false)
	one := ircdtest.Start(b)
	type group struct {
		name    string
		pub     *mesh.Node
		workers []*mesh.Node
		handled atomic.Int64
		rates   []float64
	}
	groups := []*group{{name: "network"}, {name: "one server"}}
	netCfgs := perServer(nw, "apub", func(int) string { return "workers" })
	oneCfgs := []mesh.Config{benchConfig(one, "apub")}
	for range 3 {
		oneCfgs = append(oneCfgs, benchConfig(one, "workers"))
	}
	for k, cfgs := range [][]mesh.Config{netCfgs, oneCfgs} {
		nodes := meshtest.ConnectAll(b, cfgs...)
		groups[k].pub, groups[k].workers = nodes[0], nodes[1:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, g := range groups {
		for _, w := range g.workers {
			if _, err := w.SubscribeAnycast(ctx, "netany", func(context.Context, *mesh.Message) error { g.handled.Add(1); return nil },
				mesh.QueueLen(benchNetAny+1000)); err != nil {
				b.Fatal(err)
			}
		}
		waitGroupFormed(b, g.workers, "netany", "workers")
	}
	time.Sleep(1500 * time.Millisecond) // every worker is ready to claim
	payload := bytes.Repeat([]byte("x"), benchBody)
	var extra int64
	for b.Loop() {
		for _, g := range groups {
			from := g.handled.Load()
			start := time.Now()
			for range benchNetAny {
				if _, err := g.pub.PublishAsync(ctx, "netany", payload); err != nil {
					b.Fatal(err)
				}
			}
			deadline := time.Now().Add(2 * benchRoundLimit)
			for g.handled.Load()-from < benchNetAny {
				if time.Now().After(deadline) {
					b.Fatalf("%s: %d of %d events handled", g.name, g.handled.Load()-from, benchNetAny)
				}
				time.Sleep(time.Millisecond)
			}
			g.rates = append(g.rates, benchNetAny/time.Since(start).Seconds())
			time.Sleep(time.Second) // late duplicates would show
			extra += g.handled.Load() - from - benchNetAny
		}
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	netRate, oneRate := mean(groups[0].rates), mean(groups[1].rates)
	b.ReportMetric(netRate, "network_events/s")
	b.ReportMetric(oneRate, "one_server_events/s")
	b.ReportMetric(netRate/oneRate, "network/one_server")
	b.ReportMetric(float64(extra), "extra_runs")
	b.Logf("anycast, %d events: %.0f/s with a worker on each of three servers, %.0f/s with three on one server (%.0f%%); %d extra handler runs",
		benchNetAny, netRate, oneRate, 100*netRate/oneRate, extra)
}

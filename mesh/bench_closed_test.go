package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// benchMesh is one mesh of BenchmarkClosedThroughput: a publisher and
// benchSubscribers multicast subscribers of its namespace's topic.
type benchMesh struct {
	pub     *mesh.Node
	nodes   []*mesh.Node
	tallies []*benchTally
	subs    []*mesh.Subscription
}

// round publishes events 200-byte events with PublishAsync and returns
// the time until every subscriber had them all.
func (m *benchMesh) round(ctx context.Context, topic string, events int) (time.Duration, error) {
	var dones []<-chan struct{}
	for _, t := range m.tallies {
		dones = append(dones, t.expect(int64(events)))
	}
	rctx, cancel := context.WithTimeout(ctx, benchRoundLimit)
	defer cancel()
	payload := bytes.Repeat([]byte("x"), benchBody)
	futures := make([]*mesh.PubFuture, 0, events)
	start := time.Now()
	for range events {
		f, err := m.pub.PublishAsync(rctx, topic, payload)
		if err != nil {
			return 0, err
		}
		futures = append(futures, f)
	}
	if err := benchWaitAll(benchRoundLimit, dones...); err != nil {
		return 0, benchMeshState(err, m.tallies, m.subs, m.nodes)
	}
	var last time.Time
	for _, t := range m.tallies {
		if at := t.reached(); at.After(last) {
			last = at
		}
	}
	for i, f := range futures {
		if _, err := f.Wait(rctx); err != nil {
			return 0, fmt.Errorf("publish %d: %w", i, err)
		}
	}
	return last.Sub(start), nil
}

// BenchmarkClosedThroughput compares, on one server in the same run,
// three meshes of a publisher and 3 multicast subscribers: an unsigned
// one, one signed with the mesh HMAC key (signatures required), and a
// closed one — signed with the HMAC key and its payloads encrypted with
// the mesh payload key (encryption required), the meshtest.Encrypted
// mode. Rounds alternate; each rate is events per second per subscriber,
// and the CPU this process (every node of the mesh) spent per event is
// reported too (docs/performance.md, "Closed mesh"). The target:
// closed/unsigned ≥ 0.8.
func BenchmarkClosedThroughput(b *testing.B) {
	srv := ircdtest.Start(b)
	const topic = "tput"
	modes := []*meshtest.Mode{meshtest.NewMode(meshtest.Unsigned), meshtest.NewMode(meshtest.HMAC), meshtest.NewMode(meshtest.Encrypted)}
	order := []int{2, 0, 1} // the closed mesh first: no position helps it
	var cfgs []mesh.Config
	for k, m := range modes {
		ns := fmt.Sprintf("b%d", k)
		for i := range 1 + benchSubscribers {
			service := "csub"
			if i == 0 {
				service = "cpub"
			}
			c := benchConfig(srv, service)
			c.Namespace = ns
			cfgs = append(cfgs, m.Config(c))
		}
	}
	_, nodes := benchConnect(b, srv, nil, cfgs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	meshes := make([]*benchMesh, len(modes))
	for k := range meshes {
		ns := nodes[k*(1+benchSubscribers) : (k+1)*(1+benchSubscribers)]
		bm := &benchMesh{pub: ns[0], nodes: ns}
		for _, n := range ns[1:] {
			t := &benchTally{}
			s, err := n.Subscribe(ctx, topic, func(context.Context, *mesh.Message) error { t.add(); return nil }, mesh.QueueLen(benchLines+1000))
			if err != nil {
				b.Fatal(err)
			}
			bm.tallies, bm.subs = append(bm.tallies, t), append(bm.subs, s)
		}
		if _, err := bm.round(ctx, topic, benchWindow); err != nil { // warm up, join
			b.Fatal(err)
		}
		meshes[k] = bm
	}
	times := make([]time.Duration, len(meshes))
	cpu := make([]time.Duration, len(meshes))
	var rounds int
	for b.Loop() {
		for _, k := range order {
			bm := meshes[k]
			c0 := processCPU()
			d, err := bm.round(ctx, topic, benchLines)
			if err != nil {
				b.Fatalf("mesh %d: %v", k, err)
			}
			times[k] += d
			cpu[k] += processCPU() - c0
		}
		rounds++
	}
	n := float64(rounds * benchLines)
	openRate, signedRate, closedRate := n/times[0].Seconds(), n/times[1].Seconds(), n/times[2].Seconds()
	b.ReportMetric(openRate, "unsigned_events/s")
	b.ReportMetric(signedRate, "hmac_events/s")
	b.ReportMetric(closedRate, "closed_events/s")
	b.ReportMetric(signedRate/openRate, "hmac/unsigned")
	b.ReportMetric(closedRate/openRate, "closed/unsigned")
	perEvent := func(k int) float64 { return float64(cpu[k]) / float64(time.Microsecond) / n }
	b.ReportMetric(perEvent(0), "unsigned_cpu_µs/event")
	b.ReportMetric(perEvent(2), "closed_cpu_µs/event")
	b.Logf("CPU of this process (every node) per event: unsigned %.1f µs, HMAC %.1f µs, HMAC and encrypted %.1f µs", perEvent(0), perEvent(1), perEvent(2))
	for _, bm := range meshes {
		for _, n := range bm.nodes {
			if st := n.Stats(); st.Rejected+st.Dropped > 0 {
				b.Logf("%s rejected %d, dropped %d", n.Nick(), st.Rejected, st.Dropped)
			}
		}
	}
	for k, bm := range meshes {
		st := bm.pub.Stats()
		b.Logf("mesh %d: publisher wrote %d lines", k, st.LinesOut)
	}
	b.Logf("%s: %d rounds of %d events to %d subscribers: unsigned %.0f events/s, signed (HMAC) %.0f (%.1f%%), signed and encrypted %.0f (%.1f%%)",
		srv.Kind(), rounds, benchLines, benchSubscribers, openRate, signedRate, 100*signedRate/openRate, closedRate, 100*closedRate/openRate)
}

// processCPU is the CPU time this process used so far (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

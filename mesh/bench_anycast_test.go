package mesh_test

import (
	"bytes"
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// BenchmarkAnycast compares, in one run on one server, exactly-once anycast
// with multicast: a publisher sends benchAnyEvents 200-byte events
//
//   - multicast: to 3 subscriber nodes of one service, each of which gets
//     every event (rate: events per second per subscriber, until the last
//     subscriber has them all);
//   - anycast: to 3 worker nodes in one group, each event claimed, handled
//     once and acked (rate: events per second completed, until every
//     worker has seen every ack).
//
// It also reports the claims-protocol lines the group sent per event.
func BenchmarkAnycast(b *testing.B) {
	const benchAnyEvents = 30000
	srv := ircdtest.Start(b)
	cfgs := []mesh.Config{benchConfig(srv, "apub")}
	for range 3 {
		cfgs = append(cfgs, benchConfig(srv, "multi"))
	}
	for range 3 {
		cfgs = append(cfgs, benchConfig(srv, "workers"))
	}
	_, nodes := benchConnect(b, srv, nil, cfgs)
	pub, multis, workers := nodes[0], nodes[1:4], nodes[4:7]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	tallies := make([]*benchTally, 3)
	for i, n := range multis {
		t := &benchTally{}
		tallies[i] = t
		if _, err := n.Subscribe(ctx, "multi", func(context.Context, *mesh.Message) error { t.add(); return nil },
			mesh.QueueLen(benchAnyEvents+1000)); err != nil {
			b.Fatal(err)
		}
	}
	var handled atomic.Int64
	var subs []*mesh.AnycastSubscription
	for _, n := range workers {
		s, err := n.SubscribeAnycast(ctx, "any", func(context.Context, *mesh.Message) error { handled.Add(1); return nil }, mesh.QueueLen(benchAnyEvents+1000))
		if err != nil {
			b.Fatal(err)
		}
		subs = append(subs, s)
	}
	waitGroupFormed(b, workers, "any", "workers")
	time.Sleep(1500 * time.Millisecond) // every worker is ready to claim

	payload := bytes.Repeat([]byte("x"), benchBody)
	publish := func(topic string) {
		for range benchAnyEvents {
			if _, err := pub.PublishAsync(ctx, topic, payload); err != nil {
				b.Fatal(err)
			}
		}
	}
	var multiRates, anyRates, ratios, lineRates []float64
	for b.Loop() {
		var dones []<-chan struct{}
		for _, t := range tallies {
			dones = append(dones, t.expect(benchAnyEvents))
		}
		start := time.Now()
		publish("multi")
		if err := benchWaitAll(benchRoundLimit, dones...); err != nil {
			b.Fatalf("multicast round: %v", err)
		}
		var last time.Time
		for _, t := range tallies {
			if at := t.reached(); at.After(last) {
				last = at
			}
		}
		multiRate := benchAnyEvents / last.Sub(start).Seconds()

		acked := make([]uint64, len(subs))
		sent := make([]uint64, len(subs))
		for i, s := range subs {
			acked[i] = s.ClaimStats().Acked
			sent[i] = workers[i].Stats().LinesOut
		}
		start = time.Now()
		publish("any")
		deadline := start.Add(benchRoundLimit)
		for {
			done := true
			for i, s := range subs {
				done = done && s.ClaimStats().Acked-acked[i] >= benchAnyEvents
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("anycast round did not complete")
			}
			time.Sleep(time.Millisecond)
		}
		anyRate := benchAnyEvents / time.Since(start).Seconds()
		var lines uint64
		for i := range subs {
			lines += workers[i].Stats().LinesOut - sent[i]
		}
		multiRates = append(multiRates, multiRate)
		anyRates = append(anyRates, anyRate)
		ratios = append(ratios, anyRate/multiRate)
		lineRates = append(lineRates, float64(lines)/benchAnyEvents)
	}
	if got := handled.Load(); got != int64(b.N)*benchAnyEvents {
		b.Fatalf("%d handler runs for %d events", got, b.N*benchAnyEvents)
	}
	// Medians: the two rounds of an iteration run back to back, and the
	// machine's noise moves each by tens of percent.
	b.ReportMetric(median(multiRates), "multicast_events/s")
	b.ReportMetric(median(anyRates), "anycast_events/s")
	b.ReportMetric(median(ratios), "anycast/multicast")
	b.ReportMetric(median(lineRates), "group_lines/event")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// The benchmarks compare meshbot with the physical limit, a bare IRC client,
// on the same server in the same run (docs/performance.md). They report
// figures and ratios, and assert nothing about speed. Each runs against the
// server MESH_IRCD names (InspIRCd by default):
//
//	go test -run '^$' -bench . ./mesh/
//	MESH_IRCD=ergo:/work/ergo-bin/ergo go test -run '^$' -bench . ./mesh/
//
// An iteration is a fixed amount of work (benchLines lines, benchRTs round
// trips) for each side, so one iteration takes a second or a few; use
// -benchtime=Nx for N iterations.

const (
	benchSubscribers = 3
	benchLines       = 20000 // lines (events) per throughput round
	benchBody        = 200   // bytes of a raw line's text and of a mesh payload
	benchWindow      = 100   // raw lines per PING (meshbot's default WindowLines)
	benchMaxWindows  = 2     // raw windows unconfirmed at once (meshbot's default MaxWindows)
	benchRTs         = 2000  // round trips per round-trip round, each side
	benchRTChunk     = 100   // raw and mesh round trips alternate in chunks of this
	benchRoundLimit  = 25 * time.Second
)

// BenchmarkThroughput measures, per iteration:
//
//   - raw: a bare client publishing benchLines PRIVMSG lines with 200-byte
//     texts to a channel in windows (a PING after every 100 lines, at most
//     2 windows unconfirmed) to 3 bare subscribers;
//   - wire: the same with the line a meshbot node sends for a 200-byte
//     event (tags and all), publisher and subscribers having the
//     capabilities a node has (message-tags, server-time, echo-message):
//     what the server can do with meshbot's wire format, so mesh/wire is
//     the cost of the client library alone and wire/raw that of the format;
//   - mesh: a meshbot node publishing benchLines 200-byte events with
//     PublishAsync to a topic with 3 multicast subscriber nodes.
//
// Each rate is lines (events) per second per subscriber, from the first
// line written until every subscriber has every line.
func BenchmarkThroughput(b *testing.B) {
	srv := ircdtest.Start(b)
	const topic = "tput"
	wireCaps := []string{"message-tags", "server-time", "echo-message", "msgid"}
	prefixes := []string{"rpub"}
	caps := [][]string{nil}
	cfgs := []mesh.Config{benchConfig(srv, "tpub")}
	for range benchSubscribers {
		prefixes = append(prefixes, "rsub")
		caps = append(caps, nil)
		cfgs = append(cfgs, benchConfig(srv, "tsub"))
	}
	prefixes = append(prefixes, "wpub")
	caps = append(caps, wireCaps)
	for range benchSubscribers {
		prefixes = append(prefixes, "wsub")
		caps = append(caps, wireCaps)
	}
	raws, nodes := benchConnect(b, srv, prefixes, cfgs, caps...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Raw side.
	const rawChannel, wireChannel = "#rawbench.tput", "#rawbench.wire"
	raw, err := newBenchFanout(ctx, raws[0], raws[1:1+benchSubscribers], rawChannel)
	if err != nil {
		b.Fatal(err)
	}
	raw.setLine("PRIVMSG " + rawChannel + " :" + strings.Repeat("x", benchBody))

	// Wire side: the line a node sends for the same event.
	wraws := raws[1+benchSubscribers:]
	wire, err := newBenchFanout(ctx, wraws[0], wraws[1:], wireChannel)
	if err != nil {
		b.Fatal(err)
	}
	wireLine, err := benchWireLine(wraws[0], wireChannel)
	if err != nil {
		b.Fatal(err)
	}
	wire.setLine(wireLine)

	// Mesh side.
	pub, subs := nodes[0], nodes[1:]
	meshTallies := make([]*benchTally, len(subs))
	meshSubs := make([]*mesh.Subscription, len(subs))
	for i, n := range subs {
		t := &benchTally{}
		meshTallies[i] = t
		s, err := n.Subscribe(ctx, topic, func(context.Context, *mesh.Message) error {
			t.add()
			return nil
		}, mesh.QueueLen(benchLines+1000))
		if err != nil {
			b.Fatal(err)
		}
		meshSubs[i] = s
	}
	payload := bytes.Repeat([]byte("x"), benchBody)
	futures := make([]*mesh.PubFuture, 0, benchLines)
	meshRound := func(events int) (time.Duration, error) {
		var dones []<-chan struct{}
		for _, t := range meshTallies {
			dones = append(dones, t.expect(int64(events)))
		}
		rctx, rcancel := context.WithTimeout(ctx, benchRoundLimit)
		defer rcancel()
		futures = futures[:0]
		start := time.Now()
		for range events {
			f, err := pub.PublishAsync(rctx, topic, payload)
			if err != nil {
				return 0, err
			}
			futures = append(futures, f)
		}
		if err := benchWaitAll(benchRoundLimit, dones...); err != nil {
			return 0, benchMeshState(err, meshTallies, meshSubs, nodes)
		}
		var last time.Time
		for _, t := range meshTallies {
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

	// Warm up every path (the first publish also joins the topic).
	if _, err := raw.round(benchWindow); err != nil {
		b.Fatal("raw warm-up: ", err)
	}
	if _, err := wire.round(benchWindow); err != nil {
		b.Fatal("wire warm-up: ", err)
	}
	if _, err := meshRound(benchWindow); err != nil {
		b.Fatal("mesh warm-up: ", err)
	}

	var rawTime, wireTime, meshTime time.Duration
	var rounds int
	for b.Loop() {
		d, err := raw.round(benchLines)
		if err != nil {
			b.Fatal("raw: ", err)
		}
		rawTime += d
		d, err = wire.round(benchLines)
		if err != nil {
			b.Fatal("wire: ", err)
		}
		wireTime += d
		d, err = meshRound(benchLines)
		if err != nil {
			b.Fatal("mesh: ", err)
		}
		meshTime += d
		rounds++
	}
	n := float64(rounds * benchLines)
	rawRate, wireRate, meshRate := n/rawTime.Seconds(), n/wireTime.Seconds(), n/meshTime.Seconds()
	b.ReportMetric(rawRate, "raw_lines/s")
	b.ReportMetric(wireRate, "wire_lines/s")
	b.ReportMetric(meshRate, "mesh_events/s")
	b.ReportMetric(meshRate/rawRate, "mesh/raw")
	b.ReportMetric(meshRate/wireRate, "mesh/wire")
	var dropped, rejected uint64
	for _, n := range subs {
		st := n.Stats()
		dropped += st.Dropped
		rejected += st.Rejected
	}
	if dropped+rejected > 0 {
		b.Logf("mesh subscribers dropped %d and rejected %d events", dropped, rejected)
	}
	b.Logf("%s: %d rounds of %d lines to %d subscribers: raw %.0f lines/s, wire %.0f lines/s (%d bytes), mesh %.0f events/s (%.1f%% of raw)",
		srv.Kind(), rounds, benchLines, benchSubscribers, rawRate, wireRate, len(wireLine), meshRate, 100*meshRate/rawRate)
}

// benchWireLine returns the line (without CRLF) a node would send to
// channel for a 200-byte event, in the carrier c's capabilities allow
// (the tag carrier with message-tags, else the body carrier).
func benchWireLine(c *benchRaw, channel string) (string, error) {
	env := envelope.New(envelope.KindEvent, envelope.Sender{Service: "tpub", Instance: "abc123", Incarnation: uint64(time.Now().UnixNano())},
		"tput", bytes.Repeat([]byte("x"), benchBody), time.Now())
	sealed, err := envelope.Seal(env, nil)
	if err != nil {
		return "", err
	}
	carrier := envelope.CarrierBody
	if c.caps["message-tags"] {
		carrier = envelope.CarrierTag
	}
	lim := envelope.Limits{TagBytes: envelope.DefaultTagBytes,
		BodyBytes: envelope.BodyBudget(512, c.nick+"!~bench@127.0.0.1", channel, 16)}
	lines, err := envelope.EncodeLines(env, sealed, carrier, lim)
	if err != nil {
		return "", err
	}
	if len(lines) != 1 {
		return "", fmt.Errorf("a 200-byte event takes %d lines with the %s carrier", len(lines), carrier)
	}
	var sb strings.Builder
	if len(lines[0].Tags) > 0 {
		sb.WriteByte('@')
		first := true
		for k, v := range lines[0].Tags {
			if !first {
				sb.WriteByte(';')
			}
			first = false
			sb.WriteString(k + "=" + v) // base64url: nothing to escape
		}
		sb.WriteByte(' ')
	}
	sb.WriteString("PRIVMSG " + channel + " :" + lines[0].Body)
	return sb.String(), nil
}

func benchMeshState(err error, ts []*benchTally, subs []*mesh.Subscription, nodes []*mesh.Node) error {
	var s []string
	for i, t := range ts {
		s = append(s, fmt.Sprintf("sub %d: %d events, %d dropped", i, t.count(), subs[i].Dropped()))
	}
	for i, n := range nodes {
		st := n.Stats()
		s = append(s, fmt.Sprintf("node %d: in %d out %d rejected %v dropped %d", i, st.LinesIn, st.LinesOut, st.RejectedBy, st.Dropped))
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(s, "; "))
}

// BenchmarkRoundTrip measures, per iteration, benchRTs sequential round
// trips of each of:
//
//   - raw: a bare client A sending a 200-byte PRIVMSG to a bare client B,
//     which sends it back (no capabilities, so no tags and no echo);
//   - wire: the same with the lines nodes exchange for a 200-byte request
//     and its response (tags and all), the two bare clients having a node's
//     capabilities (message-tags, server-time, echo-message, msgid) and
//     acknowledging reads at once as a node does: what the server costs
//     with meshbot's wire format when the clients cost nothing;
//   - mesh: a meshbot Request of a 200-byte payload to a node whose handler
//     returns it.
//
// The three alternate in chunks of 100; an iteration stops early after
// benchRoundLimit (fewer samples; the log says how many). It reports p50,
// p90 and p99 of each (µs), mesh/raw and mesh/wire for each, wire/raw at
// p50, and the memory the process allocates per mesh round trip (both
// nodes: requester and responder).
func BenchmarkRoundTrip(b *testing.B) {
	srv := ircdtest.Start(b)
	wireCaps := []string{"message-tags", "server-time", "echo-message", "msgid"}
	raws, nodes := benchConnect(b, srv, []string{"rcli", "rsrv", "wcli", "wsrv"},
		[]mesh.Config{benchConfig(srv, "rtcli"), benchConfig(srv, "rtsrv")},
		nil, nil, wireCaps, wireCaps)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	raw, err := newBenchDM(raws[0], raws[1], false)
	if err != nil {
		b.Fatal(err)
	}
	benchAckAtOnce(raws[2])
	benchAckAtOnce(raws[3])
	wire, err := newBenchDM(raws[2], raws[3], true)
	if err != nil {
		b.Fatal(err)
	}

	// Mesh side.
	cli, rsrv := nodes[0], nodes[1]
	if err := rsrv.Handle("echo", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		return r.Payload, nil
	}); err != nil {
		b.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, benchIOTimeout)
	err = cli.WaitFor(wctx, "rtsrv")
	wcancel()
	if err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), benchBody)
	meshRT := func() (time.Duration, error) {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		start := time.Now()
		out, err := cli.Request(rctx, "rtsrv", "echo", payload)
		d := time.Since(start)
		if err == nil && len(out) != len(payload) {
			err = fmt.Errorf("answer of %d bytes, want %d", len(out), len(payload))
		}
		return d, err
	}

	run := func(rt func() (time.Duration, error), n int, into *[]time.Duration) error {
		for range n {
			d, err := rt()
			if err != nil {
				return err
			}
			if into != nil {
				*into = append(*into, d)
			}
		}
		return nil
	}
	// Warm up.
	for name, rt := range map[string]func() (time.Duration, error){"raw": raw.rt, "wire": wire.rt, "mesh": meshRT} {
		if err := run(rt, 50, nil); err != nil {
			b.Fatal(name, " warm-up: ", err)
		}
	}

	var rawD, wireD, meshD []time.Duration
	var mallocs, allocated uint64
	var ms runtime.MemStats
	for b.Loop() {
		// Stop early rather than run for minutes when round trips are slow.
		start := time.Now()
		for done := 0; done < benchRTs && time.Since(start) < benchRoundLimit; done += benchRTChunk {
			if err := run(raw.rt, benchRTChunk, &rawD); err != nil {
				b.Fatal("raw: ", err)
			}
			if err := run(wire.rt, benchRTChunk, &wireD); err != nil {
				b.Fatal("wire: ", err)
			}
			runtime.ReadMemStats(&ms)
			m0, b0 := ms.Mallocs, ms.TotalAlloc
			if err := run(meshRT, benchRTChunk, &meshD); err != nil {
				b.Fatal("mesh: ", err)
			}
			runtime.ReadMemStats(&ms)
			mallocs += ms.Mallocs - m0
			allocated += ms.TotalAlloc - b0
		}
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	pct := func(ds []time.Duration, p int) time.Duration { return benchPercentile(ds, p) }
	for _, ds := range [][]time.Duration{rawD, wireD, meshD} {
		slices.Sort(ds)
	}
	for _, p := range []int{50, 90, 99} {
		b.ReportMetric(us(pct(rawD, p)), fmt.Sprintf("raw_p%d_µs", p))
		b.ReportMetric(us(pct(wireD, p)), fmt.Sprintf("wire_p%d_µs", p))
		b.ReportMetric(us(pct(meshD, p)), fmt.Sprintf("mesh_p%d_µs", p))
		b.ReportMetric(float64(pct(meshD, p))/float64(pct(rawD, p)), fmt.Sprintf("p%d_mesh/raw", p))
		b.ReportMetric(float64(pct(meshD, p))/float64(pct(wireD, p)), fmt.Sprintf("p%d_mesh/wire", p))
	}
	b.ReportMetric(float64(pct(wireD, 50))/float64(pct(rawD, 50)), "p50_wire/raw")
	b.ReportMetric(float64(mallocs)/float64(len(meshD)), "mesh_allocs/rt")
	b.ReportMetric(float64(allocated)/float64(len(meshD)), "mesh_B/rt")
	b.Logf("%s: %d round trips each: raw p50 %s p90 %s p99 %s; wire p50 %s p90 %s p99 %s; mesh p50 %s p90 %s p99 %s",
		srv.Kind(), len(rawD), pct(rawD, 50), pct(rawD, 90), pct(rawD, 99),
		pct(wireD, 50), pct(wireD, 90), pct(wireD, 99), pct(meshD, 50), pct(meshD, 90), pct(meshD, 99))
}

// benchPercentile returns the nearest-rank p-th percentile of sorted ds.
func benchPercentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (len(ds)*p + 99) / 100 // ceil(n·p/100)
	return ds[max(i-1, 0)]
}

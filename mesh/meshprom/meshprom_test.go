package meshprom_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/mesh/meshprom"
)

// TestCollectorRealNode drives a node on a real server (events, a request
// answered and one answered with an error) and checks what a scrape shows.
func TestCollectorRealNode(t *testing.T) {
	srv := ircdtest.Start(t)
	cfg := func(service, instance string) mesh.Config {
		c := mesh.DefaultConfig()
		c.Server, c.Namespace, c.Service, c.Instance = srv.Addr(), "prom", service, instance
		return c
	}
	nodes := connectAll(t, cfg("svc", "a1"), cfg("client", "b1"))
	svc, client := nodes[0], nodes[1]

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := svc.Subscribe(ctx, "ev", func(context.Context, *mesh.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Handle("echo", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		if string(r.Payload) == "fail" {
			return nil, mesh.Errorf(418, "asked to fail")
		}
		return r.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := client.Publish(ctx, "ev", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := client.Request(ctx, "svc", "echo", []byte("hi")); err != nil || string(out) != "hi" {
		t.Fatalf("request: %q, %v", out, err)
	}
	var re *mesh.RemoteError
	if _, err := client.Request(ctx, "svc", "echo", []byte("fail")); !errors.As(err, &re) || re.Code != 418 {
		t.Fatalf("request: want a RemoteError 418, got %v", err)
	}
	for svc.Stats().Delivered < 3 {
		if ctx.Err() != nil {
			t.Fatalf("delivered %d of 3 events", svc.Stats().Delivered)
		}
		time.Sleep(10 * time.Millisecond)
	}

	c := meshprom.NewCollector(svc)
	const labels = `instance="a1",namespace="prom",service="svc"` // sorted, as the comparison prints them
	want := `
# HELP meshbot_delivered_total Events handed to subscription handlers.
# TYPE meshbot_delivered_total counter
meshbot_delivered_total{` + labels + `} 3
# HELP meshbot_requests_served_total Requests handled.
# TYPE meshbot_requests_served_total counter
meshbot_requests_served_total{` + labels + `} 2
# HELP meshbot_handler_errors_total Handler errors and panics, and error responses sent.
# TYPE meshbot_handler_errors_total counter
meshbot_handler_errors_total{` + labels + `} 1
# HELP meshbot_rejected_total Mesh lines rejected (malformed, forged, duplicate, ...), by reason.
# TYPE meshbot_rejected_total counter
`
	// Every reason the decoder can report is exported from the first
	// scrape, at 0; the list is the envelope package's, with these among
	// them.
	reasons := slices.Sorted(slices.Values(envelope.Reasons()))
	for _, r := range []string{"duplicate", "expired", "forged", "fragment", "malformed", "too-large", "truncated", "unknown-key", "unsigned", "version"} {
		if !slices.Contains(reasons, r) {
			t.Errorf("envelope.Reasons() lacks %q: %q", r, reasons)
		}
	}
	for _, r := range reasons {
		want += `meshbot_rejected_total{instance="a1",namespace="prom",reason="` + r + `",service="svc"} 0` + "\n"
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"meshbot_delivered_total", "meshbot_requests_served_total", "meshbot_handler_errors_total", "meshbot_rejected_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "meshbot_lines_in_total", "meshbot_lines_out_total", "meshbot_reconnects_total"); n != 3 {
		t.Errorf("got %d series of lines in/out and reconnects, want 3", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// The histogram: 3 events and 2 requests, cumulative buckets.
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, meshprom.NewCollector(client)) // two nodes share a registry
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "meshbot_handler_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			var svcLabel string
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" {
					svcLabel = l.GetValue()
				}
			}
			if svcLabel != "svc" {
				continue
			}
			found = true
			if h.GetSampleCount() != 5 {
				t.Errorf("histogram count %d, want 5", h.GetSampleCount())
			}
			if h.GetSampleSum() <= 0 {
				t.Errorf("histogram sum %v, want > 0", h.GetSampleSum())
			}
			if len(h.GetBucket()) != len(mesh.LatencyBuckets) {
				t.Errorf("%d buckets, want %d", len(h.GetBucket()), len(mesh.LatencyBuckets))
			}
			prev := uint64(0)
			for i, b := range h.GetBucket() {
				if b.GetUpperBound() != mesh.LatencyBuckets[i].Seconds() {
					t.Errorf("bucket %d bound %v, want %v", i, b.GetUpperBound(), mesh.LatencyBuckets[i].Seconds())
				}
				if b.GetCumulativeCount() < prev || b.GetCumulativeCount() > h.GetSampleCount() {
					t.Errorf("bucket %d count %d not cumulative (previous %d, total %d)", i, b.GetCumulativeCount(), prev, h.GetSampleCount())
				}
				prev = b.GetCumulativeCount()
			}
		}
	}
	if !found {
		t.Error("no handler_duration_seconds histogram for svc")
	}
}

func TestWithOptions(t *testing.T) {
	srv := ircdtest.Start(t)
	c := mesh.DefaultConfig()
	c.Server, c.Service, c.Instance = srv.Addr(), "solo", "x1"
	n := connectAll(t, c)[0]
	col := meshprom.NewCollector(n, meshprom.WithPrefix("acme"), meshprom.WithConstLabels(prometheus.Labels{"instance": "renamed", "zone": "z1"}))
	want := `
# HELP acme_delivered_total Events handed to subscription handlers.
# TYPE acme_delivered_total counter
acme_delivered_total{instance="renamed",namespace="mesh",service="solo",zone="z1"} 0
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(want), "acme_delivered_total"); err != nil {
		t.Error(err)
	}
}

// connectAll connects nodes in parallel (InspIRCd registers once a second)
// and closes them when the test ends.
func connectAll(t *testing.T, cfgs ...mesh.Config) []*mesh.Node {
	return meshtest.ConnectAll(t, cfgs...)
}

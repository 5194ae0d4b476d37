package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/bench"
)

// tiny are counts that run every workload of the comparison in seconds.
var tiny = []string{"-subs", "2", "-msgs", "300", "-requests", "50", "-outstanding", "1,2"}

// TestComparisonTable runs the comparison with tiny counts (an IRC server
// from MESH_IRCD, an embedded nats-server): one table, every workload and
// metric with a value on meshbot, raw IRC and NATS and both ratios.
func TestComparisonTable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, tiny, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	t.Log("\n" + out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[0], "nats-server 2.15.3 (embedded)") {
		t.Errorf("first line: %q", lines[0])
	}
	if h := strings.Join(strings.Fields(lines[1]), " "); h != "workload metric meshbot raw IRC NATS meshbot/raw meshbot/NATS" {
		t.Errorf("header: %q", lines[1])
	}
	rows := lines[2:]
	if len(rows) != 2+2*5 {
		t.Fatalf("%d rows, want 12:\n%s", len(rows), out.String())
	}
	for _, name := range []string{"pub/sub 1→2 multicast, 200 B", "pub/sub 1→2 anycast, 200 B",
		"req/resp, 1 outstanding, 200 B", "req/resp, 2 outstanding, 200 B", "msgs/s per subscriber", "msgs/s handled",
		"p50 µs", "p90 µs", "p99 µs", "max µs", "round trips/s"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("the table does not name %q", name)
		}
	}
	for _, r := range rows {
		if strings.Contains(r, "—") {
			t.Errorf("a figure is missing: %q", r)
		}
	}
	for _, s := range []string{"NATS pub/sub 1→2 anycast, 200 B: ", "NATS req/resp, 2 outstanding, 200 B: p50 "} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("no progress line %q:\n%s", s, errb.String())
		}
	}
}

// TestComparisonJSONCountsEveryMessage checks, in the JSON form, that every
// message reached every NATS subscriber (multicast), was handled once
// (anycast), and that every round trip was counted, on all three systems.
func TestComparisonJSONCountsEveryMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, append(tiny, "-json", "-progress", "none"), &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if errb.Len() != 0 {
		t.Errorf("stderr with -progress none: %q", errb.String())
	}
	var rep peerReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(rep.Fanout) != 2 || len(rep.Requests) != 2 || len(rep.Figures) != 12 || len(rep.Errors) != 0 {
		t.Fatalf("%d fanout, %d requests, %d figures, errors %v", len(rep.Fanout), len(rep.Requests), len(rep.Figures), rep.Errors)
	}
	for _, f := range rep.Fanout {
		receivers := int64(f.Subs)
		if f.Anycast {
			receivers = 1
		}
		if f.NATS == nil || f.NATS.Sent != 300 || f.NATS.Received != 300*receivers || !f.NATS.Complete {
			t.Errorf("%s on NATS: %+v", f.Workload, f.NATS)
		}
		if f.Mesh == nil || !f.Mesh.Complete || f.Mesh.Received < 300*receivers || f.Raw == nil || f.Raw.Received != 300*int64(f.Subs) {
			t.Errorf("%s: meshbot %+v, raw %+v", f.Workload, f.Mesh, f.Raw)
		}
	}
	for _, q := range rep.Requests {
		for side, l := range map[string]int{"NATS": count(q.NATS), "meshbot": count(q.Mesh), "raw": count(q.Raw)} {
			if l != 50 {
				t.Errorf("%s on %s: %d round trips", q.Workload, side, l)
			}
		}
	}
	for _, f := range rep.Figures {
		if len(f.Values) != 3 {
			t.Errorf("%s %s: %v", f.Workload, f.Metric, f.Values)
		}
	}
}

// count is l's round trips, -1 when it was not measured.
func count(l *bench.Latency) int {
	if l == nil {
		return -1
	}
	return l.Count
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{{"-outstanding", "x"}, {"-msgs", "0"}, {"-progress", "loud"}, {"-nope"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

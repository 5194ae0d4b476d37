package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// benchFigures are the rows a run of every workload prints: workload and
// metric names.
var benchFigures = []string{
	"pub/sub 1→2 multicast, 200 B", "msgs/s per subscriber",
	"req/resp, 1 outstanding, 200 B", "req/resp, 2 outstanding, 200 B",
	"p50 µs", "p90 µs", "p99 µs", "max µs", "round trips/s",
}

// TestBenchNamesEveryFigure runs meshbot bench with tiny counts against a
// server: the table names every workload and metric with a value for
// meshbot, raw IRC and their ratio; progress went to stderr as plain
// lines; --json holds the same figures.
func TestBenchNamesEveryFigure(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	args := []string{"bench", "--server", srv.Addr(), "--subs", "2", "--msgs", "300", "--requests", "50", "--outstanding", "1,2"}
	r := runCLI(t, nil, "", args...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Log("\n" + r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.Contains(lines[0], "IRC server at "+srv.Addr()) || !strings.Contains(lines[0], "load ") {
		t.Errorf("first line: %q", lines[0])
	}
	if h := strings.Join(strings.Fields(lines[1]), " "); h != "workload metric meshbot raw IRC meshbot/raw" {
		t.Errorf("header: %q", lines[1])
	}
	for _, name := range benchFigures {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("the table does not name %q", name)
		}
	}
	if rows := len(lines) - 2; rows != 1+2*5 {
		t.Errorf("%d rows, want 11 (1 pub/sub, 2 × 5 req/resp)", rows)
	}
	for _, l := range lines[2:] {
		if strings.Contains(l, "—") || len(strings.Fields(l)) < 4 {
			t.Errorf("a figure is missing: %q", l)
		}
	}
	for _, s := range []string{"raw IRC pub/sub 1→2 multicast, 200 B: ", "meshbot req/resp, 2 outstanding, 200 B: p50 "} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks the progress line %q:\n%s", s, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("progress rewrote lines in place on a non-terminal")
	}

	r = runCLI(t, nil, "", append(args, "--json", "--progress", "none")...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("--json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var rep struct {
		Fanout   []json.RawMessage `json:"fanout"`
		Requests []json.RawMessage `json:"requests"`
		Figures  []struct {
			Workload string             `json:"workload"`
			Metric   string             `json:"metric"`
			Values   map[string]float64 `json:"values"`
		} `json:"figures"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if len(rep.Fanout) != 1 || len(rep.Requests) != 2 || len(rep.Figures) != 11 {
		t.Fatalf("--json: %d fanout, %d requests, %d figures", len(rep.Fanout), len(rep.Requests), len(rep.Figures))
	}
	for _, f := range rep.Figures {
		if f.Values["meshbot"] <= 0 || f.Values["raw IRC"] <= 0 {
			t.Errorf("--json: %s %s: %v", f.Workload, f.Metric, f.Values)
		}
	}
}

// TestBenchHelpExampleRuns runs the first example of --help as given: the
// bench starts its own server, measures everything and stops it.
func TestBenchHelpExampleRuns(t *testing.T) {
	t.Parallel()
	help := runCLI(t, nil, "", "bench", "--help")
	_, examples, _ := strings.Cut(help.stdout, "Examples:")
	var args []string
	for _, line := range strings.Split(examples, "\n") {
		if args = exampleArgs(line); args != nil {
			break
		}
	}
	if len(args) == 0 || args[0] != "bench" {
		t.Fatalf("no example in:\n%s", help.stdout)
	}
	r := runCLI(t, nil, "", args...)
	if r.code != 0 {
		t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "started by meshbot bench") || !strings.Contains(r.stdout, "msgs/s per subscriber") ||
		!strings.Contains(r.stdout, "round trips/s") {
		t.Errorf("%v:\n%s", args, r.stdout)
	}
}

// TestBenchInterrupt: Ctrl-C during a long run prints what was measured
// (the raw side), says the run was interrupted, and exits 0.
func TestBenchInterrupt(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	b := startCLI(t, nil, "bench", "pubsub", "--server", srv.Addr(), "--msgs", "50000000", "--duration", "1s")
	waitFor(t, "bench", b.errbuf, "meshbot pub/sub 1→3 multicast, 200 B: 0/", 60*time.Second)
	if code := b.stop(t); code != 0 {
		t.Errorf("exit %d after Ctrl-C\n%s", code, b.errbuf.String())
	}
	out := b.out.String()
	if !strings.Contains(out, "pub/sub 1→3 multicast, 200 B") || !strings.Contains(out, "note: interrupted") {
		t.Errorf("stdout after Ctrl-C:\n%s", out)
	}
	if !strings.Contains(b.errbuf.String(), "meshbot pub/sub 1→3 multicast, 200 B: interrupted") {
		t.Errorf("stderr:\n%s", b.errbuf.String())
	}
}

func TestBenchUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "fanout"}, `unknown workload "fanout"`},
		{[]string{"bench", "--server", "127.0.0.1:1", "--ircd", "ngircd"}, "--server uses a running server"},
		{[]string{"bench", "--msgs", "0"}, "0 messages for 1 publishers"},
		{[]string{"bench", "request", "--outstanding", "0"}, "0 outstanding"},
		{[]string{"bench", "--progress", "sometimes"}, "--progress is auto, live, plain or none"},
	} {
		r := runCLI(t, nil, "", tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

package bench

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", ms(7), 1, 7 * time.Millisecond},
		{"one sample, p100", ms(7), 100, 7 * time.Millisecond},
		{"1..100 p50", hundred, 50, 50 * time.Millisecond},
		{"1..100 p90", hundred, 90, 90 * time.Millisecond},
		{"1..100 p99", hundred, 99, 99 * time.Millisecond},
		{"1..100 p100", hundred, 100, 100 * time.Millisecond},
		{"1..100 p99.5 rounds up", hundred, 99.5, 100 * time.Millisecond},
		{"ten samples p99 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"ten samples p50", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50, 5 * time.Millisecond},
		{"ten samples p51", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 51, 6 * time.Millisecond},
		{"three samples p50", ms(1, 5, 9), 50, 5 * time.Millisecond},
	} {
		if got := Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: Percentile(p%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

// TestPercentileNaive checks Percentile against its definition, counted
// the slow way: the smallest sample with at least p % of them at or below.
func TestPercentileNaive(t *testing.T) {
	for n := 1; n <= 40; n++ {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration((i*7919)%53) * time.Microsecond // repeats
		}
		slices.Sort(s)
		for _, p := range []float64{1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100} {
			var want time.Duration
			for _, c := range s {
				atOrBelow := 0
				for _, x := range s {
					if x <= c {
						atOrBelow++
					}
				}
				if float64(atOrBelow)*100 >= p*float64(n) {
					want = c
					break
				}
			}
			if got := Percentile(s, p); got != want {
				t.Fatalf("n=%d p%v: %v, want %v (%v)", n, p, got, want, s)
			}
		}
	}
}

func TestSummarize(t *testing.T) {
	s := []time.Duration{400 * time.Microsecond, 100 * time.Microsecond, 300 * time.Microsecond, 200 * time.Microsecond}
	l := Summarize(s, 2*time.Second)
	want := Latency{Count: 4, P50: 200, P90: 400, P99: 400, Max: 400, Mean: 250, PerSecond: 2, Seconds: 2}
	if l != want {
		t.Errorf("Summarize = %+v, want %+v", l, want)
	}
	if z := Summarize(nil, time.Second); z.Count != 0 || z.PerSecond != 0 || z.P50 != 0 {
		t.Errorf("no samples: %+v", z)
	}
}

func TestRates(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(tl *Tally, n int64, after time.Duration) {
		tl.n.Store(n)
		tl.last.Store(start.Add(after).UnixNano())
	}
	a, b := &Tally{}, &Tally{}
	at(a, 2000, time.Second)   // 2000 lines = 1000 messages of 2 lines in 1 s
	at(b, 2000, 2*time.Second) // the same in 2 s
	r := MulticastRate(start, 1000, 2, []*Tally{a, b})
	want := Rate{Sent: 1000, Received: 2000, PerSecond: (1000 + 500) / 2.0, Seconds: 2, Complete: true}
	if r != want {
		t.Errorf("MulticastRate = %+v, want %+v", r, want)
	}
	at(b, 1998, 2*time.Second) // one message short
	if r := MulticastRate(start, 1000, 2, []*Tally{a, b}); r.Complete || r.Received != 1999 {
		t.Errorf("a subscriber one message short: %+v", r)
	}
	h := &Tally{}
	at(h, 300, 3*time.Second/2)
	if r := AnycastRate(start, 300, h); r != (Rate{Sent: 300, Received: 300, PerSecond: 200, Seconds: 1.5, Complete: true}) {
		t.Errorf("AnycastRate = %+v", r)
	}
	if r := AnycastRate(start, 301, h); r.Complete {
		t.Errorf("one message not handled, yet complete: %+v", r)
	}
}

func sampleReport() *Report {
	return &Report{
		Server:     "inspircd at 127.0.0.1:6667",
		Started:    time.Now(),
		CPUs:       2,
		GoMaxProcs: 2,
		LoadBefore: []float64{1.5, 1, 0.5},
		Fanout: []FanoutResult{{
			Workload: Fanout{Pubs: 1, Subs: 3, Size: 200, Msgs: 1000}.Name(), Pubs: 1, Subs: 3, Size: 200, Msgs: 1000,
			Raw:  &Rate{Sent: 1000, Received: 3000, PerSecond: 250000, Seconds: 0.004, Complete: true},
			Mesh: &Rate{Sent: 1000, Received: 2990, PerSecond: 62500, Seconds: 0.016},
		}, {
			Workload: Fanout{Pubs: 1, Subs: 3, Size: 200, Msgs: 1000, Anycast: true}.Name(), Anycast: true,
			Raw: &Rate{Sent: 1000, Received: 3000, PerSecond: 200000, Complete: true},
			// meshbot not measured: interrupted
		}},
		Requests: []RequestResult{{
			Workload: Requests{Outstanding: 16, Size: 200, Count: 100}.Name(), Outstanding: 16, Size: 200, Count: 100,
			Raw:  &Latency{Count: 100, P50: 100, P90: 150, P99: 200, Max: 250, PerSecond: 20000, Complete: true},
			Mesh: &Latency{Count: 100, P50: 150, P90: 240, P99: 500, Max: 900, PerSecond: 12000, Complete: true},
		}},
		Interrupted: true,
	}
}

func TestTableNamesEveryFigure(t *testing.T) {
	r := sampleReport()
	r.Finish()
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.Contains(lines[0], "inspircd at 127.0.0.1:6667") || !strings.Contains(lines[0], "load 1.50 1.00 0.50 before") {
		t.Errorf("first line: %q", lines[0])
	}
	header := strings.Fields(lines[1])
	if !slices.Equal(header, []string{"workload", "metric", "meshbot", "raw", "IRC", "meshbot/raw"}) {
		t.Errorf("header: %q", lines[1])
	}
	// One row per figure, the workload named on its first row only, the
	// values and ratio in their columns, "—" where a side is missing.
	want := []struct{ has []string }{
		{[]string{"pub/sub 1→3 multicast, 200 B", "msgs/s per subscriber", "62.5k", "250k", "0.25"}},
		{[]string{"pub/sub 1→3 anycast, 200 B", "msgs/s handled", "—", "200k", "—"}},
		{[]string{"req/resp, 16 outstanding, 200 B", "p50 µs", "150", "100", "1.50"}},
		{[]string{"p90 µs", "240", "150", "1.60"}},
		{[]string{"p99 µs", "500", "200", "2.50"}},
		{[]string{"max µs", "900", "250", "3.60"}},
		{[]string{"round trips/s", "12.0k", "20.0k", "0.60"}},
	}
	for i, w := range want {
		line := lines[2+i]
		for _, s := range w.has {
			if !strings.Contains(line, s) {
				t.Errorf("row %d %q lacks %q", i, line, s)
			}
		}
	}
	if strings.Contains(lines[5], "req/resp") {
		t.Errorf("workload repeated on its second row: %q", lines[5])
	}
	// Columns line up: every row has the same width up to its last cell.
	w0 := len([]rune(lines[1]))
	for _, l := range lines[2:9] {
		if len([]rune(l)) != w0 {
			t.Errorf("row %q is %d wide, header %d", l, len([]rune(l)), w0)
		}
	}
	notes := strings.Join(lines[9:], "\n")
	for _, s := range []string{
		"note: pub/sub 1→3 multicast, 200 B, meshbot: stopped early (2990 of 3000)",
		"note: interrupted",
	} {
		if !strings.Contains(notes, s) {
			t.Errorf("notes lack %q:\n%s", s, notes)
		}
	}
}

func TestJSONHoldsEveryFigure(t *testing.T) {
	r := sampleReport()
	r.Finish()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Server    string    `json:"server"`
		LoadAfter []float64 `json:"load_after"`
		Fanout    []struct {
			Workload string `json:"workload"`
			Raw      *Rate  `json:"raw_irc"`
			Mesh     *Rate  `json:"meshbot"`
		} `json:"fanout"`
		Requests []struct {
			Mesh     *Latency `json:"meshbot"`
			P50Ratio float64  `json:"p50_meshbot_per_raw"`
		} `json:"requests"`
		Figures     []Figure `json:"figures"`
		Interrupted bool     `json:"interrupted"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got.Server != r.Server || !got.Interrupted || len(got.Fanout) != 2 || len(got.Requests) != 1 {
		t.Fatalf("decoded %+v from\n%s", got, b.String())
	}
	if got.Fanout[0].Mesh == nil || got.Fanout[0].Mesh.PerSecond != 62500 || got.Fanout[1].Mesh != nil {
		t.Errorf("fanout sides: %+v %+v", got.Fanout[0].Mesh, got.Fanout[1].Mesh)
	}
	if got.Requests[0].Mesh == nil || got.Requests[0].Mesh.P99 != 500 {
		t.Errorf("request: %+v", got.Requests[0].Mesh)
	}
	if len(got.Figures) != 2+5 {
		t.Fatalf("%d figures, want 7", len(got.Figures))
	}
	if v := got.Figures[2].Values[Meshbot]; got.Figures[2].Metric != "p50 µs" || v != 150 || !got.Figures[2].Lower {
		t.Errorf("figure 2: %+v", got.Figures[2])
	}
	if _, ok := got.Figures[1].Values[Meshbot]; ok {
		t.Errorf("a side not measured has a value: %+v", got.Figures[1])
	}
}

func TestHuman(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1234: "1.2k", 62500: "62.5k", 250000: "250k", 1.234e6: "1.23M", 12.34e6: "12.3M"} {
		if got := Human(v); got != want {
			t.Errorf("Human(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestProgress(t *testing.T) {
	for _, live := range []bool{false, true} {
		var b syncBuffer
		p := NewProgress(&b, live)
		p.Note("connecting")
		var n int64 = 5
		end := p.Phase("raw IRC pub/sub", 10, func() int64 { return n })
		end("250k msgs/s per subscriber")
		end("twice is once")
		out := b.String()
		if !strings.Contains(out, "raw IRC pub/sub: 5/10 (50%)") || !strings.Contains(out, "raw IRC pub/sub: 250k msgs/s per subscriber\n") {
			t.Errorf("live=%v: %q", live, out)
		}
		if strings.Contains(out, "twice") {
			t.Errorf("live=%v: end ran twice: %q", live, out)
		}
		if live != strings.Contains(out, "\r\x1b[K") {
			t.Errorf("live=%v: in-place rewrite %v: %q", live, !live, out)
		}
		if !live && strings.Count(out, "\n") != 3 {
			t.Errorf("plain: want three lines: %q", out)
		}
	}
	var nilProgress *Progress
	nilProgress.Note("nothing")
	nilProgress.Phase("x", 1, func() int64 { return 0 })("done")
}

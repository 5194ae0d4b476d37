package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Systems: the columns of a table.
const (
	Meshbot = "meshbot"
	RawIRC  = "raw IRC"
)

// Report is the outcome of a run: what was measured, where, under what
// load. Its JSON form is the machine-readable result.
type Report struct {
	Server     string    `json:"server"` // what was measured: "inspircd 3.15 at 127.0.0.1:6667"
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"` // the whole run
	CPUs       int       `json:"cpus"`
	GoMaxProcs int       `json:"gomaxprocs"`
	// LoadBefore and LoadAfter are the machine's load averages (1, 5 and
	// 15 minutes) before and after the run, where the system tells.
	LoadBefore  []float64       `json:"load_before,omitempty"`
	LoadAfter   []float64       `json:"load_after,omitempty"`
	Fanout      []FanoutResult  `json:"fanout,omitempty"`
	Requests    []RequestResult `json:"requests,omitempty"`
	Interrupted bool            `json:"interrupted,omitempty"`
	Errors      []string        `json:"errors,omitempty"`
	// Figures are the table's rows.
	Figures []Figure `json:"figures"`
}

// Figure is one measured quantity of one workload on each system.
type Figure struct {
	Workload string `json:"workload"`
	Metric   string `json:"metric"` // e.g. "msgs/s per subscriber", "p99 µs"
	// Lower: a lower value is better (latencies).
	Lower  bool               `json:"lower_is_better,omitempty"`
	Values map[string]float64 `json:"values"` // by system; absent: not measured
}

// Ratio is Values[a]/Values[b], and whether both are there.
func (f Figure) Ratio(a, b string) (float64, bool) {
	x, okA := f.Values[a]
	y, okB := f.Values[b]
	if !okA || !okB || y == 0 {
		return 0, false
	}
	return x / y, true
}

// Figures returns the rows of a fanout result: the rate of each side.
func (r FanoutResult) Figures() []Figure {
	metric := "msgs/s per subscriber"
	if r.Anycast {
		metric = "msgs/s handled"
	}
	f := Figure{Workload: r.Workload, Metric: metric, Values: map[string]float64{}}
	if r.Mesh != nil {
		f.Values[Meshbot] = r.Mesh.PerSecond
	}
	if r.Raw != nil {
		f.Values[RawIRC] = r.Raw.PerSecond
	}
	return []Figure{f}
}

// Figures returns the rows of a request result: p50, p90, p99, max (µs)
// and throughput of each side.
func (r RequestResult) Figures() []Figure {
	return LatencyFigures(r.Workload, map[string]*Latency{Meshbot: r.Mesh, RawIRC: r.Raw})
}

// LatencyFigures returns the rows of one request workload measured on
// several systems (nil: not measured).
func LatencyFigures(workload string, by map[string]*Latency) []Figure {
	rows := []struct {
		metric string
		lower  bool
		get    func(*Latency) float64
	}{
		{"p50 µs", true, func(l *Latency) float64 { return l.P50 }},
		{"p90 µs", true, func(l *Latency) float64 { return l.P90 }},
		{"p99 µs", true, func(l *Latency) float64 { return l.P99 }},
		{"max µs", true, func(l *Latency) float64 { return l.Max }},
		{"round trips/s", false, func(l *Latency) float64 { return l.PerSecond }},
	}
	var out []Figure
	for _, row := range rows {
		f := Figure{Workload: workload, Metric: row.metric, Lower: row.lower, Values: map[string]float64{}}
		for sys, l := range by {
			if l != nil && l.Count > 0 {
				f.Values[sys] = row.get(l)
			}
		}
		out = append(out, f)
	}
	return out
}

// Finish fills Figures from the results, and the run's time and load.
func (r *Report) Finish() {
	r.Seconds = time.Since(r.Started).Seconds()
	r.LoadAfter = LoadAverage()
	r.Figures = r.Figures[:0]
	for _, f := range r.Fanout {
		r.Figures = append(r.Figures, f.Figures()...)
	}
	for _, q := range r.Requests {
		r.Figures = append(r.Figures, q.Figures()...)
	}
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes figs as a table: workload, metric, a column per system
// (in the order given), then a column per ratio (ratios[i] = {a, b}: a/b).
// Numbers are right-aligned; a value not measured shows as "—".
func WriteTable(w io.Writer, figs []Figure, systems []string, ratios [][2]string) error {
	head := []string{"workload", "metric"}
	head = append(head, systems...)
	for _, r := range ratios {
		head = append(head, shortName(r[0])+"/"+shortName(r[1]))
	}
	rows := [][]string{head}
	prev := ""
	for _, f := range figs {
		cells := []string{f.Workload, f.Metric}
		if f.Workload == prev {
			cells[0] = ""
		}
		prev = f.Workload
		for _, s := range systems {
			v, ok := f.Values[s]
			if !ok {
				cells = append(cells, "—")
				continue
			}
			cells = append(cells, value(f.Metric, v))
		}
		for _, r := range ratios {
			x, ok := f.Ratio(r[0], r[1])
			if !ok {
				cells = append(cells, "—")
				continue
			}
			cells = append(cells, strconv.FormatFloat(x, 'f', 2, 64))
		}
		rows = append(rows, cells)
	}
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			switch {
			case i < 2:
				b.WriteString(c + pad)
			default:
				b.WriteString(pad + c)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// shortName is a system's name in a ratio's heading.
func shortName(system string) string {
	if system == RawIRC {
		return "raw"
	}
	return system
}

func value(metric string, v float64) string {
	if strings.HasSuffix(metric, "µs") {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return Human(v)
}

// Human formats a rate: 123, 12.3k, 123k, 1.23M.
func Human(v float64) string {
	switch a := math.Abs(v); {
	case a >= 10e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case a >= 100e3:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}

// LoadAverage returns the machine's 1, 5 and 15 minute load averages, or
// nil where /proc/loadavg is not there.
func LoadAverage() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	fields := strings.Fields(string(b))
	if len(fields) < 3 {
		return nil
	}
	out := make([]float64, 0, 3)
	for _, f := range fields[:3] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

// WriteText writes r for a person: a line naming the server, the machine
// and its load, the table (meshbot, raw IRC, their ratio), and a note per
// side that stopped early.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s; %d CPUs (GOMAXPROCS %d); load %s before, %s after; %.1f s\n",
		r.Server, r.CPUs, r.GoMaxProcs, loadText(r.LoadBefore), loadText(r.LoadAfter), r.Seconds)
	if err := WriteTable(w, r.Figures, []string{Meshbot, RawIRC}, [][2]string{{Meshbot, RawIRC}}); err != nil {
		return err
	}
	for _, n := range r.Notes() {
		fmt.Fprintln(w, "note: "+n)
	}
	return nil
}

// Notes says which measured sides stopped early, and why the run did.
func (r *Report) Notes() []string {
	var out []string
	side := func(sys, workload string, complete bool, got, want int64) {
		if !complete {
			out = append(out, fmt.Sprintf("%s, %s: stopped early (%d of %d)", workload, sys, got, want))
		}
	}
	for _, f := range r.Fanout {
		for sys, rate := range map[string]*Rate{Meshbot: f.Mesh, RawIRC: f.Raw} {
			if rate != nil {
				want := rate.Sent
				if !f.Anycast {
					want *= int64(f.Subs)
				}
				side(sys, f.Workload, rate.Complete, rate.Received, want)
			}
		}
	}
	for _, q := range r.Requests {
		for sys, l := range map[string]*Latency{Meshbot: q.Mesh, RawIRC: q.Raw} {
			if l != nil {
				side(sys, q.Workload, l.Complete, int64(l.Count), int64(q.Count))
			}
		}
	}
	slices.Sort(out)
	if r.Interrupted {
		out = append(out, "interrupted: the figures are what was measured until then")
	}
	for _, e := range r.Errors {
		out = append(out, "error: "+e)
	}
	return out
}

func loadText(l []float64) string {
	if len(l) == 0 {
		return "unknown"
	}
	var parts []string
	for _, v := range l {
		parts = append(parts, strconv.FormatFloat(v, 'f', 2, 64))
	}
	return strings.Join(parts, " ")
}

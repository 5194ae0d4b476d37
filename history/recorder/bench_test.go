package recorder_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// The benchmarks measure against bare IRC clients on the same server in
// the same run (docs/performance.md). They report numbers and assert only
// completeness, never speed.

// BenchmarkRecorderIngest: a bare client blasts 50,000 200-byte lines into
// a channel at the server's pace; a bare client in the channel counts them
// (the raw line rate) while a recorder journals them. Reported: both
// rates, their ratio, the recorder's lag behind the last line, lines
// missing (must be 0), store bytes per line and the process heap after
// each round (flat when the recorder's memory does not grow with history).
func BenchmarkRecorderIngest(b *testing.B) {
	const lines = 50000
	srv := ircdtest.Start(b)
	m := historytest.NewMesh(srv, "h", nil)
	r := m.StartRecorderIn(b, b.TempDir(), "", "r", recorder.Config{})
	rec, st := r.Recorder, r.Store
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pub, err := ircd.DialRaw(ctx, srv.Addr(), "blast")
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Quit(ctx)
	sub, err := ircd.DialRaw(ctx, srv.Addr(), "count")
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Quit(ctx)
	const ch = "#h.ingest"
	for _, c := range []*ircd.RawClient{pub, sub} {
		if err := historytest.JoinRaw(ctx, c, ch); err != nil {
			b.Fatal(err)
		}
	}
	historytest.WaitTopic(b, rec, "ingest")
	var rawRate, recRate, lagMs float64
	var heaps []uint64
	recorded := func() int64 { return st.Stats().Channels[ch].Records }
	for b.Loop() {
		before := recorded()
		start := time.Now()
		lastRaw := make(chan time.Time, 1)
		go func() {
			t, err := historytest.RawCount(ctx, sub, lines)
			if err != nil {
				b.Error(err)
			}
			lastRaw <- t
		}()
		if err := historytest.RawBlast(ctx, pub, ch, lines); err != nil {
			b.Fatal(err)
		}
		rawDone := <-lastRaw
		deadline := time.Now().Add(60 * time.Second)
		for recorded()-before < lines {
			if time.Now().After(deadline) {
				b.Fatalf("recorded %d of %d lines (dropped %d, errors %d)", recorded()-before, lines, rec.Dropped(), rec.Errors())
			}
			time.Sleep(time.Millisecond)
		}
		recDone := time.Now()
		rawRate = lines / rawDone.Sub(start).Seconds()
		recRate = lines / recDone.Sub(start).Seconds()
		lagMs = float64(recDone.Sub(rawDone).Microseconds()) / 1000
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heaps = append(heaps, ms.HeapInuse)
	}
	if d := rec.Dropped(); d > 0 {
		b.Fatalf("the recorder dropped %d lines", d)
	}
	s := st.Stats()
	b.ReportMetric(rawRate, "raw_lines/s")
	b.ReportMetric(recRate, "recorded_lines/s")
	b.ReportMetric(recRate/rawRate, "recorded/raw")
	b.ReportMetric(lagMs, "lag_ms")
	b.ReportMetric(float64(s.FileBytes)/float64(s.Records), "file_bytes/line")
	b.ReportMetric(float64(heaps[len(heaps)-1])/(1<<20), "heap_MiB_end")
	b.ReportMetric(float64(heaps[0])/(1<<20), "heap_MiB_first")
	b.Logf("%d lines recorded in all; heap after each round (MiB): %v", s.Records, mib(heaps))
}

func mib(xs []uint64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.1f", float64(x)/(1<<20))
	}
	return out
}

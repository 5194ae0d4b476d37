package history_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
)

// The benchmarks measure against bare IRC clients on the same server in
// the same run (docs/performance.md). They report numbers and assert only
// completeness, never speed.

// BenchmarkReplay: 20,000 200-byte events are recorded, then replayed
// through the history service (default window of pages in flight); in the
// same run a bare client sends 20,000 200-byte lines by DM to another (the
// raw DM line rate). Reported: raw DM lines/s, replayed lines/s and
// events/s, the ratios, and the pages of the last replay (and how many
// were cut short by the byte bound).
func BenchmarkReplay(b *testing.B) {
	const events = 20000
	srv := ircdtest.Start(b)
	m := historytest.NewMesh(srv, "h", nil)
	rec := m.StartRecorderIn(b, b.TempDir(), "", "r", recorder.Config{})
	nodes := meshtest.ConnectAll(b, m.Config("orders"), m.Config("reader"))
	pub, reader := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := reader.WaitFor(ctx, history.Service); err != nil {
		b.Fatal(err)
	}
	if _, err := pub.Publish(ctx, "replay", []byte("warm-up")); err != nil {
		b.Fatal(err)
	}
	historytest.WaitTopic(b, rec.Recorder, "replay")
	payload := []byte(strings.Repeat("x", historytest.BenchLine))
	for range events {
		if _, err := pub.PublishAsync(ctx, "replay", payload); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pub.Publish(ctx, "replay", payload); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // committed

	a, err := ircd.DialRaw(ctx, srv.Addr(), "dma")
	if err != nil {
		b.Fatal(err)
	}
	defer a.Quit(ctx)
	z, err := ircd.DialRaw(ctx, srv.Addr(), "dmz")
	if err != nil {
		b.Fatal(err)
	}
	defer z.Quit(ctx)

	var rawRate, lineRate, eventRate float64
	var stats history.ReplayStats
	for b.Loop() {
		start := time.Now()
		lastRaw := make(chan time.Time, 1)
		go func() {
			t, err := historytest.RawCount(ctx, z, events)
			if err != nil {
				b.Error(err)
			}
			lastRaw <- t
		}()
		if err := historytest.RawBlast(ctx, a, z.Nick(), events); err != nil {
			b.Fatal(err)
		}
		rawRate = events / (<-lastRaw).Sub(start).Seconds()

		start = time.Now()
		n := 0
		var err error
		stats, err = history.Replay(ctx, reader, "replay", history.ReplayOptions{PageRecords: history.MaxPageRecords}, func(history.Replayed) error { n++; return nil })
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start).Seconds()
		if n < events {
			b.Fatalf("replayed %d envelopes, want at least %d", n, events)
		}
		lineRate, eventRate = float64(stats.Lines)/d, float64(n)/d
	}
	b.ReportMetric(rawRate, "raw_dm_lines/s")
	b.ReportMetric(lineRate, "replayed_lines/s")
	b.ReportMetric(eventRate, "replayed_events/s")
	b.ReportMetric(lineRate/rawRate, "replayed_lines/raw")
	b.ReportMetric(eventRate/rawRate, "replayed_events/raw_lines")
	b.ReportMetric(float64(stats.Pages), "pages")
	b.ReportMetric(float64(stats.Cut), "cut_pages")
}

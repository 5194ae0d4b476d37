package history_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
)

// The benchmarks measure the recorder against bare IRC clients on the same
// server in the same run (docs/performance.md). They report numbers and
// assert only completeness, never speed.

const benchLine = 200 // bytes of text per raw line

// rawBlast sends n PRIVMSG lines to target from c, 100 per PING, waiting
// for each PONG (flow control, as meshbot's writer does).
func rawBlast(ctx context.Context, c *ircd.RawClient, target string, n int) error {
	text := strings.Repeat("x", benchLine)
	for i := 0; i < n; i += 100 {
		for j := i; j < min(i+100, n); j++ {
			if err := c.Send(ctx, "PRIVMSG "+target+" :"+text); err != nil {
				return err
			}
		}
		tok := fmt.Sprintf("w%d", i)
		if err := c.Send(ctx, "PING :"+tok); err != nil {
			return err
		}
		for {
			m, err := c.Read(ctx)
			if err != nil {
				return err
			}
			if m.Command == "PONG" && len(m.Params) > 0 && m.Params[len(m.Params)-1] == tok {
				break
			}
		}
	}
	return nil
}

// rawCount reads until n PRIVMSGs arrived and returns when the last did.
func rawCount(ctx context.Context, c *ircd.RawClient, n int) (time.Time, error) {
	for got := 0; got < n; {
		m, err := c.Read(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if m.Command == "PRIVMSG" {
			got++
		}
	}
	return time.Now(), nil
}

func joinRaw(ctx context.Context, c *ircd.RawClient, ch string) error {
	if err := c.Send(ctx, "JOIN "+ch); err != nil {
		return err
	}
	for {
		m, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if m.Command == "366" {
			return nil
		}
	}
}

// BenchmarkRecorderIngest: a bare client blasts 50,000 200-byte lines into
// a channel at the server's pace; a bare client in the channel counts them
// (the raw line rate) while a recorder journals them. Reported: both
// rates, their ratio, the recorder's lag behind the last line, lines
// missing (must be 0), store bytes per line and the process heap after
// each round (flat when the recorder's memory does not grow with history).
func BenchmarkRecorderIngest(b *testing.B) {
	const lines = 50000
	srv := ircdtest.Start(b)
	rec, st := startRecorder(b, srv)
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
		if err := joinRaw(ctx, c, ch); err != nil {
			b.Fatal(err)
		}
	}
	waitTopic(b, rec, "ingest")
	var rawRate, recRate, lagMs float64
	var heaps []uint64
	recorded := func() int64 { return st.Stats().Channels[ch].Records }
	for b.Loop() {
		before := recorded()
		start := time.Now()
		lastRaw := make(chan time.Time, 1)
		go func() {
			t, err := rawCount(ctx, sub, lines)
			if err != nil {
				b.Error(err)
			}
			lastRaw <- t
		}()
		if err := rawBlast(ctx, pub, ch, lines); err != nil {
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

// BenchmarkReplay: 20,000 200-byte events are recorded, then replayed
// through the history service (default window of pages in flight); in the
// same run a bare client sends 20,000 200-byte lines by DM to another (the
// raw DM line rate). Reported: raw DM lines/s, replayed lines/s and
// events/s, the ratios, and the pages of the last replay (and how many
// were cut short by the byte bound).
func BenchmarkReplay(b *testing.B) {
	const events = 20000
	srv := ircdtest.Start(b)
	rec, _ := startRecorder(b, srv)
	nodes := meshtest.ConnectAll(b, nodeConfig(srv, "orders"), nodeConfig(srv, "reader"))
	pub, reader := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := reader.WaitFor(ctx, history.Service); err != nil {
		b.Fatal(err)
	}
	if _, err := pub.Publish(ctx, "replay", []byte("warm-up")); err != nil {
		b.Fatal(err)
	}
	waitTopic(b, rec, "replay")
	payload := []byte(strings.Repeat("x", benchLine))
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
			t, err := rawCount(ctx, z, events)
			if err != nil {
				b.Error(err)
			}
			lastRaw <- t
		}()
		if err := rawBlast(ctx, a, z.Nick(), events); err != nil {
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

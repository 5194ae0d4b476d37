//go:build unix

package meshtest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// benchLog builds a log in the recorded format, as InspIRCd sends it to a
// recording node: registration, the joins, then lines events of topic
// jobs from one publisher, ten per millisecond, and a heartbeat of the
// publisher every second.
func benchLog(tb testing.TB, lines int) *recording.Log {
	var b strings.Builder
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	stamp := func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z") }
	fmt.Fprintf(&b, "@time=%s :irc.test 001 rec-1 :Welcome\n", stamp(t0))
	for _, ch := range []string{"#bench._hb", "#bench.jobs"} {
		fmt.Fprintf(&b, "@time=%s :rec-1!~rec@127.0.0.1 JOIN %s\n", stamp(t0), ch)
		fmt.Fprintf(&b, "@time=%s :irc.test 353 rec-1 = %s :rec-1 pub-1\n", stamp(t0), ch)
		fmt.Fprintf(&b, "@time=%s :irc.test 366 rec-1 %s :End of /NAMES list.\n", stamp(t0), ch)
	}
	sender := envelope.Sender{Service: "pub", Instance: "1", Incarnation: 1}
	lim := envelope.Limits{TagBytes: envelope.DefaultTagBytes, BodyBytes: 400}
	line := func(at time.Time, n int, target string, env *envelope.Envelope) {
		sealed, err := envelope.Seal(env, nil)
		if err != nil {
			tb.Fatal(err)
		}
		ls, err := envelope.EncodeLines(env, sealed, envelope.CarrierTag, lim)
		if err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&b, "@time=%s;msgid=m%d;+meshbot/e=%s :pub-1!~pub@127.0.0.1 PRIVMSG %s :%s\n",
			stamp(at), n, ls[0].Tags[envelope.TagData], target, ls[0].Body)
	}
	var seq uint64
	for i := 0; i < lines; i++ {
		at := t0.Add(time.Second + time.Duration(i)*100*time.Microsecond)
		if i%10000 == 0 {
			seq++
			payload, err := heartbeat.Encode(&heartbeat.Beat{Service: "pub", Instance: "1", Incarnation: 1, Seq: seq, IntervalMillis: 1000})
			if err != nil {
				tb.Fatal(err)
			}
			line(at, i, "#bench._hb", envelope.New(envelope.KindHeartbeat, sender, "pub", payload, at))
			continue
		}
		line(at, i, "#bench.jobs", envelope.New(envelope.KindEvent, sender, "jobs", fmt.Appendf(nil, "job-%d", i), at))
	}
	l, err := recording.Parse(b.String())
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReplay replays a 100,000-line log into a service whose handler
// does nothing, and reports the CPU time of a replay (all the process's
// threads: the node's reader, its workers, the replay server, the garbage
// collector) besides the wall time.
//
// synctest.Test needs a *testing.T, which a benchmark has not: each
// iteration runs the replay as a test of its own (testing.RunTests).
func BenchmarkReplay(b *testing.B) {
	const lines = 100_000
	log := benchLog(b, lines)
	setup := func(ctx context.Context, n *mesh.Node) error {
		_, err := n.Subscribe(ctx, "jobs", func(context.Context, *mesh.Message) error { return nil })
		return err
	}
	var delivered uint64
	replay := []testing.InternalTest{{Name: "BenchmarkReplay", F: func(t *testing.T) {
		res := meshtest.Replay(t, log, mesh.Config{Service: "work"}, setup, meshtest.Settle(time.Second))
		delivered = res.Stats.Delivered
	}}}
	all := func(string, string) (bool, error) { return true, nil }
	runtime.GC() // the log's making is not the replay's
	cpu0 := cpuTime()
	for b.Loop() {
		if !testing.RunTests(all, replay) {
			b.Fatal("the replay failed")
		}
	}
	cpu := cpuTime() - cpu0
	if want := uint64(lines - lines/10000); delivered != want {
		b.Fatalf("the handler ran %d times, want %d", delivered, want)
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/lines, "cpu-ns/line")
}

package e2e_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/internal/proctest"
	"github.com/meshbot/meshbot/mesh"
)

var (
	rssRun    = flag.Bool("rss", false, "run TestRSS: the memory of meshbot processes under load (minutes; not in the normal suite)")
	rssEvents = flag.Int("rss.events", 1_000_000, "TestRSS: events published to each topic")
	rssIdle   = flag.Duration("rss.idle", 150*time.Second, "TestRSS: how long the processes idle after the last event (past the anycast retention, 2 min by default)")
)

// TestRSS is the memory tool of docs/performance.md ("Per-event cost and
// memory"): real `meshbot serve` processes on InspIRCd — a multicast
// subscriber, three anycast workers of one group — and a `meshbot history`
// recorder, while a node in the test publishes -rss.events 200-byte events
// to each topic. It logs the VmRSS of each process at the start, after
// 50,000 events, after all of them, and after -rss.idle without traffic,
// and of it the anonymous memory (RssAnon: the rest is the binary's pages,
// shared by every process running it).
// It asserts that every event arrived, nothing about memory: the figures
// are for the document. Run it with
//
//	go test -run TestRSS -rss -timeout 60m -v ./internal/e2e/
func TestRSS(t *testing.T) {
	if !*rssRun {
		t.Skip("memory figures: run with -rss")
	}
	srv := ircdtest.Start(t)
	const mcTopic, jobsTopic = "rss.events", "rss.jobs"
	type proc struct {
		name    string
		p       *proctest.Proc
		metrics string // its /metrics, "" for the recorder
	}
	var procs []proc
	start := func(name string, args ...string) {
		addr := ""
		if name != "recorder" {
			addr = freeAddr(t)
			args = append(args, "--metrics-addr", addr)
		}
		p := proctest.Start(t, args...)
		p.WaitReady(startupBudget)
		procs = append(procs, proc{name, p, addr})
	}
	start("recorder", "history", "--server", srv.Addr(), "--namespace", "e2e", "--instance", "r1",
		"--store", filepath.Join(t.TempDir(), "history.db"), "--rescan", "200ms", "--skip-heartbeats")
	start("multicast", "serve", "--server", srv.Addr(), "--namespace", "e2e", "--service", "mc", "--instance", "1", "--subscribe", mcTopic)
	for i := range 3 {
		start(fmt.Sprintf("anycast-%d", i+1), "serve", "--server", srv.Addr(), "--namespace", "e2e", "--service", "workers",
			"--instance", strconv.Itoa(i+1), "--subscribe", jobsTopic, "--anycast")
	}
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service = srv.Addr(), "e2e", "rsspub"
	pub := meshtest.Connect(t, cfg)
	time.Sleep(3 * time.Second) // the group forms (a few heartbeats)

	report := func(when string) {
		var b strings.Builder
		for _, p := range procs {
			rss, anon := vmRSS(t, p.p.PID())
			fmt.Fprintf(&b, " %s %.1f MB (anon %.1f)", p.name, float64(rss)/(1<<20), float64(anon)/(1<<20))
		}
		t.Logf("RSS %s:%s", when, b.String())
	}
	delivered := func(prefix string) uint64 {
		var sum uint64
		for _, p := range procs {
			if strings.HasPrefix(p.name, prefix) {
				sum += scrapeCounter(t, p.metrics, "meshbot_delivered_total")
			}
		}
		return sum
	}
	waitDelivered := func(n uint64) {
		deadline := time.Now().Add(10 * time.Minute)
		for delivered("multicast") < n || delivered("anycast") < n {
			if time.Now().After(deadline) {
				t.Fatalf("after 10 min: multicast %d, anycast %d events delivered, want %d", delivered("multicast"), delivered("anycast"), n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	report("at start")
	ctx := context.Background()
	payload := make([]byte, 200)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	sent := 0
	began := time.Now()
	publish := func(upTo int) {
		const chunk = 1000
		for sent < upTo {
			var fs []*mesh.PubFuture
			for range min(chunk, upTo-sent) {
				for _, topic := range []string{mcTopic, jobsTopic} {
					f, err := pub.PublishAsync(ctx, topic, payload)
					if err != nil {
						t.Fatal(err)
					}
					fs = append(fs, f)
				}
				sent++
			}
			for _, f := range fs {
				if _, err := f.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, mark := range []int{50_000, *rssEvents} {
		if mark > *rssEvents || mark <= sent {
			continue
		}
		publish(mark)
		waitDelivered(uint64(mark))
		report(fmt.Sprintf("after %d events (%.0f s)", mark, time.Since(began).Seconds()))
	}
	time.Sleep(*rssIdle)
	report(fmt.Sprintf("after %s idle", *rssIdle))
}

// vmRSS reads the resident set of process pid and its anonymous part, in
// bytes.
func vmRSS(t *testing.T, pid int) (rss, anon int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, field := range []struct {
			name string
			v    *int64
		}{{"VmRSS:", &rss}, {"RssAnon:", &anon}} {
			if rest, ok := strings.CutPrefix(sc.Text(), field.name); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				*field.v = kb << 10
			}
		}
	}
	if rss == 0 {
		t.Fatalf("no VmRSS for process %d", pid)
	}
	return rss, anon
}

// scrapeCounter sums the samples of counter name at a Prometheus endpoint.
func scrapeCounter(t *testing.T, addr, name string) uint64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += uint64(v)
	}
	return sum
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

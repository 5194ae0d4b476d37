package meshtest_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	nodetest "github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest"
	"github.com/meshbot/meshbot/meshtest/recording"
)

var recordShopLog = flag.Bool("record-shop", false, "write testdata/shop.log (the replay tests' log) from a live run of the shop service")

// shopLog is the committed log of a live run of the shop service
// (TestReplayDoesWhatTheLiveServiceDid -record-shop writes it).
const shopLog = "testdata/shop.log"

// liveRun is a run of the shop service against a real server, recorded by
// the service's own node (Config.RawLog), with what it did as others saw
// it.
type liveRun struct {
	log *recording.Log
	// outputs: "publish <topic> <payload>", "dead-letter <topic> <event
	// short id> <attempts>" as a watcher saw them; "answer <payload>" and
	// "answer error <code>: <message>" as the client got them.
	outputs []string
	// jobs are the short ids of the jobs published, by payload.
	jobs map[string]string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func liveConfig(srv *ircd.Server, service, instance string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server = srv.Addr()
	cfg.Namespace = "t"
	cfg.Service, cfg.Instance = service, instance
	cfg.KeepAlive = 500 * time.Millisecond
	cfg.KeepAliveTimeout = 2 * time.Second
	return cfg
}

// recordShop runs the shop service live while a client publishes orders
// and jobs and asks for quotes, and returns the service's recorded log and
// what it did.
func recordShop(t *testing.T) *liveRun {
	t.Helper()
	srv := ircdtest.Start(t)
	raw := &lockedBuffer{}
	shopCfg := liveConfig(srv, shopService, "live")
	shopCfg.RawLog = raw
	nodes := nodetest.ConnectAll(t, shopCfg, liveConfig(srv, "client", "1"), liveConfig(srv, "watch", "1"))
	shop, client, watch := nodes[0], nodes[1], nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	run := &liveRun{jobs: map[string]string{}}
	var mu sync.Mutex
	seen := make(chan struct{}, 64)
	for _, topic := range []string{"orders.seen", "jobs.done", "jobs._dead"} {
		if _, err := watch.Observe(ctx, topic, func(o mesh.Observation) {
			if o.Envelope == nil || o.Envelope.Kind != envelope.KindEvent {
				return
			}
			out := fmt.Sprintf("publish %s %s", topic, o.Envelope.Payload)
			if topic == "jobs._dead" {
				d, err := claims.DecodeDeadLetter(o.Envelope.Payload)
				if err != nil {
					t.Errorf("dead letter: %v", err)
					return
				}
				out = fmt.Sprintf("dead-letter %s %s %d", d.Topic, d.Event.ID.Short(), d.Attempts)
			}
			mu.Lock()
			run.outputs = append(run.outputs, out)
			mu.Unlock()
			seen <- struct{}{}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := shopSetup(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if err := client.WaitFor(ctx, shopService); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the anycast member is ready to claim

	for i, p := range []string{`{"order":1}`, `{"order":2}`, `not json`, `{"order":3}`} {
		if _, err := client.Publish(ctx, "orders", []byte(p)); err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
	}
	for _, p := range []string{"alice/job-1", "bob/flaky-2", "carol/fail-3", "alice/job-4"} {
		ack, err := client.Publish(ctx, "jobs", []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		run.jobs[p] = ack.ID.Short()
	}
	for _, q := range []string{`{"item":"tea","qty":2}`, `{"item":"unicorn","qty":1}`, `{"item":"scone","qty":3}`} {
		out, err := client.Request(ctx, shopService, "quote", []byte(q))
		var re *mesh.RemoteError
		answer := "answer " + string(out)
		switch {
		case errors.As(err, &re):
			answer = fmt.Sprintf("answer error %d: %s", re.Code, re.Message)
		case err != nil:
			t.Fatalf("quote %s: %v", q, err)
		}
		mu.Lock()
		run.outputs = append(run.outputs, answer)
		mu.Unlock()
	}
	// orders.seen ×3, jobs.done ×3, one dead letter
	deadline := time.After(30 * time.Second)
	for n := 0; n < 7; n++ {
		select {
		case <-seen:
		case <-deadline:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the live service did not finish: %v", run.outputs)
		}
	}
	time.Sleep(300 * time.Millisecond) // its last acks
	if err := shop.Close(ctx); err != nil {
		t.Fatal(err)
	}
	log, err := recording.Parse(raw.String())
	if err != nil {
		t.Fatal(err)
	}
	log.Name = "shop.log"
	mu.Lock()
	defer mu.Unlock()
	run.log = log
	slices.Sort(run.outputs)
	return run
}

// outputsOf is what a replay did, in the terms of liveRun.outputs.
func outputsOf(res *meshtest.Result) []string {
	var out []string
	for _, e := range res.Entries {
		switch e.Kind {
		case meshtest.KindPublish:
			out = append(out, fmt.Sprintf("publish %s %s", e.Topic, e.Payload))
		case meshtest.KindDeadLetter:
			out = append(out, fmt.Sprintf("dead-letter %s %s %d", e.Topic, e.Ref, e.Attempts))
		case meshtest.KindRespond:
			if e.Code != 0 {
				out = append(out, fmt.Sprintf("answer error %d: %s", e.Code, e.Err))
			} else {
				out = append(out, "answer "+string(e.Payload))
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestReplayDoesWhatTheLiveServiceDid records the shop service against a
// real server (its own node's raw log) and replays the log into a new
// instance of the same service: it publishes the same events, answers the
// recorded requests with the same answers, fails the same handlers and
// dead-letters the same job, and two replays of the log give the same
// output, byte for byte.
func TestReplayDoesWhatTheLiveServiceDid(t *testing.T) {
	t.Parallel()
	live := recordShop(t)
	if *recordShopLog {
		if err := live.log.WriteFile(shopLog); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", shopLog)
	}
	res := meshtest.Replay(t, live.log, mesh.Config{Service: shopService}, shopSetup)
	got := outputsOf(res)
	if !slices.Equal(got, live.outputs) {
		t.Errorf("the replay did\n  %s\nthe live service did\n  %s\nreplay output:\n%s",
			strings.Join(got, "\n  "), strings.Join(live.outputs, "\n  "), res.Text())
	}
	errs := map[string]int{}
	for _, e := range res.Entries {
		if e.Kind == meshtest.KindHandlerError {
			errs[e.Topic]++
		}
	}
	// orders: the payload that is not JSON; jobs: fail-3 three times,
	// flaky-2 once.
	if errs["orders"] != 1 || errs["jobs"] != shopAttempts+1 {
		t.Errorf("handler errors by topic %v, want orders 1 and jobs %d\n%s", errs, shopAttempts+1, res.Text())
	}
	if res.Stats.RequestsServed != 3 || res.Stats.Rejected != 0 {
		t.Errorf("served %d requests (want 3), rejected %d lines (want 0)\n%s", res.Stats.RequestsServed, res.Stats.Rejected, res.Text())
	}
	again := meshtest.Replay(t, live.log, mesh.Config{Service: shopService}, shopSetup)
	if a, b := res.Text(), again.Text(); a != b {
		t.Errorf("two replays of one log differ:\n%s", meshtest.Diff(a, b))
	}
}

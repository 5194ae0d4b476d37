package mesh_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

var recordGolden = flag.Bool("record-golden", false, "record testdata/claims/anycast.log from a live anycast run (claims/golden_test.go replays it)")

// TestRecordAnycastGolden records the raw lines of a real anycast run — the
// topic's channel and the heartbeat channel, tags included — for the golden
// test of the claims core. It runs the scenario every time (and checks it
// completed); it writes the log only with -record-golden.
//
// Scenario: three workers; 40 events; events named "nack-*" fail their
// first attempt (a NACK, retried after 50 ms); then one worker closes while
// it holds claims (it releases them) and 20 more events follow.
func TestRecordAnycastGolden(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	path := filepath.Join(t.TempDir(), "anycast.log")
	if *recordGolden {
		path = filepath.Join("..", "testdata", "claims", "anycast.log")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := bufio.NewWriter(f)
	rcfg := testConfig(srv, "recorder")
	rcfg.RawLog = buf
	rec := connect(t, rcfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, topic := range []string{"golden.jobs", "_hb"} {
		if _, err := rec.Observe(ctx, topic, func(mesh.Observation) {}); err != nil {
			t.Fatal(err)
		}
	}
	h := newHandled()
	handler := func(worker string) mesh.Handler {
		return func(hctx context.Context, m *mesh.Message) error {
			p := string(m.Payload)
			if strings.HasPrefix(p, "nack-") && m.Claim.Attempt == 1 {
				return mesh.RetryAfter(50*time.Millisecond, errors.New("first attempt fails"))
			}
			if strings.HasPrefix(p, "slow-") {
				select {
				case <-hctx.Done():
					return hctx.Err()
				case <-time.After(2 * time.Second):
				}
			}
			h.record(worker, m)
			return nil
		}
	}
	nodes := connectAll(t, testConfig(srv, "jobs"), testConfig(srv, "workers"), testConfig(srv, "workers"), testConfig(srv, "workers"))
	pub, workers := nodes[0], nodes[1:]
	var subs []*mesh.AnycastSubscription
	for i, n := range workers {
		s, err := n.SubscribeAnycast(ctx, "golden.jobs", handler(fmt.Sprintf("w%d", i)), mesh.Concurrency(4))
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	waitGroupFormed(t, workers, "golden.jobs", "workers")
	time.Sleep(1500 * time.Millisecond) // every worker is ready to claim
	publish := func(p string) {
		if _, err := pub.PublishAsync(ctx, "golden.jobs", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		switch {
		case i%8 == 3:
			publish(fmt.Sprintf("nack-%02d", i))
		case i%8 == 5:
			publish(fmt.Sprintf("slow-%02d", i))
		default:
			publish(fmt.Sprintf("job-%02d", i))
		}
	}
	h.waitFor(t, 35, 30*time.Second) // all but the slow ones
	closeCtx, closeCancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_ = workers[0].Close(closeCtx) // its slow handlers are cut short: released
	closeCancel()
	for i := 40; i < 60; i++ {
		publish(fmt.Sprintf("job-%02d", i))
	}
	h.waitFor(t, 60, 30*time.Second)
	waitCompleted(t, subs[1:], 60, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	rec.Close(ctx) // no more writes to the log
	if err := buf.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if *recordGolden {
		t.Logf("recorded %s", path)
	}
}

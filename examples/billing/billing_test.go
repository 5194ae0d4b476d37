package billing_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/examples/billing"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// testdata/orders.log is ten seconds of the demo mesh (meshbot demo),
// recorded with
//
//	meshbot record --raw examples/billing/testdata/orders.log orders.created --for 10s
//
// It holds the orders the demo's orders service published, and the
// demo's own billing instances at work: the replay leaves those out and
// puts this package's billing in their place.

// TestReplay replays the recorded orders into the billing service and
// compares what it did with testdata/orders.golden. After a deliberate
// change of billing's behaviour, `go test ./examples/billing -update`
// rewrites the golden file; the diff of the golden file is what a
// reviewer reads.
func TestReplay(t *testing.T) {
	log := meshtest.Load(t, "testdata/orders.log")
	res := meshtest.Replay(t, log, mesh.Config{Service: "billing"}, billing.Register)
	meshtest.Golden(t, "testdata/orders.golden", res.Text())
}

// orderLines matches the lines of the recorded orders.
func orderLines(t *testing.T, log *recording.Log) []recording.Line {
	t.Helper()
	lines := log.Find(recording.All(recording.Topic(billing.OrdersTopic), recording.Sender("orders"), recording.Kind(envelope.KindEvent)))
	if len(lines) < 3 {
		t.Fatalf("%d order lines in the log", len(lines))
	}
	return lines
}

// TestReplayMissedOrder: an order billing never receives is never
// charged; the others are.
func TestReplayMissedOrder(t *testing.T) {
	log := meshtest.Load(t, "testdata/orders.log")
	orders := orderLines(t, log)
	cfg := mesh.Config{Service: "billing"}
	all := meshtest.Replay(t, log, cfg, billing.Register)
	missed := meshtest.Replay(t, log.Drop(recording.Numbers(orders[1].N)), cfg, billing.Register)
	charged := func(r *meshtest.Result) int { return r.Count(meshtest.KindPublish) + r.Count(meshtest.KindDeadLetter) }
	if charged(missed) != charged(all)-1 {
		t.Errorf("%d orders charged or given up without the second one, %d with it", charged(missed), charged(all))
	}
}

// TestReplayOrderTwice: an order received twice — the publisher sent it
// again after a reconnect, soon after the first time — is charged once.
func TestReplayOrderTwice(t *testing.T) {
	log := meshtest.Load(t, "testdata/orders.log")
	orders := orderLines(t, log)
	cfg := mesh.Config{Service: "billing"}
	once := meshtest.Replay(t, log, cfg, billing.Register)
	twice := meshtest.Replay(t, log.Duplicate(recording.Numbers(orders[1].N), 3*time.Second), cfg, billing.Register)
	if a, b := once.Count(meshtest.KindPublish), twice.Count(meshtest.KindPublish); a != b {
		t.Errorf("%d charges with the order once, %d with it twice", a, b)
	}
	if !strings.Contains(twice.Text(), "1 rejected (duplicate 1)") {
		t.Errorf("the copy is rejected as a duplicate:\n%s", twice.Text())
	}
}

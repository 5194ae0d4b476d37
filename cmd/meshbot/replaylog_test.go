package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/examples/billing"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	nodetest "github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest/recording"
)

func serviceConfig(srv *ircd.Server, namespace, service string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service = srv.Addr(), namespace, service
	return cfg
}

// goldenCount counts the lines of the billing example's golden file that
// start with what (after the time): what billing does with the demo log.
func goldenCount(t *testing.T, what string) int {
	t.Helper()
	b, err := os.ReadFile("../../examples/billing/testdata/orders.golden")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if _, rest, ok := strings.Cut(l, " "); ok && strings.HasPrefix(rest, what) {
			n++
		}
	}
	return n
}

// TestReplayLog publishes the demo log's orders onto a real server where
// the billing example runs, ten times faster than recorded: every order
// is confirmed and completed by the billing group, which charges and
// dead-letters the orders its replay test says it does; the run takes at
// least the recorded time over the speed.
func TestReplayLog(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := nodetest.Connect(t, serviceConfig(srv, "mesh", "billing"))
	if err := billing.Register(ctx, b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the member is ready to claim

	log, err := recording.Load(demoLog)
	if err != nil {
		t.Fatal(err)
	}
	orders := log.Find(recording.All(recording.Topic("orders.created"), recording.Sender("orders"), recording.Kind(envelope.KindEvent)))
	span := orders[len(orders)-1].Time.Sub(orders[0].Time)
	const speed = 10
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr()}
	start := time.Now()
	r := runCLI(t, environ, "", "replay-log", demoLog, "orders.created", "--sender", "orders",
		"--speed", fmt.Sprint(speed), "--watch", "billing.charged", "--wait", "4s")
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("replay-log: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("orders.created           %d events: %d confirmed, 0 failed; confirm p50", len(orders), len(orders)),
		fmt.Sprintf("%d of %d events completed by group billing, %d given up (dead letters)",
			goldenCount(t, "publish billing.charged"), len(orders), goldenCount(t, "dead-letter")),
		fmt.Sprintf("orders.created._dead     %d events", goldenCount(t, "dead-letter")),
		fmt.Sprintf("billing.charged          %d events from billing", goldenCount(t, "publish billing.charged")),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in the summary:\n%s", want, r.stdout)
		}
	}
	if min := span / speed; took < min {
		t.Errorf("replayed %s of orders at %d× in %s, less than %s", span, speed, took, min)
	}

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"replay-log", demoLog, "--max", "--speed", "2"}, "--max and --speed exclude each other"},
		{[]string{"replay-log", demoLog, "--speed", "0"}, "--speed must be positive"},
		{[]string{"replay-log", demoLog, "--sender", "nobody"}, "nothing to send"},
		{[]string{"replay-log", demoLog, "--since", "soon"}, `--since "soon"`},
	} {
		if r := runCLI(t, environ, "", tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.err) {
			t.Errorf("%v: exit %d, want an error with %q:\n%s", tc.args[1:], r.code, tc.err, r.stderr)
		}
	}
}

// TestReplayLogRequests sends the requests a service's own recording
// received to a live instance of that service, as fast as flow control
// allows, and counts its answers by outcome.
func TestReplayLogRequests(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	shop := nodetest.Connect(t, serviceConfig(srv, "t", "shop"))
	if err := shop.Handle("quote", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		var o struct{ Item string }
		_ = json.Unmarshal(r.Payload, &o)
		if o.Item == "unicorn" {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "no unicorns")
		}
		return []byte("ok"), nil
	}); err != nil {
		t.Fatal(err)
	}
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr()}
	r := runCLI(t, environ, "", "replay-log", "../../meshtest/testdata/shop.log", "--requests", "--max", "--wait", "0s")
	if r.code != 0 {
		t.Fatalf("replay-log: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"namespace t", "as fast as flow control allows"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("no %q in:\n%s", want, r.stderr)
		}
	}
	for _, want := range []string{
		"shop.quote               3 requests: 2 answered, 1 errors (400 ×1), 0 timed out, 0 failed; answer p50",
		"orders                   4 events: 4 confirmed",
		"jobs                     4 events: 4 confirmed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in the summary:\n%s", want, r.stdout)
		}
	}
}

package meshtest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// Setup registers a service on a node: its subscriptions, request
// handlers, domains — the function production code calls after
// mesh.Connect. ctx ends when the replay stops the service; goroutines the
// service starts must end with it.
type Setup func(ctx context.Context, n *mesh.Node) error

// DefaultInstance is the instance id of the node under test when the
// config names none: its nick is <service>-replay.
const DefaultInstance = "replay"

// closeTimeout bounds Node.Close at the end of a replay (virtual time).
const closeTimeout = time.Minute

// Replay runs the service that setup registers on a real *mesh.Node, fed
// the recorded lines of log at their recorded times, and returns what the
// service did. It runs inside a testing/synctest bubble: the clock is
// virtual (it starts at the log's first line less Warmup, and moves only
// when every goroutine of the node and the service waits), so a replay of
// minutes of traffic takes milliseconds and never sleeps.
//
// cfg is the service's production config: Service is required;
// Namespace, when empty, is the log's; Instance defaults to
// DefaultInstance; Server, Dial, History and RawLog are replaced (the
// node talks only to the replay server), and SASL is dropped (the replay
// server tags the node's lines with the account Accounts binds its
// service to, as the server that logged it in would). Trust and privacy
// (Signer, Keys, RequireSigned, Accounts, Crypter, ChannelKey) are kept:
// a node that requires signatures rejects recorded lines signed with keys
// it does not trust, as it would live; what it encrypts is shown in clear
// in the Result.
//
// The node connects Warmup before the first line and setup runs; the
// recorded lines start at the log's first line whether or not setup has
// returned — a setup that waits for recorded members (WaitFor) sees them
// beat as the lines come, and subscribes then. The lines reach the
// node in order, each at its time, the lines of one instant together once
// the node is idle (so that what earlier lines caused is done); the node
// runs Settle more, then setup's context ends and the node closes
// (draining its handlers). A setup that fails, or that has not returned a
// minute (virtual) after its context ended, fails the test, as does a node
// whose handlers do not return when it closes.
//
// Replay must not be called inside a synctest bubble, and code run in the
// replay must not use real network I/O (it would never be idle).
func Replay(t *testing.T, log *recording.Log, cfg mesh.Config, setup Setup, opts ...Option) *Result {
	t.Helper()
	o := defaultOptions()
	for _, opt := range opts {
		opt(o)
	}
	if cfg.Service == "" {
		t.Fatal("meshtest: Replay: cfg.Service is required")
	}
	var res *Result
	synctest.Test(t, func(t *testing.T) {
		res = run(t, log, cfg, setup, o)
	})
	return res
}

// run is the replay, inside the bubble.
func run(t *testing.T, log *recording.Log, cfg mesh.Config, setup Setup, o *options) *Result {
	t.Helper()
	if cfg.Namespace == "" {
		cfg.Namespace = log.Namespace()
	}
	if cfg.Instance == "" {
		cfg.Instance = DefaultInstance
	}
	start := log.Start()
	if start.IsZero() {
		start = time.Now().Add(o.warmup) // a log without times: its lines come at once
	}
	if wait := time.Until(start.Add(-o.warmup)); wait > 0 {
		time.Sleep(wait) // virtual: the clock jumps to the log's time
	}

	feed, names := plan(log, cfg.Service, o.keepOwn)
	hb := strings.ToLower(mesh.HeartbeatChannel(cfg.Namespace))
	for _, svc := range o.stubServices {
		names[hb] = append(names[hb], svc+"-stub")
	}
	capt := newCapture(o, cfg.Namespace, start, cfg.Crypter)
	srv := newServer(names, capt, cfg.Accounts)
	cfg.Server = serverName + ":6667"
	cfg.TLS = nil
	cfg.Dial = srv.dial
	cfg.History, cfg.RawLog = nil, nil
	cfg.SASLUser, cfg.SASLPassword = "", ""
	var next slog.Handler
	if cfg.Logger != nil {
		next = cfg.Logger.Handler()
	}
	cfg.Logger = slog.New(&logCapture{c: capt, next: next})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	n, err := mesh.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("meshtest: connecting the node: %v", err)
	}
	defer srv.close()

	// The setup runs while the log plays, as a service's main runs while
	// the mesh goes on: a setup that waits for members (WaitFor) sees
	// them beat once the log's lines come. The lines start at the log's
	// first line whether or not the setup has returned; a setup that
	// fails before then fails the test at once.
	setupDone := make(chan error, 1)
	go func() { setupDone <- setup(ctx, n) }()
	setupRunning := true
	select {
	case err := <-setupDone:
		setupRunning = false
		if err != nil {
			closeNode(t, n)
			t.Fatalf("meshtest: setup: %v", err)
		}
	case <-time.After(time.Until(start)):
	}
	if wait := time.Until(start); wait > 0 {
		time.Sleep(wait)
	}

	delivered := play(feed, srv, capt)
	time.Sleep(o.settle)
	cancel()
	if setupRunning {
		select {
		case err := <-setupDone:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("meshtest: setup: %v", err)
			}
		case <-time.After(closeTimeout):
			t.Fatalf("meshtest: the setup did not return within %s of the end of the replay, its context cancelled (the stacks of the bubble's goroutines follow)", closeTimeout)
		}
	}
	closeNode(t, n)
	stats := n.Stats()
	srv.close()
	synctest.Wait()
	if k, u := stats.RejectedBy["unknown-key"], stats.RejectedBy["unsigned"]; k+u > 0 {
		t.Logf("meshtest: the node rejected %d signed lines with keys it does not know and %d unsigned lines: "+
			"give the config the mesh's Keys, or reseal the log (recording.Log.Reseal, meshbot record --strip-signatures)", k, u)
	}

	capt.mu.Lock()
	defer capt.mu.Unlock()
	return &Result{Log: log.Name, Service: cfg.Service, Lines: log.Len(), Delivered: delivered,
		Entries: append([]Entry(nil), capt.entries...), Stats: stats, payload: o.payload}
}

// closeNode closes the node, draining its handlers within closeTimeout;
// a node that does not close (a handler that ignores its context) fails
// the test, and synctest then reports the goroutines still running.
func closeNode(t *testing.T, n *mesh.Node) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		done <- n.Close(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("meshtest: closing the node: %v", err)
		}
	case <-time.After(2 * closeTimeout):
		t.Fatalf("meshtest: the node did not close within %s: a handler or a goroutine of the service ignores its context (the stacks of the bubble's goroutines follow)", 2*closeTimeout)
	}
}

// Load reads a recorded log for a replay; an error fails the test.
func Load(t testing.TB, path string) *recording.Log {
	t.Helper()
	l, err := recording.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

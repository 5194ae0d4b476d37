package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// handled records which worker handled which payload, with its claim.
type handled struct {
	mu    sync.Mutex
	by    map[string][]string // payload → workers that handled it
	order map[string][]string // worker → payloads in handling order
	claim map[string]*mesh.Claim
	n     int
	cond  chan struct{}
}

func newHandled() *handled {
	return &handled{by: map[string][]string{}, order: map[string][]string{}, claim: map[string]*mesh.Claim{}, cond: make(chan struct{}, 1)}
}

func (h *handled) record(worker string, m *mesh.Message) {
	h.mu.Lock()
	p := string(m.Payload)
	h.by[p] = append(h.by[p], worker)
	h.order[worker] = append(h.order[worker], p)
	h.claim[p] = m.Claim
	h.n++
	h.mu.Unlock()
	select {
	case h.cond <- struct{}{}:
	default:
	}
}

func (h *handled) handler(worker string) mesh.Handler {
	return func(_ context.Context, m *mesh.Message) error {
		if m.Claim == nil {
			return errors.New("anycast delivery without a claim")
		}
		h.record(worker, m)
		return nil
	}
}

// checkOnceLocked: events distinct events, each handled by one worker
// once. h.mu is held.
func (h *handled) checkOnceLocked(t *testing.T, events int) {
	t.Helper()
	if h.n != events || len(h.by) != events {
		t.Errorf("%d handler runs for %d distinct events, want %d", h.n, len(h.by), events)
	}
	for p, ws := range h.by {
		if len(ws) != 1 {
			t.Errorf("%s handled by %v", p, ws)
		}
	}
}

func (h *handled) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		h.mu.Lock()
		got := len(h.by)
		h.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-h.cond:
		case <-deadline:
			t.Fatalf("%d distinct events handled, want %d", got, n)
		}
	}
}

// anycastGroup connects a publisher and k workers of service "workers",
// configured by config, subscribes the workers with opts and waits until
// they know each other.
func anycastGroup(t *testing.T, config func(service string) mesh.Config, k int, topic string, h *handled, opts ...mesh.SubOption) (*mesh.Node, []*mesh.Node, []*mesh.AnycastSubscription) {
	t.Helper()
	cfgs := []mesh.Config{config("jobs")}
	for range k {
		cfgs = append(cfgs, config("workers"))
	}
	nodes := connectAll(t, cfgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var subs []*mesh.AnycastSubscription
	for i, n := range nodes[1:] {
		s, err := n.SubscribeAnycast(ctx, topic, h.handler(fmt.Sprintf("w%d", i)), opts...)
		if err != nil {
			t.Fatal(err)
		}
		if s.Group() != "workers" {
			t.Fatalf("default group %q, want the service name", s.Group())
		}
		subs = append(subs, s)
	}
	waitGroupFormed(t, nodes[1:], topic, "workers")
	return nodes[0], nodes[1:], subs
}

// waitGroupFormed waits until every node sees all of them announce the
// group for topic.
func waitGroupFormed(t testing.TB, nodes []*mesh.Node, topic, group string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			count := 0
			for _, m := range n.Members("") {
				for _, s := range m.Beat.Subs {
					if s.Topic == topic && s.Group == group {
						count++
					}
				}
			}
			ok = ok && count == len(nodes)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group did not form in 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCompleted waits until every subscription's core has seen n events
// completed (acked or dead-lettered).
func waitCompleted(t *testing.T, subs []*mesh.AnycastSubscription, n uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for _, s := range subs {
			st := s.ClaimStats()
			done = done && st.Acked+st.Dead >= n
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			for i, s := range subs {
				t.Logf("worker %d: %+v", i, s.ClaimStats())
			}
			t.Fatalf("not every member saw %d events completed in %s", n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAnycastExactlyOnce, in each trust mode: 1,000 events (unsigned;
// modeEvents in the others) published on a topic with an anycast group of
// 3 workers are each handled once, by one worker, at epoch 1, spread over
// the three; a multicast subscriber of another service on the same topic
// gets every one.
func TestAnycastExactlyOnce(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		testAnycastExactlyOnce(t, modeConfig(srv, m), modeEvents(m, 1000))
	})
}

// modeEvents is how many events (or updates) a load test sends in mode m: n
// unsigned, where the protocol's load is proven, and a quarter of it in
// the modes that sign (and encrypt), which prove that signatures and
// encryption change none of it. Checking an ed25519 signature costs
// milliseconds under the race detector on a small machine: a full load
// there proves nothing more and starves the lease and heartbeat timers of
// the very protocol under test.
func modeEvents(m *meshtest.Mode, n int) int {
	if m.Signed() {
		return n / 4
	}
	return n
}

// modeConfig returns test configs in trust mode m, in a namespace of
// their own.
func modeConfig(srv *ircd.Server, m *meshtest.Mode) func(service string) mesh.Config {
	return func(service string) mesh.Config {
		cfg := testConfig(srv, service)
		cfg.Namespace = "t" + m.Name[:3]
		return m.Config(cfg)
	}
}

// patient returns config's configs with a member suspected after 5
// heartbeat intervals without a beat and dead after 10: for tests in
// which no member fails, so that a machine busy for a few seconds (the
// race detector, other packages' tests) makes no takeover they would
// count as one.
func patient(config func(string) mesh.Config) func(string) mesh.Config {
	return func(service string) mesh.Config {
		cfg := config(service)
		cfg.SuspectAfter, cfg.DeadAfter = 5, 10
		return cfg
	}
}

// plainConfig returns unsigned test configs.
func plainConfig(srv *ircd.Server) func(service string) mesh.Config {
	return func(service string) mesh.Config { return testConfig(srv, service) }
}

func testAnycastExactlyOnce(t *testing.T, config func(string) mesh.Config, events int) {
	config = patient(config)
	h := newHandled()
	pub, workers, subs := anycastGroup(t, config, 3, "jobs.todo", h, mesh.Concurrency(4))
	// A multicast subscriber of another service on the same topic gets
	// every event: the publisher does not know or care.
	audit := connect(t, config("audit"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := newCollector()
	if _, err := audit.Subscribe(ctx, "jobs.todo", all.handle); err != nil {
		t.Fatal(err)
	}
	var futures []*mesh.PubFuture
	for i := range events {
		f, err := pub.PublishAsync(ctx, "jobs.todo", []byte(fmt.Sprintf("job-%04d", i)))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor(t, events, 30*time.Second)
	waitCompleted(t, subs, uint64(events), 30*time.Second)
	all.waitFor(t, events, 30*time.Second)
	time.Sleep(200 * time.Millisecond) // a duplicate would show by now
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkOnceLocked(t, events)
	for p := range h.by {
		if c := h.claim[p]; c.Group != "workers" || c.Epoch != 1 || c.Attempt != 1 || c.Token>>32 != 1 {
			t.Errorf("%s: claim %+v, want group workers, epoch 1, attempt 1", p, c)
		}
	}
	for i := range workers {
		w := fmt.Sprintf("w%d", i)
		if len(h.order[w]) == 0 {
			t.Errorf("worker %s handled nothing: the load is not spread (%d/%d/%d)", w, len(h.order["w0"]), len(h.order["w1"]), len(h.order["w2"]))
		}
	}
	if all.len() != events {
		t.Errorf("multicast subscriber got %d, want %d", all.len(), events)
	}
	for i, s := range subs {
		st := s.ClaimStats()
		if st.Acked != uint64(events) || st.Dead != 0 || st.Takeovers != 0 {
			t.Errorf("worker %d: %+v", i, st)
		}
	}
	t.Logf("handled per worker: %d/%d/%d", len(h.order["w0"]), len(h.order["w1"]), len(h.order["w2"]))
}

func TestAnycastByKeyKeepsOrderPerKey(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	h := newHandled()
	key := func(m *mesh.Message) string { k, _, _ := strings.Cut(string(m.Payload), "/"); return k }
	pub, _, subs := anycastGroup(t, plainConfig(srv), 3, "jobs.keyed", h, mesh.ByKey(key))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const keys, perKey = 12, 25
	for i := range perKey {
		for k := range keys {
			if _, err := pub.PublishAsync(ctx, "jobs.keyed", []byte(fmt.Sprintf("k%02d/%03d", k, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.waitFor(t, keys*perKey, 30*time.Second)
	waitCompleted(t, subs, keys*perKey, 30*time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	owner := map[string]string{}
	for w, ps := range h.order {
		next := map[string]int{}
		for _, p := range ps {
			k, seq, _ := strings.Cut(p, "/")
			if o, ok := owner[k]; ok && o != w {
				t.Errorf("key %s handled by %s and %s", k, o, w)
			}
			owner[k] = w
			if want := fmt.Sprintf("%03d", next[k]); seq != want {
				t.Errorf("%s handled %s/%s, want %s/%s next", w, k, seq, k, want)
			}
			next[k]++
		}
	}
	if len(owner) != keys {
		t.Errorf("%d keys handled, want %d", len(owner), keys)
	}
	used := map[string]bool{}
	for _, w := range owner {
		used[w] = true
	}
	if len(used) < 2 {
		t.Errorf("all %d keys went to one worker", keys)
	}
}

func TestAnycastNackRetryAndDeadLetter(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	h := newHandled()
	var mu sync.Mutex
	attempts := map[string][]uint32{}
	fail := func(worker string) mesh.Handler {
		return func(ctx context.Context, m *mesh.Message) error {
			mu.Lock()
			attempts[string(m.Payload)] = append(attempts[string(m.Payload)], m.Claim.Attempt)
			mu.Unlock()
			switch string(m.Payload) {
			case "poison":
				panic("cannot digest this")
			case "flaky":
				if m.Claim.Attempt < 3 {
					return mesh.RetryAfter(10*time.Millisecond, errors.New("not yet"))
				}
			}
			h.record(worker, m)
			return nil
		}
	}
	nodes := connectAll(t, testConfig(srv, "jobs"), testConfig(srv, "workers"), testConfig(srv, "workers"), testConfig(srv, "ops"))
	pub, ops := nodes[0], nodes[3]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var subs []*mesh.AnycastSubscription
	for i, n := range nodes[1:3] {
		s, err := n.SubscribeAnycast(ctx, "jobs.risky", fail(fmt.Sprintf("w%d", i)), mesh.MaxAttempts(3), mesh.RetryDelay(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	dead := newCollector()
	if _, err := ops.Subscribe(ctx, claims.DeadTopic("jobs.risky"), dead.handle); err != nil {
		t.Fatal(err)
	}
	waitGroupFormed(t, nodes[1:3], "jobs.risky", "workers")
	for _, p := range []string{"fine", "flaky", "poison"} {
		if _, err := pub.Publish(ctx, "jobs.risky", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	dead.waitFor(t, 1, 30*time.Second)
	h.waitFor(t, 2, 30*time.Second)
	waitCompleted(t, subs, 3, 30*time.Second)
	d, err := claims.DecodeDeadLetter(dead.got[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Event.Payload) != "poison" || d.Topic != "jobs.risky" || d.Group != "workers" || d.Attempts != 3 || len(d.Reasons) != 3 {
		t.Fatalf("dead letter %+v (event payload %q)", d, d.Event.Payload)
	}
	if !strings.Contains(d.Reasons[0], "cannot digest this") {
		t.Errorf("reasons %q do not say why", d.Reasons)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(attempts["poison"]); got != "[1 2 3]" {
		t.Errorf("poison attempts %s, want [1 2 3]", got)
	}
	if got := fmt.Sprint(attempts["flaky"]); got != "[1 2 3]" {
		t.Errorf("flaky attempts %s, want [1 2 3]", got)
	}
	if got := fmt.Sprint(attempts["fine"]); got != "[1]" {
		t.Errorf("fine attempts %s, want [1]", got)
	}
	for i, s := range subs {
		if st := s.ClaimStats(); st.Acked != 2 || st.Dead != 1 {
			t.Errorf("worker %d: %+v", i, st)
		}
	}
}

// The owner of an event closes while its handler hangs: Close cancels the
// handler and gives the claim back, and another member takes the event
// over at once with a higher epoch and fencing token; a release is not a
// failed attempt. (A killed owner is taken over on the server's QUIT:
// internal/e2e tests that with real processes.)
func TestAnycastHandoverOnClose(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) { testAnycastHandoverOnClose(t, modeConfig(srv, m)) })
}

func testAnycastHandoverOnClose(t *testing.T, config func(string) mesh.Config) {
	nodes := connectAll(t, config("jobs"), config("workers"), config("workers"))
	pub := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type run struct {
		worker int
		claim  mesh.Claim
		at     time.Time
	}
	runs := make(chan run, 10)
	cancelled := make(chan struct{}, 1)
	for i, n := range nodes[1:] {
		_, err := n.SubscribeAnycast(ctx, "jobs.slow", func(hctx context.Context, m *mesh.Message) error {
			runs <- run{i, *m.Claim, time.Now()}
			if m.Claim.Epoch == 1 {
				<-hctx.Done() // hangs until the node goes away
				cancelled <- struct{}{}
				return hctx.Err()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitGroupFormed(t, nodes[1:], "jobs.slow", "workers")
	if _, err := pub.Publish(ctx, "jobs.slow", []byte("x")); err != nil {
		t.Fatal(err)
	}
	first := <-runs
	owner := nodes[1+first.worker]
	killed := time.Now()
	closeCtx, closeCancel := context.WithTimeout(ctx, 10*time.Millisecond)
	_ = owner.Close(closeCtx) // the handler hangs: Close cancels it and quits
	closeCancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the dead owner's handler was not cancelled")
	}
	var second run
	select {
	case second = <-runs:
	case <-time.After(10 * time.Second):
		t.Fatal("no takeover within 10 s")
	}
	if second.worker == first.worker || second.claim.Epoch != 2 || second.claim.Attempt != 1 || second.claim.Token <= first.claim.Token {
		t.Fatalf("takeover %+v after %+v", second, first)
	}
	t.Logf("handover %s after Close began", second.at.Sub(killed).Round(time.Millisecond))
}

// TestAnycastAcrossLinkedServers: a group split over two linked servers,
// which may order lines from different senders differently, still
// completes each event exactly once.
func TestAnycastAcrossLinkedServers(t *testing.T) {
	t.Parallel()
	a, b := ircdtest.StartLinked(t)
	nodes := connectAll(t, testConfig(a, "jobs"), testConfig(a, "workers"), testConfig(b, "workers"), testConfig(b, "workers"))
	pub, workers := nodes[0], nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := newHandled()
	var subs []*mesh.AnycastSubscription
	for i, n := range workers {
		s, err := n.SubscribeAnycast(ctx, "jobs.linked", h.handler(fmt.Sprintf("w%d", i)), mesh.Concurrency(2))
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	waitGroupFormed(t, workers, "jobs.linked", "workers")
	waitPresent(t, pub, "workers", 3)
	time.Sleep(1500 * time.Millisecond)
	const events = 600
	for i := range events {
		if _, err := pub.PublishAsync(ctx, "jobs.linked", []byte(fmt.Sprintf("job-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor(t, events, 30*time.Second)
	waitCompleted(t, subs, events, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkOnceLocked(t, events)
	t.Logf("handled per worker: %d (server a) / %d / %d (server b)", len(h.order["w0"]), len(h.order["w1"]), len(h.order["w2"]))
}

// TestAnycastCommittedOffset, in each trust mode: the members of a group
// agree on a committed offset (HistoryClaim/Ack), it reaches the last
// completed event, and members drop completed events behind it from
// memory.
func TestAnycastCommittedOffset(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		testAnycastCommittedOffset(t, modeConfig(srv, m), modeEvents(m, 300))
	})
}

func testAnycastCommittedOffset(t *testing.T, config func(string) mesh.Config, events int) {
	config = patient(config)
	cfgs := []mesh.Config{config("jobs")}
	for range 3 {
		cfg := config("workers")
		cfg.CommitInterval = 200 * time.Millisecond
		cfgs = append(cfgs, cfg)
	}
	nodes := connectAll(t, cfgs...)
	pub, workers := nodes[0], nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := newHandled()
	var subs []*mesh.AnycastSubscription
	for i, n := range workers {
		s, err := n.SubscribeAnycast(ctx, "jobs.committed", h.handler(fmt.Sprintf("w%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	waitGroupFormed(t, workers, "jobs.committed", "workers")
	time.Sleep(1500 * time.Millisecond)
	var last mesh.PubAck
	for i := range events {
		f, err := pub.PublishAsync(ctx, "jobs.committed", []byte(fmt.Sprintf("job-%03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if i == events-1 {
			if last, err = f.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitCompleted(t, subs, uint64(events), 30*time.Second)
	// Every worker ends with the same committed offset: the last event's
	// line (its msgid is in the publish confirm).
	var lastTime time.Time
	var lastMsgID string
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ts []time.Time
		var ids []string
		for _, s := range subs {
			c := s.Committed()
			ts, ids = append(ts, c.At()), append(ids, c.MsgID)
		}
		agree := !ts[0].IsZero() && ts[0].Equal(ts[1]) && ts[0].Equal(ts[2]) && ids[0] == ids[1] && ids[0] == ids[2]
		if agree && (ids[0] == last.MsgID || last.MsgID == "") {
			lastTime, lastMsgID = ts[0], ids[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets %v %v; the last event's msgid is %q", ts, ids, last.MsgID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("committed %s/%s", lastTime.Format(time.RFC3339Nano), lastMsgID)
	// Completed events behind it are dropped: on a commit round once they
	// were completed more than 5 s ago (a split is noticed only a while
	// after it began, and what was completed meanwhile is sent again,
	// PROTOCOL §6.14), so within a few seconds more than that.
	for i, s := range subs {
		deadline := time.Now().Add(20 * time.Second)
		for s.ClaimStats().Completed >= events {
			if time.Now().After(deadline) {
				t.Errorf("worker %d still remembers %d completed events behind the committed offset", i, s.ClaimStats().Completed)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestAnycastRefillAfterReconnect: the only member of a group, with
// history, loses its connection while events are published. Once it is
// back it replays the group's record (docs/PROTOCOL.md §6.11) and
// completes every one of them, once; and its hole filled, its committed
// offset reaches the last event.
func TestAnycastRefillAfterReconnect(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	m := historytest.NewMesh(srv, "rf", nil)
	rec := m.StartRecorderIn(t, t.TempDir(), "", "r", recorder.Config{})
	proxy := historytest.NewCutProxy(t, srv.Addr())
	wcfg := m.Config("workers")
	wcfg.Server = proxy.Addr()
	wcfg.ReconnectMin, wcfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	wcfg.History = history.NewSource()
	wcfg.CommitInterval = 200 * time.Millisecond
	worker := meshtest.Connect(t, wcfg)
	pub := meshtest.Connect(t, m.Config("jobs"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := newHandled()
	sub, err := worker.SubscribeAnycast(ctx, "jobs.refill", h.handler("w"))
	if err != nil {
		t.Fatal(err)
	}
	historytest.WaitTopic(t, rec.Recorder, "jobs.refill")
	waitGroupFormed(t, []*mesh.Node{worker}, "jobs.refill", "workers")
	time.Sleep(1500 * time.Millisecond) // ready to claim
	var last mesh.PubAck
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			if last, err = pub.Publish(ctx, "jobs.refill", []byte(fmt.Sprintf("job-%03d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 30)
	h.waitFor(t, 30, 30*time.Second)
	waitCompleted(t, []*mesh.AnycastSubscription{sub}, 30, 30*time.Second) // the acks are in the channel

	proxy.Cut()
	historytest.WaitConnected(t, worker, false)
	publish(30, 60) // nobody of the group sees these live
	proxy.Restore()
	historytest.WaitConnected(t, worker, true)
	h.waitFor(t, 60, 30*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for c := sub.Committed(); c.MsgID != last.MsgID; c = sub.Committed() {
		if time.Now().After(deadline) {
			t.Fatalf("committed offset %v after the refill; the last event's msgid is %q", c, last.MsgID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkOnceLocked(t, 60)
}

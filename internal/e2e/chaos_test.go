package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/internal/proctest"
	"github.com/meshbot/meshbot/mesh"
)

// ledger is the side-effect store of the chaos test: an HTTP service the
// worker processes post every handled event to (meshbot serve --post). Per
// event it keeps the highest fencing token it has seen and refuses a write
// with a lower one, as a store that honours fencing tokens does.
type ledger struct {
	mu      sync.Mutex
	entries map[string]*ledgerEntry
	refused int
}

type ledgerEntry struct {
	token   uint64
	by      string
	applies int
}

func (l *ledger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rec struct {
		ID       string `json:"id"`
		Token    uint64 `json:"token"`
		Instance string `json:"instance"`
	}
	if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec.ID == "" || rec.Token == 0 {
		http.Error(w, fmt.Sprintf("bad record: %v", err), http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[rec.ID]
	if e == nil {
		e = &ledgerEntry{}
		l.entries[rec.ID] = e
	}
	if rec.Token < e.token {
		l.refused++
		http.Error(w, "stale fencing token", http.StatusConflict)
		return
	}
	e.token, e.by = rec.Token, rec.Instance
	e.applies++
}

func startLedger(t *testing.T) (*ledger, string) {
	t.Helper()
	l := &ledger{entries: map[string]*ledgerEntry{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: l, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return l, "http://" + ln.Addr().String() + "/apply"
}

// auditor watches a topic's channel and follows the group with a passive
// claims.Group (the runtime's own intake, never claiming) over what it
// sees: which ack completed each event. It leaves the consensus lines
// out, so it never forgets a completed event.
type auditor struct {
	mu      sync.Mutex
	core    *claims.Group
	events  map[envelope.ID]bool
	rawAcks map[envelope.ID]int
	obs     *mesh.Observer
}

func newAuditor(t *testing.T, n *mesh.Node, topic, group string) *auditor {
	t.Helper()
	a := &auditor{
		core: claims.NewGroup(claims.GroupConfig{
			Config: claims.Config{MaxEvents: 1 << 20, Retain: time.Hour},
			Topic:  topic, Group: group, Passive: true,
			Sender: envelope.Sender{Service: "auditor", Instance: "a", Incarnation: 1},
		}),
		events:  map[envelope.ID]bool{},
		rawAcks: map[envelope.ID]int{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := n.Observe(ctx, topic, a.see)
	if err != nil {
		t.Fatal(err)
	}
	a.obs = obs
	t.Cleanup(obs.Stop)
	return a
}

func (a *auditor) see(ob mesh.Observation) {
	env := ob.Envelope
	if env == nil {
		return
	}
	switch env.Kind {
	case envelope.KindHistoryClaim, envelope.KindHistoryAck, envelope.KindHistoryReject:
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if env.Kind == envelope.KindEvent {
		a.events[env.ID] = true
	}
	if env.Kind == envelope.KindAck && env.Topic == a.core.Config().Group {
		// Every ack item counts, accepted or not (a second ack of an event
		// is ignored by the rules, and counted here).
		if items, err := claims.DecodeItems(env.Payload); err == nil {
			for _, it := range items {
				a.rawAcks[it.Event]++
			}
		}
	}
	a.core.Receive(claims.Received{Envelope: env, From: ob.From, MsgID: ob.MsgID}, time.Now())
}

func (a *auditor) completed() (acked, dead int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.events {
		switch o, _, _, _ := a.core.Status(id); o {
		case claims.Acked:
			acked++
		case claims.DeadLettered:
			dead++
		}
	}
	return acked, dead
}

const (
	chaosEvents = 5000
	chaosLease  = 2 * time.Second
)

// TestChaosAnycast: three `meshbot serve --anycast` worker processes share
// 5,000 events while they are SIGKILLed and restarted, and SIGSTOPped past
// their lease and resumed. Each writes every event it handles to a ledger
// that refuses stale fencing tokens. Every event must be completed by
// exactly one accepted ack, applied, and the ledger's surviving write must
// be the one of the claim whose ack was accepted. Several seeds.
func TestChaosAnycast(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { chaosRun(t, seed) })
	}
}

func chaosRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	srv := ircdtest.Start(t)
	led, url := startLedger(t)
	const topic, group = "chaos.jobs", "workers"

	cfg := mesh.DefaultConfig()
	cfg.Server = srv.Addr()
	cfg.Namespace = "e2e"
	cfg.Service = "chaospub"
	nodes := meshtest.ConnectAll(t, cfg, withService(cfg, "auditor"))
	pub, aud := nodes[0], newAuditor(t, nodes[1], topic, group)

	workers := make([]*proctest.Proc, 3)
	for i := range workers {
		workers[i] = serve(t, srv, group, fmt.Sprintf("w%d", i+1), "--subscribe", topic, "--anycast",
			"--lease", chaosLease.String(), "--max-attempts", "50", "--retry-delay", "100ms", "--post", url)
	}
	for _, w := range workers {
		w.WaitReady(startupBudget)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitLive(t, nodes[1], group, 3, ctx)
	time.Sleep(1500 * time.Millisecond) // the workers are ready to claim

	// Publish at about 400 events/s while the chaos runs.
	published := make(chan error, 1)
	go func() {
		var futures []*mesh.PubFuture
		for i := range chaosEvents {
			f, err := pub.PublishAsync(ctx, topic, []byte(fmt.Sprintf("job-%05d", i)))
			if err != nil {
				published <- err
				return
			}
			futures = append(futures, f)
			if i%40 == 39 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		for _, f := range futures {
			if _, err := f.Wait(ctx); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()

	// One fault at a time, on a random worker, until publishing ends.
	var log []string
	faults := map[string]int{}
	publishDone := false
	var pubErr error
	for !publishDone {
		select {
		case pubErr = <-published:
			publishDone = true
			continue
		case <-time.After(time.Duration(400+rng.IntN(800)) * time.Millisecond):
		}
		i := rng.IntN(len(workers))
		w := workers[i]
		switch rng.IntN(3) {
		case 0: // SIGKILL, restart
			w.Kill()
			time.Sleep(time.Duration(200+rng.IntN(1000)) * time.Millisecond)
			workers[i] = w.Restart(t)
			workers[i].WaitReady(startupBudget)
			faults["kill"]++
			log = append(log, fmt.Sprintf("kill+restart w%d", i+1))
		default: // SIGSTOP past the lease, SIGCONT
			d := chaosLease + time.Duration(500+rng.IntN(1500))*time.Millisecond
			w.Stop()
			time.Sleep(d)
			w.Cont()
			faults["stop"]++
			log = append(log, fmt.Sprintf("stop w%d for %s", i+1, d.Round(time.Millisecond)))
		}
	}
	if pubErr != nil {
		t.Fatalf("publishing: %v", pubErr)
	}
	t.Logf("faults: %s", strings.Join(log, ", "))

	deadline := time.Now().Add(90 * time.Second)
	for {
		acked, dead := aud.completed()
		if acked+dead == chaosEvents {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s: %d acked, %d dead of %d events; auditor %+v", acked, dead, chaosEvents, aud.core.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate write or ack would show by now

	aud.mu.Lock()
	defer aud.mu.Unlock()
	led.mu.Lock()
	defer led.mu.Unlock()
	if n := len(aud.events); n != chaosEvents {
		t.Errorf("auditor saw %d events, want %d", n, chaosEvents)
	}
	if d := aud.obs.Dropped(); d > 0 {
		t.Fatalf("auditor dropped %d observations: the audit is incomplete", d)
	}
	var takeovers, redone, dupAcks int
	for id := range aud.events {
		o, by, epoch, _ := aud.core.Status(id)
		if o != claims.Acked {
			t.Errorf("%s: %s, want acked", id.Short(), o)
			continue
		}
		e := led.entries[id.String()]
		if e == nil {
			t.Errorf("%s acked by %s@%d but never applied", id.Short(), by.ID, epoch)
			continue
		}
		if want := claims.Token(epoch, claims.Weight(id, by.ID)); e.token != want {
			t.Errorf("%s: the ledger kept token %x (by %s), but the accepted ack is %s@%d (token %x)", id.Short(), e.token, e.by, by.ID, epoch, want)
		}
		if epoch > 1 {
			takeovers++
		}
		if e.applies > 1 {
			redone++
		}
		if aud.rawAcks[id] > 1 {
			dupAcks++
		}
	}
	t.Logf("%d events: %d completed after a takeover, %d applied again by a taker-over, %d stale writes refused by the ledger, %d with a second (ignored) ack; auditor %+v",
		chaosEvents, takeovers, redone, led.refused, dupAcks, aud.core.Stats())
	if faults["kill"]+faults["stop"] > 0 && takeovers == 0 {
		t.Errorf("faults injected but no event was taken over: the chaos did not bite")
	}
}

func withService(cfg mesh.Config, service string) mesh.Config {
	cfg.Service = service
	return cfg
}

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/internal/proctest"
	"github.com/meshbot/meshbot/mesh"
)

// holdStore is a store whose first write of each event hangs until the
// test lets go: the worker holding the event's claim is then busy in its
// handler when the test kills or freezes it.
type holdStore struct {
	mu     sync.Mutex
	writes map[string][]storeWrite
	arrive chan storeWrite
	let    chan struct{}
}

type storeWrite struct {
	payload, instance string
	epoch             uint64
	at                time.Time
}

func (s *holdStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rec struct {
		Payload  string `json:"payload"`
		Instance string `json:"instance"`
		Epoch    uint64 `json:"epoch"`
	}
	if err := json.NewDecoder(r.Body).Decode(&rec); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	wr := storeWrite{rec.Payload, rec.Instance, rec.Epoch, time.Now()}
	s.mu.Lock()
	first := len(s.writes[rec.Payload]) == 0
	s.writes[rec.Payload] = append(s.writes[rec.Payload], wr)
	s.mu.Unlock()
	s.arrive <- wr
	if first {
		select {
		case <-s.let:
		case <-r.Context().Done():
		}
	}
}

// TestAnycastTakeover measures, with real processes, how long an event
// held by a worker takes to be started by another after the holder is
// SIGKILLed (the server's QUIT: at once) and after it is SIGSTOPped (its
// heartbeats stop: suspected after 2 intervals). It reports the times (the
// figures of docs/performance.md) and checks the takeover itself: another
// worker, epoch 2.
func TestAnycastTakeover(t *testing.T) {
	srv := ircdtest.Start(t)
	store := &holdStore{writes: map[string][]storeWrite{}, arrive: make(chan storeWrite, 16), let: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: store, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { close(store.let); hs.Close() })
	url := "http://" + ln.Addr().String() + "/"

	const topic = "takeover.jobs"
	var workers []*proctest.Proc
	for i := range 3 {
		workers = append(workers, serve(t, srv, "holders", fmt.Sprintf("h%d", i+1), "--subscribe", topic, "--anycast", "--post", url))
	}
	for _, w := range workers {
		w.WaitReady(startupBudget)
	}
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service = srv.Addr(), "e2e", "holdpub"
	pub := meshtest.Connect(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitLive(t, pub, "holders", 3, ctx)
	time.Sleep(1500 * time.Millisecond) // the workers are ready to claim

	byInstance := map[string]*proctest.Proc{}
	for i, w := range workers {
		byInstance[fmt.Sprintf("holders/h%d", i+1)] = w
	}
	next := func(what string) storeWrite {
		t.Helper()
		select {
		case wr := <-store.arrive:
			return wr
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no write within 20 s", what)
		}
		return storeWrite{}
	}
	for _, fault := range []string{"SIGKILL", "SIGSTOP"} {
		payload := "hold-" + fault
		if _, err := pub.Publish(ctx, topic, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		first := next(payload)
		holder := byInstance[first.instance]
		if holder == nil || first.epoch != 1 {
			t.Fatalf("first write %+v", first)
		}
		at := time.Now()
		if fault == "SIGKILL" {
			holder.Kill()
		} else {
			holder.Stop()
		}
		second := next(payload + " taken over")
		if second.payload != payload || second.instance == first.instance || second.epoch != 2 {
			t.Fatalf("after %s of %s: write %+v", fault, first.instance, second)
		}
		t.Logf("%s of the holder: another worker started the event %s later", fault, second.at.Sub(at).Round(time.Millisecond))
		if fault == "SIGSTOP" {
			holder.Cont()
		}
		delete(byInstance, first.instance)
	}
}

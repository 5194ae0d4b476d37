package bench

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	onLine func(string) // called with what was written, under mu
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onLine != nil {
		s.onLine(string(p))
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The tests below run the workloads with tiny counts against a real
// server (MESH_IRCD, InspIRCd by default) and check what was counted, not
// how fast.

func testEnv(t *testing.T) Env {
	srv := ircdtest.Start(t)
	return Env{Server: srv.Addr()}
}

func checkRate(t *testing.T, side string, r *Rate, sent int64, receivers int) {
	t.Helper()
	if r == nil {
		t.Fatalf("%s: not measured", side)
	}
	if r.Sent != sent || r.Received != sent*int64(receivers) || !r.Complete {
		t.Errorf("%s: sent %d, received %d, complete %v; want %d sent, %d received", side, r.Sent, r.Received, r.Complete, sent, sent*int64(receivers))
	}
	if r.PerSecond <= 0 || r.Seconds <= 0 {
		t.Errorf("%s: rate %v over %v s", side, r.PerSecond, r.Seconds)
	}
}

// TestFanoutCountsEveryMessage: multicast to two subscribers, with a
// payload of three raw lines, and anycast to two workers: every message
// counted once per subscriber on both sides (anycast: handled).
func TestFanoutCountsEveryMessage(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	ctx := context.Background()
	for _, w := range []Fanout{
		{Pubs: 2, Subs: 2, Size: 200, Msgs: 301},
		{Pubs: 1, Subs: 2, Size: 1000, Msgs: 150}, // raw: 3 lines a message
		{Pubs: 1, Subs: 2, Size: 200, Msgs: 300, Anycast: true},
	} {
		var b syncBuffer
		res, err := RunFanout(ctx, env, w, NewProgress(&b, false))
		if err != nil {
			t.Fatalf("%s: %v\n%s", w.Name(), err, b.String())
		}
		checkRate(t, w.Name()+" raw", res.Raw, int64(w.Msgs), w.Subs)
		if w.Anycast {
			// Every message handled; a takeover after a worker starved
			// for seconds may run a handler twice (at least once, with
			// fencing), so more is no error.
			if m := res.Mesh; m == nil || m.Sent != int64(w.Msgs) || m.Received < m.Sent || !m.Complete || m.PerSecond <= 0 {
				t.Errorf("%s meshbot: %+v", w.Name(), m)
			}
		} else {
			checkRate(t, w.Name()+" meshbot", res.Mesh, int64(w.Msgs), w.Subs)
		}
		if want := res.Mesh.PerSecond / res.Raw.PerSecond; res.Ratio != want {
			t.Errorf("%s: ratio %v, want %v", w.Name(), res.Ratio, want)
		}
		for _, phase := range []string{"raw IRC " + w.Name() + ": ", "meshbot " + w.Name() + ": "} {
			if !strings.Contains(b.String(), phase) {
				t.Errorf("progress lacks %q:\n%s", phase, b.String())
			}
		}
	}
}

// TestRequestsCountEveryRoundTrip: 4 outstanding, 200 round trips per
// side; and a 1000-byte payload (3 raw lines each way).
func TestRequestsCountEveryRoundTrip(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	for _, w := range []Requests{
		{Outstanding: 4, Size: 200, Count: 200},
		{Outstanding: 1, Size: 1000, Count: 50},
	} {
		res, err := RunRequests(context.Background(), env, w, nil)
		if err != nil {
			t.Fatalf("%s: %v", w.Name(), err)
		}
		for side, l := range map[string]*Latency{"raw": res.Raw, "meshbot": res.Mesh} {
			if l == nil {
				t.Fatalf("%s %s: not measured", w.Name(), side)
			}
			if l.Count != w.Count || l.Errors != 0 || !l.Complete {
				t.Errorf("%s %s: %d round trips, %d errors, complete %v", w.Name(), side, l.Count, l.Errors, l.Complete)
			}
			if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) || l.PerSecond <= 0 {
				t.Errorf("%s %s: %+v", w.Name(), side, l)
			}
		}
		if res.P50Ratio != res.Mesh.P50/res.Raw.P50 || res.P99Ratio != res.Mesh.P99/res.Raw.P99 ||
			res.ThroughputRatio != res.Mesh.PerSecond/res.Raw.PerSecond {
			t.Errorf("%s: ratios %+v", w.Name(), res)
		}
	}
}

// TestRunStopsAtDuration: a workload far larger than a short Duration
// stops sending at the Duration, and what was sent all arrived.
func TestRunStopsAtDuration(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	w := Fanout{Pubs: 1, Subs: 1, Size: 200, Msgs: 50_000_000, Duration: 300 * time.Millisecond}
	res, err := RunFanout(context.Background(), env, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	for side, r := range map[string]*Rate{"raw": res.Raw, "meshbot": res.Mesh} {
		if r == nil || r.Sent == 0 || r.Sent >= int64(w.Msgs) || !r.Complete || r.Received != r.Sent {
			t.Errorf("%s: %+v", side, r)
		}
	}
	q := Requests{Outstanding: 2, Size: 200, Count: 50_000_000, Duration: 300 * time.Millisecond}
	rr, err := RunRequests(context.Background(), env, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	for side, l := range map[string]*Latency{"raw": rr.Raw, "meshbot": rr.Mesh} {
		if l == nil || l.Count == 0 || l.Complete || l.Errors != 0 {
			t.Errorf("%s: %+v", side, l)
		}
	}
}

// TestInterruptReturnsWhatWasMeasured: an interrupt during the meshbot
// side of a run returns the raw side's figures, the meshbot side cut
// short, no error, and a report marked interrupted; the next workloads do
// not run.
func TestInterruptReturnsWhatWasMeasured(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := Fanout{Pubs: 1, Subs: 2, Size: 200, Msgs: 50_000_000}
	var b syncBuffer
	b.onLine = func(s string) {
		// The measured meshbot phase has started (not its warm-up).
		if strings.HasPrefix(s, "meshbot "+w.Name()+": 0/") {
			time.AfterFunc(200*time.Millisecond, cancel)
		}
	}
	// The raw side of a 50M-message run would take minutes: a Duration
	// bounds it (the meshbot side has no time to reach it).
	w.Duration = 2 * time.Second
	done := make(chan *Report)
	go func() {
		done <- Run(ctx, env, "test server", Plan{Fanout: []Fanout{w}, Requests: []Requests{{Outstanding: 1, Size: 10, Count: 10}}}, NewProgress(&b, false))
	}()
	var r *Report
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no report 2 minutes after the start:\n%s", b.String())
	}
	t.Log("\n" + b.String())
	if !r.Interrupted || len(r.Errors) != 0 || len(r.Fanout) != 1 || len(r.Requests) != 0 {
		t.Fatalf("report: interrupted %v, errors %v, %d fanout, %d requests", r.Interrupted, r.Errors, len(r.Fanout), len(r.Requests))
	}
	f := r.Fanout[0]
	if f.Raw == nil || !f.Raw.Complete || f.Mesh == nil || f.Mesh.Complete || f.Mesh.Sent >= int64(w.Msgs) {
		t.Errorf("raw %+v, meshbot %+v", f.Raw, f.Mesh)
	}
	if len(r.Figures) != 1 || len(r.Figures[0].Values) != 2 {
		t.Errorf("figures: %+v", r.Figures)
	}
	if !strings.Contains(b.String(), "meshbot "+w.Name()+": interrupted") {
		t.Errorf("progress does not say the phase was interrupted")
	}
}

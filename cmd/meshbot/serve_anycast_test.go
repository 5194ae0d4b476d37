package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// fencedStore is the external store of --post: it keeps the highest token
// per event and refuses lower ones, and fails the first attempt of events
// whose payload starts with "flaky".
type fencedStore struct {
	mu      sync.Mutex
	highest map[string]uint64
	posts   []postBody // every POST, in order
	stored  map[string]postBody
	bad     []string
}

func newFencedStore() *fencedStore {
	return &fencedStore{highest: map[string]uint64{}, stored: map[string]postBody{}}
}

func (s *fencedStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b postBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		s.mu.Lock()
		s.bad = append(s.bad, fmt.Sprintf("%s %s: %v", r.Method, r.Header.Get("Content-Type"), err))
		s.mu.Unlock()
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts = append(s.posts, b)
	if b.Token < s.highest[b.ID] {
		http.Error(w, "fenced off", http.StatusConflict)
		return
	}
	s.highest[b.ID] = b.Token
	if b.Payload != nil && strings.HasPrefix(*b.Payload, "flaky") && b.Attempt < 2 {
		http.Error(w, "store busy", http.StatusServiceUnavailable)
		return
	}
	s.stored[b.ID] = b
	w.WriteHeader(http.StatusNoContent)
}

func (s *fencedStore) snapshot() (posts []postBody, stored map[string]postBody, bad []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored = map[string]postBody{}
	for k, v := range s.stored {
		stored[k] = v
	}
	return slices.Clone(s.posts), stored, slices.Clone(s.bad)
}

// TestServeAnycast runs two `serve --anycast --post` instances of one
// group against a real server, with `claims --watch --json` looking on, and
// publishes 50 events and 2 whose first attempt the store fails: each
// event is handled (stored and recorded) once overall, both instances take
// a share, the failed ones are retried at attempt 2 with a higher token,
// and claims sees them all acked.
func TestServeAnycast(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	store := newFencedStore()
	hs := httptest.NewServer(store)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "any"}
	files := map[string]string{}
	var workers []*background
	for _, inst := range []string{"1", "2"} {
		files[inst] = filepath.Join(dir, "events-"+inst+".jsonl")
		workers = append(workers, startCLI(t, environ, "serve", "--service", "wk", "--instance", inst,
			"--subscribe", "jobs", "--anycast", "--retry-delay", "100ms", "--lease", "10s",
			"--post", hs.URL+"/jobs", "--events", files[inst]))
	}
	for i, b := range workers {
		waitFor(t, "serve stdout", b.out, "\n", 20*time.Second)
		if want := fmt.Sprintf("ready wk-%d\n", i+1); b.out.String() != want {
			t.Fatalf("serve stdout %q, want %q\n%s", b.out.String(), want, b.errbuf)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service, cfg.Instance = srv.Addr(), "any", "tester", "1"
	node, err := mesh.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(node)
	// Both workers announce the group before anything is published.
	for {
		n := 0
		for _, m := range node.AllMembers() {
			if m.State == heartbeat.Alive && slices.Contains(m.Beat.Subs, heartbeat.Sub{Topic: "jobs", Group: "wk"}) {
				n++
			}
		}
		if n == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the workers never announced group wk: %+v", node.AllMembers())
		}
		time.Sleep(50 * time.Millisecond)
	}
	watch := startCLI(t, environ, "claims", "jobs", "--watch", "--json")
	waitFor(t, "claims stderr", watch.errbuf, "watching group wk of #any.jobs", 20*time.Second)

	payloads := map[string]string{} // id → payload
	for i := range 52 {
		p := fmt.Sprintf("job %d", i)
		if i >= 50 {
			p = fmt.Sprintf("flaky %d", i)
		}
		ack, err := node.Publish(ctx, "jobs", []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		payloads[ack.ID.String()] = p
	}

	// Every event recorded, in one file or the other.
	var recs map[string][]serveRecord
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		recs = map[string][]serveRecord{}
		for inst, f := range files {
			recs[inst] = readRecords(t, f)
		}
		ids := map[string]bool{}
		for _, rs := range recs {
			for _, r := range rs {
				ids[r.ID] = true
			}
		}
		if len(ids) >= len(payloads) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events recorded after 30s:\n1: %s\n2: %s", len(ids), len(payloads), readFile(t, files["1"]), readFile(t, files["2"]))
		}
	}
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now

	handled := map[string]int{}
	for inst, rs := range recs {
		rs = readRecords(t, files[inst])
		if len(rs) == 0 {
			t.Errorf("instance %s handled no event of %d", inst, len(payloads))
		}
		for _, r := range rs {
			handled[r.ID]++
			p, ok := payloads[r.ID]
			switch {
			case !ok:
				t.Errorf("instance %s recorded an unknown event %s", inst, r.ID)
			case r.Kind != "event" || r.Topic != "jobs" || r.Payload == nil || *r.Payload != p || r.From != "tester-1":
				t.Errorf("instance %s: record %+v", inst, r)
			case r.Group != "wk" || r.Epoch == 0 || r.Attempt == 0 || r.Token == 0:
				t.Errorf("instance %s: record without its claim: %+v", inst, r)
			case strings.HasPrefix(p, "flaky") && r.Attempt < 2:
				t.Errorf("instance %s: %s recorded at attempt %d, but the store failed its first attempt", inst, p, r.Attempt)
			}
		}
	}
	for id, p := range payloads {
		if handled[id] != 1 {
			t.Errorf("event %s (%s) handled %d times, want once", id[:8], p, handled[id])
		}
	}

	// The store: each event stored once, by the claim it was recorded
	// with; the flaky ones tried twice, the second time with a higher
	// token.
	posts, stored, bad := store.snapshot()
	if len(bad) > 0 {
		t.Errorf("bad POSTs: %q", bad)
	}
	if len(stored) != len(payloads) {
		t.Errorf("%d events stored, want %d", len(stored), len(payloads))
	}
	for id, b := range stored {
		if b.Payload == nil || *b.Payload != payloads[id] || b.Topic != "jobs" || b.Group != "wk" || b.Service != "wk" ||
			(b.Instance != "wk/1" && b.Instance != "wk/2") || b.From != "tester-1" || b.Token == 0 {
			t.Errorf("stored %s: %+v", id[:8], b)
		}
	}
	for id, p := range payloads {
		var tries []postBody
		for _, b := range posts {
			if b.ID == id {
				tries = append(tries, b)
			}
		}
		if !strings.HasPrefix(p, "flaky") {
			continue
		}
		if len(tries) != 2 || tries[0].Attempt != 1 || tries[1].Attempt != 2 || tries[1].Token <= tries[0].Token || tries[1].Epoch <= tries[0].Epoch {
			t.Errorf("%s posted %+v; want attempt 1 then attempt 2 with a higher token", p, tries)
		}
	}

	// claims saw every event acked, and the two failed attempts.
	var doc claimsDoc
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		lines := strings.Split(strings.TrimSpace(watch.out.String()), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &doc); err == nil &&
			doc.Totals.Acked == uint64(len(payloads)) && doc.Totals.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claims --watch --json never saw the %d events acked; last document:\n%s", len(payloads), lines[len(lines)-1])
		}
	}
	if doc.Group != "wk" || doc.Channel != "#any.jobs" || len(doc.Members) != 2 || doc.Totals.FailedAttempts < 2 || doc.Totals.Dead != 0 {
		t.Errorf("claims document: %+v", doc)
	}
	for _, e := range doc.Events {
		if e.State != "acked" || (e.Owner != "wk/1" && e.Owner != "wk/2") || !e.Seen {
			t.Errorf("claims event %+v", e)
		}
	}
	if code := watch.stop(t); code != 0 {
		t.Errorf("claims --watch exit %d\n%s", code, watch.errbuf)
	}
	for _, b := range workers {
		if code := b.stop(t); code != 0 {
			t.Errorf("serve exit %d\n%s", code, b.errbuf)
		}
	}
}

// TestClaimsCmd: the one-shot table against a real server, and the error
// when no group is announced.
func TestClaimsCmd(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "cc"}
	w := startCLI(t, environ, "serve", "--service", "wk", "--instance", "1", "--subscribe", "jobs", "--group", "crew")
	waitFor(t, "serve stdout", w.out, "ready", 20*time.Second)

	r := runCLI(t, environ, "", "claims", "nothing", "--for", "100ms")
	if r.code != 1 || !strings.Contains(r.stderr, "meshbot: claims: no member announces an anycast group for nothing in its heartbeats; give --group") {
		t.Errorf("no group: exit %d, stderr %q", r.code, r.stderr)
	}
	done := make(chan result, 1)
	go func() { done <- runCLI(t, environ, "", "claims", "jobs", "--for", "4s") }()
	time.Sleep(1700 * time.Millisecond) // the command has settled and knows its group
	ack := runCLI(t, environ, "", "pub", "jobs", "hello")
	if ack.code != 0 {
		t.Fatalf("pub: %d %s", ack.code, ack.stderr)
	}
	r = <-done
	short := strings.TrimPrefix(strings.Fields(ack.stdout)[2], "id=")[:8]
	if r.code != 0 || !strings.Contains(r.stdout, "group crew") || !strings.Contains(r.stdout, "members: wk/1\n") ||
		!strings.Contains(r.stdout, "\n"+short+" ") || !strings.Contains(r.stdout, "0 pending, 1 acked, 0 dead-lettered, 0 failed attempts") {
		t.Errorf("claims: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestServePost: what --post sends and how it reads the answers.
func TestServePost(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		got  []postBody
		next = []func(w http.ResponseWriter){
			func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) },
			func(w http.ResponseWriter) { http.Error(w, "fenced off: token 5 < 9", http.StatusConflict) },
			func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "7")
				http.Error(w, "busy", http.StatusServiceUnavailable)
			},
			func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) },
		}
	)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b postBody
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		got = append(got, b)
		answer := next[0]
		next = next[1:]
		mu.Unlock()
		answer(w)
	}))
	t.Cleanup(hs.Close)
	u, _ := url.Parse(hs.URL + "/store")
	s := &server{post: u, client: &http.Client{Timeout: servePostTimeout}, service: "wk", instance: "3"}
	msg := &mesh.Message{Topic: "jobs", ID: envelope.NewID(), Payload: []byte("job 1"), From: "orders-1",
		Claim: &mesh.Claim{Group: "crew", Epoch: 2, Attempt: 3, Token: 2<<32 | 77}}
	ctx := context.Background()

	if err := s.postEvent(ctx, msg); err != nil {
		t.Errorf("200: %v", err)
	}
	mu.Lock()
	p := "job 1"
	want := postBody{Topic: "jobs", Group: "crew", ID: msg.ID.String(), Epoch: 2, Attempt: 3, Token: 2<<32 | 77, Payload: &p,
		Service: "wk", Instance: "wk/3", From: "orders-1"}
	if len(got) != 1 || got[0].Payload == nil || *got[0].Payload != p {
		t.Fatalf("posted %+v", got)
	}
	got[0].Payload = &p
	if got[0] != want {
		t.Errorf("posted %+v, want %+v", got[0], want)
	}
	mu.Unlock()
	err := s.postEvent(ctx, msg)
	if err == nil || err.Error() != "POST "+hs.URL+"/store: 409 Conflict: fenced off: token 5 < 9" {
		t.Errorf("409: %v", err)
	}
	err = s.postEvent(ctx, msg)
	if err == nil || err.Error() != "POST "+hs.URL+"/store: 503 Service Unavailable: busy" || !isRetry(err) {
		t.Errorf("503 with Retry-After: %v (%T), want a mesh.RetryAfter error", err, err)
	}
	// Binary payload, multicast (no claim).
	bin := &mesh.Message{Topic: "jobs", ID: envelope.NewID(), Payload: []byte{0xff, 0}, From: "orders-1"}
	if err := s.postEvent(ctx, bin); err != nil {
		t.Errorf("202: %v", err)
	}
	mu.Lock()
	if b := got[len(got)-1]; b.Payload != nil || b.PayloadBase64 != "/wA=" || b.Group != "" || b.Epoch != 0 || b.Token != 0 {
		t.Errorf("binary multicast event posted as %+v", b)
	}
	mu.Unlock()

	// An unreachable store: an error that does not show the password.
	u, _ = url.Parse("http://user:secret@" + closedAddr(t) + "/x")
	s.post = u
	if err := s.postEvent(ctx, msg); err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "POST http://user:xxxxx@") {
		t.Errorf("unreachable: %v", err)
	}
}

func isRetry(err error) bool {
	_, ok := mesh.RetryDelayOf(err)
	return ok
}

package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// lockedLog is a Config.RawLog the test can read while the node writes it.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(l.buf.String(), "\n")
}

// TestRequestAfterPublishAsyncKeepsOrder: a request is written by its
// caller when nothing queued stands before it (writer_direct.go). Events
// published with PublishAsync just before it are still queued behind the
// writer's windows, and the request must not overtake them: the responder
// reads every event line of the publisher before its request. Several
// rounds, a topic each: whether the caller finds the socket free at that
// moment is up to the scheduler.
func TestRequestAfterPublishAsyncKeepsOrder(t *testing.T) {
	srv := ircdtest.Start(t)
	log := &lockedLog{}
	acfg := testConfig(srv, "audit")
	acfg.RawLog = log
	pcfg := testConfig(srv, "orders")
	pcfg.WindowLines, pcfg.MaxWindows = 1, 1 // the writer mostly waits for a PONG, its socket free
	nodes := connectAll(t, pcfg, acfg)
	pub, audit := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const rounds, events = 4, 1500
	cols := make([]*collector, rounds)
	for r := range rounds {
		cols[r] = newCollector()
		if _, err := audit.Subscribe(ctx, fmt.Sprintf("orders%d", r), cols[r].handle, mesh.QueueLen(events+10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := audit.Handle("count", func(_ context.Context, q *mesh.Request) ([]byte, error) { return q.Payload, nil }); err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitFor(ctx, "audit"); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("e"), 300)
	for r := range rounds {
		topic := fmt.Sprintf("orders%d", r)
		// The first publish joins the topic; after it the writer is idle.
		if _, err := pub.Publish(ctx, topic, []byte("first")); err != nil {
			t.Fatal(err)
		}
		// The PublishAsync calls return with up to a queue's worth (1024)
		// of events still unwritten, a line per round trip to the server.
		futures := make([]*mesh.PubFuture, 0, events)
		for range events {
			f, err := pub.PublishAsync(ctx, topic, payload)
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		want := fmt.Sprint(r)
		if out, err := pub.Request(ctx, "audit", "count", []byte(want)); err != nil || string(out) != want {
			t.Fatalf("round %d: request: %q, %v", r, out, err)
		}
		for i, f := range futures {
			if _, err := f.Wait(ctx); err != nil {
				t.Fatalf("round %d: publish %d: %v", r, i, err)
			}
		}
		cols[r].waitFor(t, events+1, 30*time.Second)
	}

	// In the responder's log, round r's request comes after every line of
	// the publisher to round r's topic (events may share lines: batches).
	from := ":" + strings.ToLower(pub.Nick()) + "!"
	toAudit := " privmsg " + strings.ToLower(audit.Nick()) + " :"
	lastEvent := make([]int, rounds)
	var requests []int
	for i, l := range log.lines() {
		l = strings.ToLower(l)
		if !strings.Contains(l, from) {
			continue
		}
		if strings.Contains(l, toAudit) {
			requests = append(requests, i)
			continue
		}
		for r := range rounds {
			if strings.Contains(l, " privmsg "+strings.ToLower(mesh.Channel("t", fmt.Sprintf("orders%d", r)))+" :") {
				lastEvent[r] = i
			}
		}
	}
	if len(requests) != rounds {
		t.Fatalf("the responder read %d requests, want %d", len(requests), rounds)
	}
	for r := range rounds {
		if lastEvent[r] == 0 {
			t.Fatalf("round %d: no event line in the responder's log", r)
		}
		if lastEvent[r] > requests[r] {
			t.Errorf("round %d: the request (line %d) overtook queued events (the last at line %d)", r, requests[r], lastEvent[r])
		}
	}
}

package history_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestAnycastGroupResumes, in each trust mode: a whole anycast group is
// stopped while events are published; when its members start again they
// replay the group's history and complete every one of those events
// exactly once, and none of the events completed before the stop runs
// again. The recorder and every member have the mode's keys.
//
// "committed offset": the members start from the group's committed offset
// found in the record (looking back 20 lines per request, so the lookup
// takes several). Their window is 1 ms, so a resume from the window would
// miss the events published while away; and events completed well before
// the stop (more than the margin before it) are not replayed at all.
//
// "window": the group never committed (the commit interval is longer
// than the test), so the members find no committed offset and replay the
// last ResumeWindow of history.
func TestAnycastGroupResumes(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	t.Run("committed offset", func(t *testing.T) {
		historytest.ForEachMode(t, srv, "rc", func(t *testing.T, m *historytest.Mesh) { testGroupResumes(t, m, true) })
	})
	t.Run("window", func(t *testing.T) {
		historytest.ForEachMode(t, srv, "rw", func(t *testing.T, m *historytest.Mesh) { testGroupResumes(t, m, false) })
	})
}

// Events of testGroupResumes: published while the group is away (more
// than a page of history), and just before the stop; in the committed
// variant, published and committed well before the stop.
const awayEvents, beforeEvents, earlyEvents = 600, 100, 100

// commitInterval is the members' commit interval in the committed variant.
const commitInterval = 200 * time.Millisecond

func testGroupResumes(t *testing.T, m *historytest.Mesh, commit bool) {
	rcfg := recorder.Config{}
	if commit {
		rcfg.CommitScan = 20
	}
	rec := m.StartRecorderIn(t, t.TempDir(), "", "r", rcfg)
	pub := meshtest.Connect(t, m.Config("jobs"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var mu sync.Mutex
	runs := map[string]int{}
	handler := func(_ context.Context, m *mesh.Message) error {
		mu.Lock()
		runs[string(m.Payload)]++
		mu.Unlock()
		return nil
	}
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(runs)
	}
	var subs []*mesh.AnycastSubscription // the group's, for the failure report
	waitDistinct := func(n int, what string) {
		deadline := time.Now().Add(60 * time.Second)
		for distinct() < n {
			if time.Now().After(deadline) {
				for i, s := range subs {
					t.Logf("member %d: resumed %+v, claims %+v", i, s.Resumed(), s.ClaimStats())
				}
				t.Fatalf("%s: %d distinct events handled, want %d", what, distinct(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	startGroup := func() ([]*mesh.Node, []*mesh.AnycastSubscription) {
		var cfgs []mesh.Config
		for i := range 3 {
			cfg := m.Config("workers")
			cfg.Instance = m.Instance(fmt.Sprintf("w%d", i))
			cfg.History = history.NewSource()
			if commit {
				cfg.CommitInterval = commitInterval
				cfg.ResumeWindow = time.Millisecond
			} else {
				cfg.CommitInterval = time.Hour
			}
			cfgs = append(cfgs, cfg)
		}
		nodes := meshtest.ConnectAll(t, cfgs...)
		var subs []*mesh.AnycastSubscription
		for _, n := range nodes {
			s, err := n.SubscribeAnycast(ctx, "jobs.todo", handler)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		return nodes, subs
	}
	var lastSent time.Time // just before the last event of a publish was handed over
	publish := func(prefix string, n int) *mesh.PubFuture {
		var last *mesh.PubFuture
		for i := range n {
			if i == n-1 {
				lastSent = time.Now()
			}
			f, err := pub.PublishAsync(ctx, "jobs.todo", []byte(fmt.Sprintf("%s-%04d", prefix, i)))
			if err != nil {
				t.Fatal(err)
			}
			last = f
		}
		if _, err := last.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		return last
	}
	// waitCommitted waits until every member committed the line of f. On
	// a server without msgids (or server-time) an offset is the claimant's
	// own receive time, so the line of f is not named: wait for a commit
	// received after f was handed over that holds for a few commit
	// intervals (the group is idle: its last commit covers its last event).
	waitCommitted := func(subs []*mesh.AnycastSubscription, f *mesh.PubFuture) {
		r, _ := f.Wait(ctx)
		sent := lastSent
		deadline := time.Now().Add(30 * time.Second)
		for _, s := range subs {
			var held envelope.Offset
			var since time.Time
			for {
				c := s.Committed()
				at, id := c.At(), c.MsgID
				if c != held {
					held, since = c, time.Now()
				}
				stable := time.Since(since) > 3*commitInterval
				if (r.MsgID != "" && id == r.MsgID) || (r.MsgID == "" && !at.Before(sent) && stable) {
					break
				}
				if time.Now().After(deadline) {
					for i, s := range subs {
						t.Logf("member %d: committed %s, claims %+v", i, s.Committed(), s.ClaimStats())
					}
					t.Fatalf("committed %v/%s, want the line of the last event (%s)", at, id, r.MsgID)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	var group []*mesh.Node
	group, subs = startGroup()
	historytest.WaitTopic(t, rec.Recorder, "jobs.todo")
	time.Sleep(1500 * time.Millisecond) // the group is ready
	early := 0
	if commit {
		early = earlyEvents
		waitCommitted(subs, publish("early", early))
		waitDistinct(early, "early")
		time.Sleep(6 * time.Second) // more than the resume margin (5 s)
	}
	last := publish("before", beforeEvents)
	waitDistinct(early+beforeEvents, "before the stop")
	if commit {
		waitCommitted(subs, last)
	}
	time.Sleep(500 * time.Millisecond) // the last acks are out
	for _, n := range group {
		if err := n.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	publish("away", awayEvents)
	time.Sleep(300 * time.Millisecond) // the recorder commits

	group, subs = startGroup()
	total := early + beforeEvents + awayEvents
	waitDistinct(total, "after the restart")
	time.Sleep(time.Second) // a second run would show by now
	mu.Lock()
	defer mu.Unlock()
	for p, n := range runs {
		if n != 1 {
			t.Errorf("%s handled %d times", p, n)
		}
	}
	if len(runs) != total {
		t.Errorf("%d distinct events handled, want %d", len(runs), total)
	}
	for i, s := range subs {
		if r := group[i].Stats().HistoryRejected; r != 0 {
			t.Errorf("member %d: %d recorded lines refused by its keys", i, r)
		}
		ri := s.Resumed()
		t.Logf("member %d resumed: %+v", i, ri)
		if !ri.Done || ri.FromCommitted != commit {
			t.Errorf("member %d: resumed %+v, want done and from the committed offset: %v", i, ri, commit)
		}
		if commit && (ri.Events < awayEvents || ri.Events >= awayEvents+beforeEvents+early) {
			t.Errorf("member %d replayed %d events: want the %d published while away and at most the %d just before, not the early ones", i, ri.Events, awayEvents, beforeEvents)
		}
	}
}

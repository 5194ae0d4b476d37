package history_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestAnycastGroupResumes: a whole anycast group is stopped while 2,000
// events are published; when its members start again they replay the
// group's history and complete every one of those events exactly once,
// and none of the events completed before the stop runs again.
//
// "committed offset": the members start from the group's committed offset
// found in the record. Their window is 1 ms, so a resume from the window
// would miss the 2,000; and events completed well before the stop (200,
// more than the margin before it) are not replayed at all.
//
// "window": the group never committed (the commit interval is longer
// than the test), so the members find no committed offset and replay the
// last ResumeWindow of history.
func TestAnycastGroupResumes(t *testing.T) {
	t.Run("committed offset", func(t *testing.T) {
		// Looking back 20 lines per request: finding the group's last
		// claim takes several requests.
		defer history.SetCommitScan(20)()
		testGroupResumes(t, true)
	})
	t.Run("window", func(t *testing.T) { testGroupResumes(t, false) })
}

func testGroupResumes(t *testing.T, commit bool) {
	srv := ircdtest.Start(t)
	rec, _ := startRecorder(t, srv)
	pub := meshtest.Connect(t, nodeConfig(srv, "jobs"))
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
	waitDistinct := func(n int, what string) {
		deadline := time.Now().Add(60 * time.Second)
		for distinct() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d distinct events handled, want %d", what, distinct(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	startGroup := func() ([]*mesh.Node, []*mesh.AnycastSubscription) {
		var cfgs []mesh.Config
		for i := range 3 {
			cfg := nodeConfig(srv, "workers")
			cfg.Instance = fmt.Sprintf("w%d", i)
			cfg.History = history.NewSource()
			if commit {
				cfg.CommitInterval = 200 * time.Millisecond
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
	publish := func(prefix string, n int) *mesh.PubFuture {
		var last *mesh.PubFuture
		for i := range n {
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
	// waitCommitted waits until every member committed the line of f (on
	// a server without msgids: a line received after f was confirmed).
	waitCommitted := func(subs []*mesh.AnycastSubscription, f *mesh.PubFuture) {
		r, _ := f.Wait(ctx)
		confirmed := time.Now()
		deadline := confirmed.Add(30 * time.Second)
		for _, s := range subs {
			for {
				c := s.Committed()
				at, id := c.At(), c.MsgID
				if (r.MsgID != "" && id == r.MsgID) || (r.MsgID == "" && at.After(confirmed)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("committed %v/%s, want the line of the last event (%s)", at, id, r.MsgID)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	group, subs := startGroup()
	waitTopic(t, rec, "jobs.todo")
	time.Sleep(1500 * time.Millisecond) // the group is ready
	early := 0
	if commit {
		early = 200
		waitCommitted(subs, publish("early", early))
		waitDistinct(early, "early")
		time.Sleep(6 * time.Second) // more than the resume margin (5 s)
	}
	last := publish("before", 200)
	waitDistinct(early+200, "before the stop")
	if commit {
		waitCommitted(subs, last)
	}
	time.Sleep(500 * time.Millisecond) // the last acks are out
	for _, n := range group {
		if err := n.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	publish("away", 2000)
	time.Sleep(300 * time.Millisecond) // the recorder commits

	_, subs = startGroup()
	total := early + 2200
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
		ri := s.Resumed()
		t.Logf("member %d resumed: %+v", i, ri)
		if !ri.Done || ri.FromCommitted != commit {
			t.Errorf("member %d: resumed %+v, want done and from the committed offset: %v", i, ri, commit)
		}
		if commit && (ri.Events < 2000 || ri.Events >= 2200+early) {
			t.Errorf("member %d replayed %d events: want the 2,000 published while away and at most the 200 just before, not the early ones", i, ri.Events)
		}
	}
}

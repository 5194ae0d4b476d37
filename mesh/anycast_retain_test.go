package mesh_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestAnycastRetain: with Retain, the members of a group forget the events
// they saw completed once the retention has passed (no commit tick runs
// meanwhile, so the retention alone does it): every worker ends tracking
// nothing, nothing evicted or refused. Retain and MaxTracked are anycast
// options: a multicast subscription refuses them.
func TestAnycastRetain(t *testing.T) {
	srv := ircdtest.Start(t)
	config := func(service string) mesh.Config {
		cfg := testConfig(srv, service)
		cfg.CommitInterval = time.Hour
		return cfg
	}
	h := newHandled()
	pub, _, subs := anycastGroup(t, config, 2, "jobs.retain", h, mesh.Retain(time.Second), mesh.MaxTracked(10_000))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const events = 200
	for i := range events {
		if _, err := pub.Publish(ctx, "jobs.retain", []byte(fmt.Sprintf("job-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitCompleted(t, subs, events, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		tracked := 0
		for _, s := range subs {
			st := s.ClaimStats()
			tracked += st.Completed + st.Pending
		}
		if tracked == 0 {
			break
		}
		if time.Now().After(deadline) {
			for i, s := range subs {
				t.Logf("worker %d: %+v", i, s.ClaimStats())
			}
			t.Fatalf("%d events still tracked 30 s after their completion, with a retention of 1 s", tracked)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, s := range subs {
		if st := s.ClaimStats(); st.Acked != events || st.Evicted != 0 || st.Refused != 0 {
			t.Errorf("worker %d: %+v", i, st)
		}
	}
	h.mu.Lock()
	h.checkOnceLocked(t, events)
	h.mu.Unlock()

	for _, opt := range []mesh.SubOption{mesh.Retain(time.Second), mesh.MaxTracked(10)} {
		if _, err := pub.Subscribe(ctx, "jobs.other", func(context.Context, *mesh.Message) error { return nil }, opt); err == nil {
			t.Errorf("a multicast subscription took an anycast option")
		}
	}
}

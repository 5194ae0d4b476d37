package mesh_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// TestStateFromRecorder: with no member holding a domain (its owner and
// every reader gone), a newcomer with a history source loads the exact
// state from a recorder's record before its first read returns; an owner
// that comes back then continues the version (§8.5).
func TestStateFromRecorder(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		srv := ircdtest.Start(t)
		hm := historytest.NewMesh(srv, "t", m)
		rec := hm.StartRecorderIn(t, t.TempDir(), "", "rec", recorder.Config{})
		owner := meshtest.Connect(t, stateConfig(srv, m, "cfg", []string{"cfg"}, nil))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		od := mustDomain(t, owner, "cfg")
		if err := od.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		historytest.WaitTopic(t, rec.Recorder, state.Topic("cfg"))
		// 10,000 updates unsigned, a quarter in the signing modes
		// (modeEvents); 1,000 keys in all: several pages.
		updates, keys := modeEvents(m, 10_000), 1_000
		putMany(t, ctx, od, updates, keys, 64, func(i int) []byte { return fmt.Appendf(nil, "value %d %s", i, strings.Repeat("y", i%40)) })
		for k := range 5 { // deletes are in the record too
			if _, err := od.Delete(ctx, fmt.Sprintf("key-%04d", k)); err != nil {
				t.Fatal(err)
			}
		}
		want, err := od.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		channel := strings.ToLower(mesh.Channel("t", state.Topic("cfg")))
		// Updates travel many to a line (batches): wait for the record to
		// stop growing.
		last, since := -1, time.Now()
		waitUntil(t, 60*time.Second, "the recorder to hold every update", func() bool {
			n := len(historytest.StoredIDs(t, rec.Store, channel))
			if n != last {
				last, since = n, time.Now()
			}
			return n > 0 && time.Since(since) > time.Second
		})
		if err := owner.Close(ctx); err != nil {
			t.Fatal(err)
		}

		cfg := stateConfig(srv, m, "late", nil, []string{"cfg"})
		cfg.History = history.NewSource()
		late := meshtest.Connect(t, cfg)
		d := mustDomain(t, late, "cfg")
		sameState(t, want, d)
		if info := d.Info(); info.Available || !info.Stale {
			t.Errorf("no owner: %+v, want stale", info)
		}
		if rec.StateAnswers() == 0 {
			t.Error("the newcomer replayed the record instead of asking the recorder for the latest update of each key")
		}

		// The owner comes back and continues from the loaded version.
		back := meshtest.Connect(t, stateConfig(srv, m, "cfg", []string{"cfg"}, nil))
		e, err := mustDomain(t, back, "cfg").Put(ctx, "key-0999", []byte("after"))
		if err != nil {
			t.Fatal(err)
		}
		if e.DomainVersion != want.Version+1 {
			t.Fatalf("the returning owner wrote at domain version %d, want %d", e.DomainVersion, want.Version+1)
		}
	})
}

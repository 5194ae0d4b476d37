package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/internal/proctest"
	"github.com/meshbot/meshbot/mesh"
)

// TestRecorderKilledUnderLoad: a `meshbot history` process is SIGKILLed
// while 20,000 events stream into a topic, and started again on the same
// store. The store opens without damage, its lines of the topic are
// numbered without a gap, every recorded event is one that was published,
// in publish order, and the restarted recorder records again.
func TestRecorderKilledUnderLoad(t *testing.T) {
	srv := ircdtest.Start(t)
	storePath := filepath.Join(t.TempDir(), "history.db")
	recArgs := []string{"--store", storePath, "--rescan", "200ms", "--skip-heartbeats"}
	startRec := func() *proctest.Proc {
		return proctest.Start(t, append([]string{"history", "--server", srv.Addr(), "--namespace", "e2e", "--instance", "r1"}, recArgs...)...)
	}
	r := startRec()
	r.WaitReady(startupBudget)

	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service = srv.Addr(), "e2e", "loadpub"
	pub := meshtest.Connect(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := pub.Publish(ctx, "load", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the recorder joined the topic
	const events = 20000
	done := make(chan error, 1)
	go func() {
		var last *mesh.PubFuture
		for i := range events {
			f, err := pub.PublishAsync(ctx, "load", []byte(fmt.Sprintf("load-%05d", i)))
			if err != nil {
				done <- err
				return
			}
			last = f
		}
		_, err := last.Wait(ctx)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // mid-stream
	r.Kill()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The store as the killed process left it.
	st, err := store.Open(store.Options{Path: storePath})
	if err != nil {
		t.Fatalf("the store after SIGKILL: %v", err)
	}
	ch := mesh.Channel("e2e", "load")
	var lines, seq uint64
	last := -1
	dec := newEventDecoder()
	err = st.Scan(ch, 1, func(rec store.Record) bool {
		lines++
		if seq != 0 && rec.Seq != seq+1 {
			t.Errorf("line %d follows line %d", rec.Seq, seq)
		}
		seq = rec.Seq
		for _, p := range dec(rec) {
			var i int
			if _, err := fmt.Sscanf(p, "load-%05d", &i); err != nil {
				continue // the warm-up
			}
			if i <= last {
				t.Errorf("event %d recorded after %d", i, last)
			}
			last = i
		}
		return true
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if lines == 0 || last < 0 {
		t.Fatalf("nothing recorded before the kill (%d lines)", lines)
	}
	t.Logf("killed mid-stream: %d lines kept, events up to %d of %d", lines, last, events)

	// Restarted on the same store, it records again.
	r = startRec()
	r.WaitReady(startupBudget)
	time.Sleep(time.Second)
	if _, err := pub.Publish(ctx, "load", []byte("after-restart")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if code := r.Terminate(10 * time.Second); code != 0 {
		t.Errorf("the recorder exited with %d", code)
	}
	st, err = store.Open(store.Options{Path: storePath})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	found := false
	err = st.Scan(ch, seq+1, func(rec store.Record) bool {
		for _, p := range dec(rec) {
			found = found || p == "after-restart"
		}
		return true
	})
	if err != nil && !errors.Is(err, store.ErrClosed) {
		t.Fatal(err)
	}
	if !found {
		t.Error("the restarted recorder did not record")
	}
}

// newEventDecoder returns a function giving the payloads of the events a
// recorded line carries.
func newEventDecoder() func(store.Record) []string {
	dec := envelope.NewDecoder(envelope.DecoderConfig{})
	return func(rec store.Record) []string {
		envs, _, _ := dec.Decode(rec.Nick, rec.Tags, rec.Body, rec.Time)
		var out []string
		for _, env := range envs {
			if env.Kind == envelope.KindEvent {
				out = append(out, string(env.Payload))
			}
		}
		return out
	}
}

package history_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

func nodeConfig(srv *ircd.Server, service string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server = srv.Addr()
	cfg.Namespace = "h"
	cfg.Service = service
	return cfg
}

// startRecorder runs a recorder with a store in a temporary directory.
func startRecorder(t testing.TB, srv *ircd.Server) (*history.Recorder, *history.Store) {
	t.Helper()
	st, err := history.Open(history.Options{Path: filepath.Join(t.TempDir(), "history.db")})
	if err != nil {
		t.Fatal(err)
	}
	n := meshtest.Connect(t, nodeConfig(srv, history.Service))
	rec := history.NewRecorder(n, st, history.RecorderConfig{Rescan: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return rec, st
}

// TestReplayTwentyThousand records 20,000 events and replays them: all of
// them, once, in publish order; then from an offset in the middle: the
// rest, and nothing before it.
func TestReplayTwentyThousand(t *testing.T) {
	srv := ircdtest.Start(t)
	rec, _ := startRecorder(t, srv)
	nodes := meshtest.ConnectAll(t, nodeConfig(srv, "orders"), nodeConfig(srv, "reader"))
	pub, reader := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := reader.WaitFor(ctx, history.Service); err != nil {
		t.Fatal(err)
	}
	// The recorder finds the topic once its channel exists: publish a
	// first event (before the recorder joins: not recorded), wait until
	// the recorder is in the channel, then the events.
	const topic, events = "orders.created", 20000
	if _, err := pub.Publish(ctx, topic, []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	waitTopic(t, rec, topic)
	publish := func(i int) *mesh.PubFuture {
		f, err := pub.PublishAsync(ctx, topic, []byte(fmt.Sprintf("order-%05d", i)))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	var last *mesh.PubFuture
	for i := range events {
		last = publish(i)
	}
	if _, err := last.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// Replay from the start until all are there (the recorder commits
	// every 100 ms).
	var got []string
	var offsets []history.Offset
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, offsets = got[:0], offsets[:0]
		stats, err := history.Replay(ctx, reader, topic, history.ReplayOptions{}, func(r history.Replayed) error {
			if r.Envelope.Kind == envelope.KindEvent && string(r.Envelope.Payload) != "warm-up" {
				got = append(got, string(r.Envelope.Payload))
				offsets = append(offsets, r.Offset)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= events || time.Now().After(deadline) {
			t.Logf("replayed %d envelopes in %d lines, %d pages", stats.Envelopes, stats.Lines, stats.Pages)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(got) != events {
		t.Fatalf("replayed %d events, want %d", len(got), events)
	}
	for i, p := range got {
		if want := fmt.Sprintf("order-%05d", i); p != want {
			t.Fatalf("event %d is %s, want %s", i, p, want)
		}
	}

	// From an offset: strictly after its line. Events of the same line (a
	// batch) share its offset; start after the line of event 12,345.
	mid := offsets[12345]
	first := -1
	n := 0
	_, err := history.Replay(ctx, reader, topic, history.ReplayOptions{After: &mid}, func(r history.Replayed) error {
		if r.Envelope.Kind != envelope.KindEvent {
			return nil
		}
		var i int
		fmt.Sscanf(string(r.Envelope.Payload), "order-%05d", &i)
		if first < 0 {
			first = i
		}
		if i != first+n {
			return fmt.Errorf("event %d after %d", i, first+n-1)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if first <= 12345 || first > 12345+256 || first+n != events {
		t.Fatalf("replay after the line of event 12345 gave events %d..%d", first, first+n-1)
	}
	if offsets[first-1] != mid || offsets[first] == mid {
		t.Errorf("the replay after %s started at event %d, whose line is %s", mid, first, offsets[first])
	}
}

// waitTopic waits until the recorder is in topic's channel.
func waitTopic(t testing.TB, rec *history.Recorder, topic string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(rec.Topics(), topic) {
		if time.Now().After(deadline) {
			t.Fatalf("the recorder did not find %s in 20 s (it records %v)", topic, rec.Topics())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

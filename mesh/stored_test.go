package mesh_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// recorded reports whether the record of topic holds envelope id, read
// with n's trust.
func recorded(t *testing.T, n *mesh.Node, topic string, id envelope.ID) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	found := false
	_, err := history.Replay(ctx, n, topic, history.ReplayOptions{}, func(r history.Replayed) error {
		if r.Envelope.ID == id {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("replaying %s: %v", topic, err)
	}
	return found
}

// TestPublishStored: with a recorder running, a stored publish to a topic
// nobody subscribes to returns once the recorder journaled it, and the
// event is in the record; a plain publish to such a topic is recorded too;
// a domain write with Stored is in the recorder's index when it returns;
// with no recorder, stored ones fail with ErrNotStored and nothing is
// sent (§7.9).
func TestPublishStored(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		srv := ircdtest.Start(t)
		cfg := stateConfig(srv, m, "cfg", []string{"cfg"}, nil)
		cfg.History = history.NewSource()
		pub := meshtest.Connect(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()

		// No recorder: refused, nothing published.
		start := time.Now()
		_, err := pub.PublishStored(ctx, "audit.log", []byte("lost"))
		if !errors.Is(err, mesh.ErrNotStored) || !errors.Is(err, mesh.ErrNoResponders) {
			t.Fatalf("without a recorder: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the refusal took %v", d)
		}
		d := mustDomain(t, pub, "cfg")
		if _, err := d.Put(ctx, "k", []byte("v"), mesh.Stored()); !errors.Is(err, mesh.ErrNotStored) {
			t.Fatalf("stored write without a recorder: %v", err)
		}

		hm := historytest.NewMesh(srv, "t", m)
		rec := hm.StartRecorderIn(t, t.TempDir(), "", "rec", recorder.Config{Rescan: time.Hour}) // it finds topics only when asked
		waitUntil(t, 10*time.Second, "the recorder's heartbeat", func() bool { return len(pub.Members(history.Service)) > 0 })

		ack, err := pub.PublishStored(ctx, "audit.log", []byte("kept"))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Recorder != history.Service+"/"+rec.Node.Instance() {
			t.Errorf("stored by %q", ack.Recorder)
		}
		if !recorded(t, pub, "audit.log", ack.ID) {
			t.Fatal("the stored event is not in the record")
		}
		// A plain publish to another topic nobody subscribes to: the
		// recorder (which looks for topics only when asked, here) is in
		// its channel before the line.
		plain, err := pub.Publish(ctx, "audit.plain", []byte("kept too"))
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the plain event in the record", func() bool { return recorded(t, pub, "audit.plain", plain.ID) })

		// A domain's channel is tracked when the domain is mirrored; a
		// stored write is in the recorder's index when it returns.
		e, err := d.Put(ctx, "k", []byte("kept"), mesh.Stored())
		if err != nil {
			t.Fatal(err)
		}
		kept, _, err := history.KeyVersions(ctx, pub, "cfg", "k", 0, func(r mesh.Recorded) error {
			if r.Envelope.ID != e.ID {
				t.Errorf("version %s in the index, want %s", r.Envelope.ID.Short(), e.ID.Short())
			}
			return nil
		})
		if err != nil || kept != 1 {
			t.Fatalf("the stored write's versions: %d, %v", kept, err)
		}
		if !recorded(t, pub, state.Topic("cfg"), e.ID) {
			t.Fatal("the stored write is not in the record")
		}
	})
}

// BenchmarkPublishStored compares, in the same run, the confirm latency of
// a stored publish (Publish, then a recorder's journal confirmation) with
// a plain publish's (the server's confirm), sequential 200-byte events to
// a topic a recorder records, alternating in chunks of 100. Reported: p50
// and p99 of each in µs, and stored/plain for each.
func BenchmarkPublishStored(b *testing.B) {
	srv := ircdtest.Start(b)
	hm := historytest.NewMesh(srv, "bench", nil)
	hm.StartRecorderIn(b, b.TempDir(), "", "rec", recorder.Config{})
	cfg := benchConfig(srv, "pub")
	cfg.History = history.NewSource()
	_, nodes := benchConnect(b, srv, nil, []mesh.Config{cfg})
	n := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	deadline := time.Now().Add(10 * time.Second)
	for len(n.Members(history.Service)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	payload := make([]byte, 200)
	if _, err := n.PublishStored(ctx, "audit", payload); err != nil { // tracked, joined
		b.Fatal(err)
	}
	const rounds, chunk = 1000, 100
	var plain, stored []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := 0; i < rounds; i += chunk {
			for range chunk {
				start := time.Now()
				if _, err := n.Publish(ctx, "audit", payload); err != nil {
					b.Fatal(err)
				}
				plain = append(plain, time.Since(start))
			}
			for range chunk {
				start := time.Now()
				if _, err := n.PublishStored(ctx, "audit", payload); err != nil {
					b.Fatal(err)
				}
				stored = append(stored, time.Since(start))
			}
		}
	}
	b.StopTimer()
	slices.Sort(plain)
	slices.Sort(stored)
	pct := func(d []time.Duration, p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) }
	b.ReportMetric(pct(plain, 0.5), "plain_p50_µs")
	b.ReportMetric(pct(stored, 0.5), "stored_p50_µs")
	b.ReportMetric(pct(plain, 0.99), "plain_p99_µs")
	b.ReportMetric(pct(stored, 0.99), "stored_p99_µs")
	b.ReportMetric(pct(stored, 0.5)/pct(plain, 0.5), "p50_stored/plain")
	b.ReportMetric(pct(stored, 0.99)/pct(plain, 0.99), "p99_stored/plain")
}

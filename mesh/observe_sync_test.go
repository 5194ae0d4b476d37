package mesh_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestObserverSyncAfterEarlierLines: a request handler that calls
// Observer.Sync answers after the observer's callback took every line the
// server sent before the request, however slow the callback (a recorder
// answering a read with the lines just published).
func TestObserverSyncAfterEarlierLines(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	rec := connect(t, testConfig(srv, "rec"))
	pub := connect(t, testConfig(srv, "pub"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var taken atomic.Int64
	o, err := rec.Observe(ctx, "synced", func(ob mesh.Observation) {
		if ob.Envelope != nil {
			time.Sleep(20 * time.Millisecond) // a slow callback: the lines wait in its queue
			taken.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	if err := rec.Handle("count", func(ctx context.Context, _ *mesh.Request) ([]byte, error) {
		if err := o.Sync(ctx); err != nil {
			return nil, err
		}
		return []byte(strconv.FormatInt(taken.Load(), 10)), nil
	}); err != nil {
		t.Fatal(err)
	}
	const events = 20
	for i := range events {
		if _, err := pub.Publish(ctx, "synced", []byte(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	out, err := pub.Request(ctx, "rec", "count", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != strconv.Itoa(events) {
		t.Fatalf("the observer had taken %s lines when Sync returned, want %d", got, events)
	}
}

// TestObservationTagsKept, in every trust mode: an observer's callback
// runs after the node has read later lines; the tags of each observation
// are still its own line's (the node's reader parses every line's tags
// into one map).
func TestObservationTagsKept(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) { testObservationTagsKept(t, modeConfig(srv, m)) })
}

func testObservationTagsKept(t *testing.T, config func(string) mesh.Config) {
	rec := connect(t, config("rec"))
	pub := connect(t, config("pub"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const events = 20
	got := make(chan mesh.Observation, events)
	o, err := rec.Observe(ctx, "tagged", func(ob mesh.Observation) {
		if ob.Envelope != nil {
			time.Sleep(10 * time.Millisecond) // the lines after it are read meanwhile
			got <- ob
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop()
	for i := range events {
		if _, err := pub.Publish(ctx, "tagged", []byte(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range events {
		var ob mesh.Observation
		select {
		case ob = <-got:
		case <-ctx.Done():
			t.Fatalf("%d of %d observations", len(seen), events)
		}
		if ob.Tags["msgid"] != ob.MsgID {
			t.Fatalf("observation %s: msgid tag %q, MsgID %q", ob.Envelope.ID.Short(), ob.Tags["msgid"], ob.MsgID)
		}
		if ob.MsgID != "" && seen[ob.MsgID] {
			t.Fatalf("two observations with the tags of line %s", ob.MsgID)
		}
		seen[ob.MsgID] = true
		if ob.Carrier == envelope.CarrierTag && ob.Tags[envelope.TagData] == "" {
			t.Fatalf("observation %s came in a tag, its tags have none: %v", ob.Envelope.ID.Short(), ob.Tags)
		}
	}
}

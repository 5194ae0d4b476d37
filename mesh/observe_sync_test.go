package mesh_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
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

package history_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestReplayFromChatHistory, in each trust mode: with no recorder
// running, Replay reads the server's CHATHISTORY where it has one (ergo):
// every event, in order, verified with the reader's keys, from the start,
// after an offset and since a time. Where the server has none, Replay
// fails with ErrNoResponders.
func TestReplayFromChatHistory(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	historytest.ForEachMode(t, srv, "ch", testReplayFromChatHistory)
}

func testReplayFromChatHistory(t *testing.T, m *historytest.Mesh) {
	nodes := meshtest.ConnectAll(t, m.Config("orders"), m.Config("reader"))
	pub, reader := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events := 1500 // more than one CHATHISTORY page (1,000 lines on ergo)
	if reader.ChatHistoryLimit() == 0 {
		events = 10 // no CHATHISTORY: the count does not matter
	}
	var acks []mesh.PubAck
	var times []time.Time
	for i := range events {
		ack, err := pub.Publish(ctx, "orders", []byte(fmt.Sprintf("e-%04d", i)))
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
		times = append(times, time.Now())
	}
	replay := func(o history.ReplayOptions) ([]string, history.ReplayStats, error) {
		var got []string
		o.OnReject = func(err error) { t.Errorf("a line refused by the reader's keys: %v", err) }
		st, err := history.Replay(ctx, reader, "orders", o, func(r history.Replayed) error {
			got = append(got, string(r.Envelope.Payload))
			return nil
		})
		return got, st, err
	}
	got, st, err := replay(history.ReplayOptions{})
	if reader.ChatHistoryLimit() == 0 {
		if !errors.Is(err, mesh.ErrNoResponders) {
			t.Fatalf("Replay with no recorder and no CHATHISTORY: %v, want ErrNoResponders", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got []string, from int) {
		t.Helper()
		if len(got) != events-from {
			t.Fatalf("%s: %d events, want %d", what, len(got), events-from)
		}
		for i, p := range got {
			if want := fmt.Sprintf("e-%04d", from+i); p != want {
				t.Fatalf("%s: event %d is %s, want %s", what, i, p, want)
			}
		}
	}
	check("from the start", got, 0)
	if st.Pages < 2 || st.Last.MsgID != acks[events-1].MsgID {
		t.Fatalf("stats %+v: want several pages, ending at the last line", st)
	}
	// After the line of event 1199.
	off, err := envelope.ParseOffset(st.Last.At().Format(time.RFC3339Nano) + "/" + acks[1199].MsgID)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err = replay(history.ReplayOptions{After: &off})
	if err != nil {
		t.Fatal(err)
	}
	check("after an offset", got, 1200)
	// Since a time: at least the events published after it.
	got, _, err = replay(history.ReplayOptions{Since: times[1399]})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < events-1400 || got[len(got)-1] != fmt.Sprintf("e-%04d", events-1) {
		t.Fatalf("since a time: %d events ending %v", len(got), got[len(got)-1:])
	}
}

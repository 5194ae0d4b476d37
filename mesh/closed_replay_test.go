package mesh_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
)

// TestForgedLinesReplayed (docs/PROTOCOL.md §4.4): forged lines a
// recorder kept are refused again when the topic is replayed, since a
// replayed line keeps the nick that sent it. A raw client re-sends the
// shop's captured events and sends new ones claiming the shop; the
// recorder stores them all; a replay hands on only the shop's own events,
// each once, and refuses the others (wrong-sender among them) — unsigned
// as signed.
func TestForgedLinesReplayed(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode *meshtest.Mode) { // each mode on a server of its own
		srv := ircdtest.Start(t)
		tags := ircdtest.Probe(t, srv).Has("message-tags")
		m := historytest.NewMesh(srv, "fr", mode)
		rec := m.StartRecorderIn(t, t.TempDir(), "", "r", recorder.Config{})
		shopCfg := m.Config("shop")
		shopCfg.Instance = "1"
		nodes := connectAll(t, shopCfg, m.Config("audit"))
		shop, audit := nodes[0], nodes[1]
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := audit.WaitFor(ctx, history.Service); err != nil {
			t.Fatal(err)
		}
		channel := m.Channel("orders")
		mallory := dialRaw(t, srv, "mallory")
		mallory.send("JOIN " + channel)
		mallory.waitFor(" 366 ")
		if _, err := shop.Publish(ctx, "orders", []byte("warm-up")); err != nil {
			t.Fatal(err)
		}
		historytest.WaitTopic(t, rec.Recorder, "orders")

		const legit = 5
		want := map[envelope.ID]bool{}
		for i := range legit {
			ack, err := shop.Publish(ctx, "orders", fmt.Appendf(nil, "legit-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			want[ack.ID] = true
		}
		captured := mallory.capture(t, shop.Nick(), legit)
		forged := 0
		for _, s := range captured {
			mallory.sendEnvelope(t, channel, s, tags) // an old line again, from another nick
			forged++
		}
		for i := range 3 {
			claim := envelope.New(envelope.KindEvent, envelope.Sender{Service: "shop", Instance: "1", Incarnation: 1}, "orders", fmt.Appendf(nil, "impostor-%d", i), time.Now())
			b, _ := envelope.Seal(claim, nil)
			mallory.sendEnvelope(t, channel, b, tags) // a new one claiming the shop
			forged++
		}
		mallory.sync(t)
		end, err := shop.Publish(ctx, "orders", []byte("end"))
		if err != nil {
			t.Fatal(err)
		}
		want[end.ID] = true
		// Replay until the last event is in the record (the recorder
		// may still be writing it).
		var reasons map[string]int
		var got map[envelope.ID]int
		deadline := time.Now().Add(20 * time.Second)
		for got[end.ID] == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the replay never reached the last event (handed on %d, refused %v)", len(got), reasons)
			}
			reasons, got = map[string]int{}, map[envelope.ID]int{}
			if _, err := history.Replay(ctx, audit, "orders", history.ReplayOptions{OnReject: func(err error) { reasons[envelope.Reason(err)]++ }},
				func(r history.Replayed) error {
					if !envelope.NickMatches(r.Nick, r.Envelope.Sender) {
						t.Errorf("replay handed on %s as %s/%s from nick %s", r.Envelope.ID.Short(), r.Envelope.Sender.Service, r.Envelope.Sender.Instance, r.Nick)
					}
					if string(r.Envelope.Payload) != "warm-up" {
						got[r.Envelope.ID]++
					}
					return nil
				}); err != nil {
				t.Fatal(err)
			}
			if got[end.ID] == 0 {
				time.Sleep(200 * time.Millisecond)
			}
		}
		for id, n := range got {
			if !want[id] || n != 1 {
				t.Errorf("replay handed on %s %d times (the shop's own: %v)", id.Short(), n, want[id])
			}
		}
		if len(got) != len(want) {
			t.Errorf("replay handed on %d of the shop's %d events", len(got), len(want))
		}
		refused := 0
		for _, n := range reasons {
			refused += n
		}
		if refused < forged || reasons["wrong-sender"] < 3 {
			t.Errorf("replay refused %v; want the %d forged lines refused, the 3 impostors as wrong-sender", reasons, forged)
		}
		t.Logf("%s: replay refused %v", mode.Name, reasons)
	})
}

package claims

import (
	"runtime"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// BenchmarkGroupMemory measures what a bystander member of a group of
// three holds per event: 50,000 events, each claimed and acked by another
// member within the retention, fed as envelopes (events with 200-byte
// payloads), then the retention passed. It reports the live heap per
// event tracked (B/event, completed events remembered for the retention)
// and the live heap left once the retention has passed (B-after-retain:
// everything but the structures' own size should be returned).
func BenchmarkGroupMemory(b *testing.B) {
	const n = 50_000
	ms := []heartbeat.Member{}
	for _, inst := range []string{"a", "b", "c"} {
		ms = append(ms, heartbeat.Member{Service: "svc", Instance: inst, Incarnation: 1, State: heartbeat.Alive,
			Beat: heartbeat.Beat{Subs: []heartbeat.Sub{{Topic: "jobs", Group: "svc"}}}})
	}
	self := envelope.Sender{Service: "svc", Instance: "a", Incarnation: 1}
	other := envelope.Sender{Service: "svc", Instance: "b", Incarnation: 1}
	line := func(kind envelope.Kind, from envelope.Sender, items []Item) *envelope.Envelope {
		payload, _ := EncodeItems(items)
		return &envelope.Envelope{Version: envelope.Version, Kind: kind, Sender: from, Topic: "svc", Payload: payload, LeaseMillis: 30000}
	}
	var perEvent, after float64
	for b.Loop() {
		heap0 := liveHeap()
		g := NewGroup(GroupConfig{Config: Config{Retain: time.Minute}, Topic: "jobs", Group: "svc", Sender: self})
		now := time.Unix(1e9, 0)
		g.Members(ms, now)
		g.Session(now.Add(1000*time.Hour), now)
		g.SetReady(false, now) // a bystander: it claims nothing
		var batch []Item
		for i := range n {
			id := envelope.NewID()
			now = now.Add(20 * time.Microsecond)
			ev := &envelope.Envelope{Version: envelope.Version, Kind: envelope.KindEvent, ID: id, Topic: "jobs",
				Sender: envelope.Sender{Service: "pub", Instance: "x"}, Payload: make([]byte, 200)}
			g.Receive(Received{Envelope: ev, From: "pub-x", ServerTime: now, MsgID: "m" + id.Short()}, now)
			batch = append(batch, Item{Event: id, Epoch: 1, Attempt: 1})
			if len(batch) == 40 || i == n-1 { // claims and acks come batched
				g.Receive(Received{Envelope: line(envelope.KindClaim, other, batch)}, now)
				acks := append([]Item(nil), batch...)
				for j := range acks {
					acks[j].Attempt = 0
				}
				g.Receive(Received{Envelope: line(envelope.KindAck, other, acks)}, now)
				batch = batch[:0]
				g.Tick(now)
				g.Ready()
			}
		}
		perEvent = float64(liveHeap()-heap0) / n
		for range 4 { // past the retention, as the driver ticks
			now = now.Add(30 * time.Second)
			g.Tick(now)
			g.Ready()
		}
		after = float64(liveHeap() - heap0)
		runtime.KeepAlive(g)
	}
	b.ReportMetric(perEvent, "B/event")
	b.ReportMetric(after, "B-after-retain")
}

// liveHeap is the live heap after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

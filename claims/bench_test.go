package claims

import (
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// BenchmarkCorePerEvent measures the core's work for one event on one
// member of a group of three: seeing the event, the winner's claim, its
// ack — as the owner (claims, starts, acks) and as a bystander.
func BenchmarkCorePerEvent(b *testing.B) {
	ms := []Member{{Claimant: Claimant{"svc/a", 1}, State: heartbeat.Alive}, {Claimant: Claimant{"svc/b", 1}, State: heartbeat.Alive}, {Claimant: Claimant{"svc/c", 1}, State: heartbeat.Alive}}
	for _, role := range []string{"owner", "bystander"} {
		b.Run(role, func(b *testing.B) {
			c := New(Config{Self: ms[0].Claimant, Retain: time.Second})
			now := time.Unix(1e9, 0)
			c.Members(ms, now)
			c.SetReady(true, now)
			var id envelope.ID
			n := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				// Find an event whose owner is (or is not) us.
				for {
					n++
					id[0], id[1], id[2], id[3], id[4] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24), byte(n>>32)
					probe := &event{id: id, epoch: 1}
					if (c.owner(probe) == "svc/a") == (role == "owner") {
						break
					}
				}
				now = now.Add(10 * time.Microsecond)
				c.Event(id, "", now)
				it := Item{Event: id, Epoch: 1, Attempt: 1}
				who := ms[1].Claimant
				if role == "owner" {
					who = ms[0].Claimant
				}
				c.Claim(who, it, 30*time.Second, now)
				if role == "owner" {
					c.Tick(now.Add(60 * time.Millisecond))
					c.Done(id, 1, nil, 0, now)
				}
				c.Ack(who, it, now)
				c.Tick(now)
			}
		})
	}
}

// BenchmarkGroupPerEvent measures the whole protocol's work for one event
// on one member of a group of three (what the runtime does per event,
// but the socket): the event, the winner's CLAIM and ACK as envelopes
// (their items decoded), and Ready — as the owner (it also builds its
// claim and ack envelopes, starts and acks) and as a bystander.
func BenchmarkGroupPerEvent(b *testing.B) {
	ms := []heartbeat.Member{}
	for _, inst := range []string{"a", "b", "c"} {
		ms = append(ms, heartbeat.Member{Service: "svc", Instance: inst, Incarnation: 1, State: heartbeat.Alive,
			Beat: heartbeat.Beat{Subs: []heartbeat.Sub{{Topic: "jobs", Group: "svc"}}}})
	}
	self := envelope.Sender{Service: "svc", Instance: "a", Incarnation: 1}
	other := envelope.Sender{Service: "svc", Instance: "b", Incarnation: 1}
	for _, role := range []string{"owner", "bystander"} {
		b.Run(role, func(b *testing.B) {
			var ids uint64
			g := NewGroup(GroupConfig{Config: Config{Retain: time.Second}, Topic: "jobs", Group: "svc", Sender: self,
				NewID: func() envelope.ID {
					ids++
					var id envelope.ID
					id[0], id[1], id[2] = 0xff, byte(ids), byte(ids>>8)
					return id
				}})
			now := time.Unix(1e9, 0)
			g.Members(ms, now)
			g.Session(now.Add(1000*time.Hour), now)
			g.SetReady(true, now)
			line := func(kind envelope.Kind, from envelope.Sender, it Item) *envelope.Envelope {
				payload, _ := EncodeItems([]Item{it})
				return &envelope.Envelope{Version: envelope.Version, Kind: kind, Sender: from, Topic: "svc", Payload: payload, LeaseMillis: 30000}
			}
			var id envelope.ID
			n := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				for {
					n++
					id[0], id[1], id[2], id[3], id[4] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24), byte(n>>32)
					probe := &event{id: id, epoch: 1}
					if (g.core.owner(probe) == "svc/a") == (role == "owner") {
						break
					}
				}
				now = now.Add(10 * time.Microsecond)
				ev := &envelope.Envelope{Version: envelope.Version, Kind: envelope.KindEvent, ID: id, Topic: "jobs"}
				g.Receive(Received{Envelope: ev, ServerTime: now, MsgID: "m"}, now)
				who, it := other, Item{Event: id, Epoch: 1, Attempt: 1}
				if role == "owner" {
					who = self
					g.Ready()
				}
				g.Receive(Received{Envelope: line(envelope.KindClaim, who, it)}, now)
				if role == "owner" {
					g.Tick(now.Add(60 * time.Millisecond))
					g.Done(id, 1, nil, 0, now)
					g.Ready()
				}
				it.Attempt = 0
				g.Receive(Received{Envelope: line(envelope.KindAck, who, it)}, now)
				g.Tick(now)
				g.Ready()
			}
		})
	}
}

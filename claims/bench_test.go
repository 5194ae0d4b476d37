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
	ms := []Member{{Claimant{"svc/a", 1}, heartbeat.Alive}, {Claimant{"svc/b", 1}, heartbeat.Alive}, {Claimant{"svc/c", 1}, heartbeat.Alive}}
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

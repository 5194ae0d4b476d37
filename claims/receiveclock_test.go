package claims_test

import (
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Committed offsets on a server without server-time (§6.13): every offset
// is a time on its member's own receive clock. Member b receives the
// lines a little after a does, so that every event's time at b is later
// than the offset a claims for its completed prefix, and than the offset
// the group commits. b still forgets, once they are older than the
// rejoin margin, the completed events it saw before the committed
// claim's line (they reached it first: the server relays lines in the
// order it takes them); an event not completed at b is kept. With
// server-time the same lines keep the committed offset's precision: b
// forgets the events up to it, not up to the claim's line.
func TestCommittedOnReceiveClock(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serverTime bool
		claimed    time.Duration // a's prefix, after gt0
		completed  int           // what b remembers once the commit is 10 s old
	}{
		// a's clock runs ahead: it saw event 3 before b saw event 0.
		{"receive clock", false, 500 * time.Microsecond, 0},
		// One clock, the server's: a's prefix is event 2's line.
		{"server-time", true, 2 * time.Millisecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := receiveClockMember(t)
			var ids uint64 = 100
			from := func(instance string, kind envelope.Kind, payload []byte) *envelope.Envelope {
				ids++
				return &envelope.Envelope{Version: envelope.Version, Kind: kind, ID: seqID(ids), Time: gt0.UnixNano(),
					Sender: envelope.Sender{Service: "svc", Instance: instance, Incarnation: 1}, Topic: "workers", Payload: payload}
			}
			// now is b's receive time of a line (1 ms, 2 ms...); with
			// server-time, the server's time of it is 1 ms earlier.
			now := gt0
			line := func(env *envelope.Envelope) {
				t.Helper()
				now = now.Add(time.Millisecond)
				r := claims.Received{Envelope: env, From: "nick-" + env.Sender.Instance}
				if tc.serverTime {
					r.ServerTime = now.Add(-time.Millisecond)
				}
				if !g.Receive(r, now) {
					t.Fatalf("%s not taken", env.Kind)
				}
			}
			var items []claims.Item
			for i := range uint64(5) {
				line(eventEnv(i))
				items = append(items, claims.Item{Event: eventEnv(i).ID, Epoch: 1, Attempt: 1})
			}
			claim, _ := claims.EncodeItems(items)
			line(from("a", envelope.KindClaim, claim))
			acks := make([]claims.Item, 4) // events 0 to 3 complete; 4 stays pending
			for i := range acks {
				acks[i] = claims.Item{Event: items[i].Event, Epoch: 1}
			}
			ack, _ := claims.EncodeItems(acks)
			line(from("a", envelope.KindAck, ack))
			aPrefix := envelope.OffsetAt(gt0.Add(tc.claimed), "")
			payload, err := claims.EncodeHistoryClaim(aPrefix, envelope.Offset{})
			if err != nil {
				t.Fatal(err)
			}
			hc := from("a", envelope.KindHistoryClaim, payload)
			line(hc)
			vote := g.Ready().Send
			if len(vote) != 1 || vote[0].Kind != envelope.KindHistoryAck {
				t.Fatalf("b answered the claim with %v, want one HistoryAck", vote)
			}
			line(vote[0]) // b's own vote comes back
			votePayload, _ := claims.EncodeOffset(aPrefix)
			cAck := from("c", envelope.KindHistoryAck, votePayload)
			cAck.Correlation = hc.ID
			line(cAck)
			if got := g.Committed(); got != aPrefix {
				t.Fatalf("committed %v, want a's claim %v", got, aPrefix)
			}
			g.Commit(now)
			if s := g.Stats(); s.Completed != 4 || s.Pending != 1 {
				t.Fatalf("just after the commit b remembers %d completed, %d pending; want 4 and 1 (rejoin margin)", s.Completed, s.Pending)
			}
			g.Commit(now.Add(10 * time.Second))
			if s := g.Stats(); s.Completed != tc.completed || s.Pending != 1 {
				t.Fatalf("10 s after the commit b remembers %d completed, %d pending; want %d and 1", s.Completed, s.Pending, tc.completed)
			}
		})
	}
}

// receiveClockMember is member b of a group a, b, c, all alive: ready
// neither to claim nor to be claimed for, it follows a's claims and votes.
func receiveClockMember(t *testing.T) *claims.Group {
	t.Helper()
	var ids uint64
	g := claims.NewGroup(claims.GroupConfig{Topic: "jobs", Group: "workers",
		Sender: envelope.Sender{Service: "svc", Instance: "b", Incarnation: 1},
		NewID:  func() envelope.ID { ids++; return seqID(ids) }})
	var view []heartbeat.Member
	for _, m := range []string{"a", "b", "c"} {
		view = append(view, member("svc", m, 1, heartbeat.Alive, "jobs", "workers"))
	}
	g.Members(view, gt0)
	g.Session(gt0.Add(time.Hour), gt0)
	return g
}

package claims

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Go tests of the Core that are not scenarios. The scenarios — who claims,
// safe start, acks, nacks, takeovers, fencing, releases, dead letters,
// memory — are scripts in testdata/scripts, replayed through Group by
// TestScripts (script_test.go).

var ct0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	ctLease = 10 * time.Second
	idA     = "svc/a"
	idB     = "svc/b"
	idC     = "svc/c"
)

var ctAll = []string{idA, idB, idC}

func at(d time.Duration) time.Time { return ct0.Add(d) }

func who(id string) Claimant { return Claimant{ID: id, Incarnation: 1} }

// alive returns the members, all Alive at incarnation 1.
func alive(ids ...string) []Member {
	ms := make([]Member, 0, len(ids))
	for _, id := range ids {
		ms = append(ms, Member{Claimant: who(id), State: heartbeat.Alive})
	}
	return ms
}

// testID returns a deterministic event id.
func testID(n uint64) envelope.ID {
	var id envelope.ID
	copy(id[:], "claimtest")
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

// newCore builds the Core of member self, fed the members, a far session
// and SetReady(true), all at ct0.
func newCore(t *testing.T, self string, ms []Member) *Core {
	t.Helper()
	c := New(Config{Self: who(self), Lease: ctLease, Settle: 20 * time.Millisecond, ClaimTimeout: time.Second, Skew: 200 * time.Millisecond})
	wantNone(t, c.Members(ms, ct0), "Members")
	wantNone(t, c.Session(ct0.Add(1000*time.Hour), ct0), "Session")
	wantNone(t, c.SetReady(true, ct0), "SetReady")
	return c
}

func item(id envelope.ID, epoch uint64, attempt uint32) Item {
	return Item{Event: id, Epoch: epoch, Attempt: attempt}
}

func fmtActs(acts []Action) string {
	var b strings.Builder
	for i, a := range acts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s e%d a%d %q", a.Kind, a.Event.Short(), a.Epoch, a.Attempt, a.Reason)
	}
	return "[" + b.String() + "]"
}

// wantNone requires no action of the kinds given (of any kind without).
func wantNone(t *testing.T, acts []Action, what string, kinds ...ActionKind) {
	t.Helper()
	for _, a := range acts {
		if len(kinds) == 0 || slices.Contains(kinds, a.Kind) {
			t.Fatalf("%s: want no %v actions, got %s", what, kinds, fmtActs(acts))
		}
	}
}

// Claim order (§6.4): every observer picks the same winner from the same
// claims, in whatever order they arrive — for many event ids.
func TestClaimOrderIndependent(t *testing.T) {
	ms := alive(ctAll...)
	for n := uint64(1); n <= 8; n++ {
		id := testID(n)
		hi, lo := idA, idB
		if Weight(id, lo) > Weight(id, hi) {
			hi, lo = lo, hi
		}
		cases := []struct {
			name   string
			claims [2]Item
			by     [2]string
			winner string
			epoch  uint64
		}{
			{"same epoch: higher weight", [2]Item{item(id, 1, 1), item(id, 1, 1)}, [2]string{hi, lo}, hi, 1},
			{"higher epoch beats higher weight", [2]Item{item(id, 1, 1), item(id, 2, 2)}, [2]string{hi, lo}, lo, 2},
		}
		for _, tc := range cases {
			var winners [2]Claimant
			for order := range 2 {
				c := newCore(t, idC, ms) // an observer that never sees the event
				for k := range 2 {
					i := (k + order) % 2
					wantNone(t, c.Claim(who(tc.by[i]), tc.claims[i], ctLease, at(time.Duration(k)*time.Millisecond)), tc.name)
				}
				in := c.Snapshot()[0]
				winners[order] = in.Owner
				if in.Owner != who(tc.winner) || in.Epoch != tc.epoch {
					t.Errorf("%s, %s, order %d: owner %v e%d, want %s e%d", id.Short(), tc.name, order, in.Owner, in.Epoch, tc.winner, tc.epoch)
				}
			}
			if winners[0] != winners[1] {
				t.Errorf("%s, %s: winner depends on order: %v vs %v", id.Short(), tc.name, winners[0], winners[1])
			}
		}
	}
}

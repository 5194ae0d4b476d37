package claims

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Focused tests of the rules in doc.go, one Core (or a few fed the same
// lines) at a time, with small fixed timings. Owners are never hard-coded:
// they are derived with ctOwner, the rule of doc.go, from the member ids.

var ct0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	ctLease        = 10 * time.Second
	ctSettle       = 20 * time.Millisecond
	ctClaimTimeout = time.Second
	ctSkew         = 200 * time.Millisecond
	ctRetry        = 100 * time.Millisecond
)

const (
	idA = "svc/a"
	idB = "svc/b"
	idC = "svc/c"
)

var ctAll = []string{idA, idB, idC}

func at(d time.Duration) time.Time { return ct0.Add(d) }

func who(id string) Claimant { return Claimant{ID: id, Incarnation: 1} }

// alive returns the members, all Alive at incarnation 1.
func alive(ids ...string) []Member {
	ms := make([]Member, 0, len(ids))
	for _, id := range ids {
		ms = append(ms, Member{who(id), heartbeat.Alive})
	}
	return ms
}

// with returns ms with the member id replaced.
func with(ms []Member, m Member) []Member {
	out := slices.Clone(ms)
	for i := range out {
		if out[i].ID == m.ID {
			out[i] = m
		}
	}
	return out
}

// without returns ids without drop.
func without(ids []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == drop })
}

// ctRanked ranks member ids by rendezvous weight of key, highest first.
func ctRanked(key string, ids []string) []string {
	r := slices.Clone(ids)
	slices.SortFunc(r, func(a, b string) int {
		if c := cmp.Compare(heartbeat.Weight(key, b), heartbeat.Weight(key, a)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return r
}

// ctOwner is the owner of an event routed by key at epoch among the alive
// ids: rank (epoch-1) mod n, as doc.go states.
func ctOwner(key string, aliveIDs []string, epoch uint64) string {
	r := ctRanked(key, aliveIDs)
	return r[(epoch-1)%uint64(len(r))]
}

// testID returns a deterministic event id.
func testID(n uint64) envelope.ID {
	var id envelope.ID
	copy(id[:], "claimtest")
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

// findIDs returns n distinct deterministic ids for which ok holds.
func findIDs(t *testing.T, n int, ok func(envelope.ID) bool) []envelope.ID {
	t.Helper()
	var ids []envelope.ID
	for i := uint64(1); i < 100_000 && len(ids) < n; i++ {
		if id := testID(i); ok(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) < n {
		t.Fatalf("found only %d of %d event ids", len(ids), n)
	}
	return ids
}

type coreOpt func(*Config)

// newCore builds the Core of member self with the test timings, feeds it
// the members, a far session and (if ready) SetReady(true), all at ct0.
func newCoreReady(t *testing.T, self string, ms []Member, ready bool, opts ...coreOpt) *Core {
	t.Helper()
	cfg := Config{Self: who(self), Lease: ctLease, Settle: ctSettle, ClaimTimeout: ctClaimTimeout, Skew: ctSkew}
	for _, o := range opts {
		o(&cfg)
	}
	c := New(cfg)
	wantNone(t, c.Members(ms, ct0), "Members")
	wantNone(t, c.Session(ct0.Add(1000*time.Hour), ct0), "Session")
	if ready {
		wantNone(t, c.SetReady(true, ct0), "SetReady")
	}
	return c
}

func newCore(t *testing.T, self string, ms []Member, opts ...coreOpt) *Core {
	t.Helper()
	return newCoreReady(t, self, ms, true, opts...)
}

func item(id envelope.ID, epoch uint64, attempt uint32) Item {
	return Item{Event: id, Epoch: epoch, Attempt: attempt}
}

func fmtActs(acts []Action) string {
	if len(acts) == 0 {
		return "[]"
	}
	var b strings.Builder
	b.WriteString("[")
	for i, a := range acts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s e%d a%d", a.Kind, a.Event.Short(), a.Epoch, a.Attempt)
		if a.Reason != "" {
			fmt.Fprintf(&b, " %q", a.Reason)
		}
	}
	b.WriteString("]")
	return b.String()
}

func ofKind(acts []Action, k ActionKind) []Action {
	var out []Action
	for _, a := range acts {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

// want1 requires exactly one action of kind k (others may be there) and
// returns it.
func want1(t *testing.T, acts []Action, k ActionKind, what string) Action {
	t.Helper()
	got := ofKind(acts, k)
	if len(got) != 1 {
		t.Fatalf("%s: want one %s action, got %s", what, k, fmtActs(acts))
	}
	return got[0]
}

// wantOnly requires that acts is exactly one action, of kind k.
func wantOnly(t *testing.T, acts []Action, k ActionKind, what string) Action {
	t.Helper()
	if len(acts) != 1 || acts[0].Kind != k {
		t.Fatalf("%s: want exactly one %s action, got %s", what, k, fmtActs(acts))
	}
	return acts[0]
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

var sends = []ActionKind{SendClaim, SendAck, SendNack, SendDead}

func wantClaim(t *testing.T, acts []Action, id envelope.ID, epoch uint64, attempt uint32, what string) {
	t.Helper()
	a := want1(t, acts, SendClaim, what)
	if a.Event != id || a.Epoch != epoch || a.Attempt != attempt || a.Lease != ctLease {
		t.Fatalf("%s: claim %s e%d a%d lease %v, want %s e%d a%d lease %v", what,
			a.Event.Short(), a.Epoch, a.Attempt, a.Lease, id.Short(), epoch, attempt, ctLease)
	}
}

func info(t *testing.T, c *Core, id envelope.ID) Info {
	t.Helper()
	for _, in := range c.Snapshot() {
		if in.Event == id {
			return in
		}
	}
	t.Fatalf("event %s not tracked", id.Short())
	return Info{}
}

func wantStatus(t *testing.T, c *Core, id envelope.ID, o Outcome, by string, epoch uint64) {
	t.Helper()
	got, gotBy, gotEpoch, ok := c.Status(id)
	if !ok || got != o || (o != Pending && (gotBy != who(by) || gotEpoch != epoch)) {
		t.Fatalf("Status(%s) = %v by %v e%d (tracked %v), want %v by %s e%d", id.Short(), got, gotBy, gotEpoch, ok, o, by, epoch)
	}
}

func wantUntracked(t *testing.T, c *Core, id envelope.ID) {
	t.Helper()
	if o, _, _, ok := c.Status(id); ok {
		t.Fatalf("Status(%s) = %v, want not tracked", id.Short(), o)
	}
}

// startOwn takes c, whose claim on id at epoch was just sent, through
// seeing that claim at now and the settle time, and returns the Start.
func startOwn(t *testing.T, c *Core, id envelope.ID, epoch uint64, attempt uint32, now time.Time) Action {
	t.Helper()
	wantNone(t, c.Claim(c.Config().Self, item(id, epoch, attempt), ctLease, now), "own claim seen", Start)
	wantNone(t, c.Tick(now.Add(ctSettle-time.Millisecond)), "before settle", Start)
	a := wantOnly(t, c.Tick(now.Add(ctSettle)), Start, "after settle")
	if a.Event != id || a.Epoch != epoch || a.Attempt != attempt {
		t.Fatalf("start %s e%d a%d, want %s e%d a%d", a.Event.Short(), a.Epoch, a.Attempt, id.Short(), epoch, attempt)
	}
	return a
}

// 1. The owner claims on the event; nobody else; not before ready; not
// without the event.

func TestOwnerClaimsOnEvent(t *testing.T) {
	ms := alive(ctAll...)
	for n := uint64(1); n <= 6; n++ {
		id := testID(n)
		owner := ctOwner(id.String(), ctAll, 1)
		for _, self := range ctAll {
			c := newCore(t, self, ms)
			acts := c.Event(id, "", ct0)
			if self == owner {
				wantClaim(t, acts, id, 1, 1, self+" (owner) on event")
				if len(acts) != 1 {
					t.Fatalf("owner: want only the claim, got %s", fmtActs(acts))
				}
				if s := c.Stats(); s.Claims != 1 || s.Pending != 1 {
					t.Fatalf("owner stats %+v", s)
				}
				if in := info(t, c, id); !in.Mine || in.Running {
					t.Fatalf("owner info %+v: want mine, not running", in)
				}
			} else {
				wantNone(t, acts, self+" (not owner) on event")
				// The same event again changes nothing.
				wantNone(t, c.Event(id, "", at(time.Millisecond)), self+" event again")
			}
		}
	}
}

func TestNoClaimBeforeReady(t *testing.T) {
	id := testID(1)
	owner := ctOwner(id.String(), ctAll, 1)
	c := newCoreReady(t, owner, alive(ctAll...), false)
	wantNone(t, c.Event(id, "", ct0), "event before ready")
	wantNone(t, c.Tick(at(500*time.Millisecond)), "tick before ready")
	wantClaim(t, c.SetReady(true, at(600*time.Millisecond)), id, 1, 1, "SetReady(true)")

	// Ready, then not ready: no claim for a new event.
	var id2 envelope.ID
	for _, x := range findIDs(t, 2, func(x envelope.ID) bool { return ctOwner(x.String(), ctAll, 1) == owner }) {
		if x != id {
			id2 = x
		}
	}
	wantNone(t, c.SetReady(false, at(700*time.Millisecond)), "SetReady(false)")
	wantNone(t, c.Event(id2, "", at(700*time.Millisecond)), "event when not ready")
}

func TestNoClaimWithoutEvent(t *testing.T) {
	ids := []string{idA, idB}
	id := testID(7)
	x := ctOwner(id.String(), ids, 1) // the first owner
	y := without(ids, x)[0]
	if ctOwner(id.String(), []string{y}, 2) != y {
		t.Fatal("derivation: the only alive member owns every epoch")
	}
	ms := alive(ids...)
	c := newCore(t, y, ms)
	wantNone(t, c.Claim(who(x), item(id, 1, 1), ctLease, ct0), "claim of another, no event")
	// x suspected: epoch 2 is y's, but y never saw the event.
	wantNone(t, c.Members(with(ms, Member{who(x), heartbeat.Suspect}), at(100*time.Millisecond)), "winner suspected, no event")
	wantNone(t, c.Tick(at(500*time.Millisecond)), "tick, no event")
	if in := info(t, c, id); in.Seen || in.Mine || in.Epoch != 2 {
		t.Fatalf("info %+v: want not seen, not mine, epoch 2", in)
	}
	// The event itself lets y claim the open epoch at once.
	wantClaim(t, c.Event(id, "", at(600*time.Millisecond)), id, 2, 2, "event after takeover")
}

// 2. Safe start.

func TestSafeStart(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(3)
	owner := ctOwner(id.String(), ctAll, 1)

	t.Run("after own claim and settle", func(t *testing.T) {
		c := newCore(t, owner, ms)
		wantClaim(t, c.Event(id, "", ct0), id, 1, 1, "event")
		wantNone(t, c.Tick(at(500*time.Millisecond)), "own claim not seen yet")
		wantNone(t, c.Claim(who(owner), item(id, 1, 1), ctLease, at(600*time.Millisecond)), "own claim seen")
		wantNone(t, c.Tick(at(600*time.Millisecond+ctSettle-time.Millisecond)), "within settle")
		a := wantOnly(t, c.Tick(at(600*time.Millisecond+ctSettle)), Start, "settle passed")
		if a.Event != id || a.Epoch != 1 || a.Attempt != 1 {
			t.Fatalf("start %+v", a)
		}
		if want := Token(1, Weight(id, owner)); a.Token != want {
			t.Fatalf("token %#x, want Token(1, Weight(id, self)) = %#x", a.Token, want)
		}
		if s := c.Stats(); s.Started != 1 {
			t.Fatalf("stats %+v", s)
		}
		if in := info(t, c, id); !in.Mine || !in.Running || in.Owner != who(owner) {
			t.Fatalf("info %+v", in)
		}
		// Nothing starts twice.
		wantNone(t, c.Tick(at(time.Second)), "later tick", Start)
	})

	t.Run("higher claim within settle", func(t *testing.T) {
		other := ctOwner(id.String(), ctAll, 2)
		c := newCore(t, owner, ms)
		wantClaim(t, c.Event(id, "", ct0), id, 1, 1, "event")
		wantNone(t, c.Claim(who(owner), item(id, 1, 1), ctLease, at(10*time.Millisecond)), "own claim seen")
		wantNone(t, c.Claim(who(other), item(id, 2, 2), ctLease, at(20*time.Millisecond)), "higher claim")
		for _, d := range []time.Duration{30, 40, 500, 2000} {
			wantNone(t, c.Tick(at(d*time.Millisecond)), "after a higher claim", Start, SendClaim)
		}
		if in := info(t, c, id); in.Mine || in.Owner != who(other) {
			t.Fatalf("info %+v: want not mine, owner %s", in, other)
		}
	})

	t.Run("own claim never seen", func(t *testing.T) {
		c := newCore(t, owner, ms)
		wantClaim(t, c.Event(id, "", ct0), id, 1, 1, "event")
		wantNone(t, c.Tick(at(ctClaimTimeout)), "claim timeout", Start)
		if in := info(t, c, id); in.Mine {
			t.Fatalf("info %+v: the claim that never came back is still ours", in)
		}
		// It comes back late: still no start.
		c.Claim(who(owner), item(id, 1, 1), ctLease, at(ctClaimTimeout+time.Millisecond))
		wantNone(t, c.Tick(at(2*ctClaimTimeout)), "late own claim", Start)
	})
}

// 3. Claim order.

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

// 4. Losing.

func TestLosingCancels(t *testing.T) {
	ms := alive(ctAll...)

	t.Run("higher epoch", func(t *testing.T) {
		id := testID(4)
		owner := ctOwner(id.String(), ctAll, 1)
		other := ctOwner(id.String(), ctAll, 2)
		c := newCore(t, owner, ms)
		wantClaim(t, c.Event(id, "", ct0), id, 1, 1, "event")
		startOwn(t, c, id, 1, 1, at(10*time.Millisecond))
		a := wantOnly(t, c.Claim(who(other), item(id, 2, 2), ctLease, at(time.Second)), Cancel, "higher claim")
		if a.Event != id || a.Epoch != 1 {
			t.Fatalf("cancel %+v", a)
		}
		if s := c.Stats(); s.Cancelled != 1 {
			t.Fatalf("stats %+v", s)
		}
		if in := info(t, c, id); in.Mine || in.Running || in.Owner != who(other) {
			t.Fatalf("info %+v", in)
		}
		// The lost handler's result is dropped.
		wantNone(t, c.Done(id, 1, nil, 0, at(1100*time.Millisecond)), "done after losing")
		wantNone(t, c.Done(id, 1, errors.New("x"), ctRetry, at(1100*time.Millisecond)), "failed after losing")
		wantStatus(t, c, id, Pending, "", 0)
	})

	t.Run("same epoch, higher weight", func(t *testing.T) {
		// Routed by key, the owner by key need not weigh most for the id.
		const key = "order-7"
		owner := ctOwner(key, ctAll, 1)
		var other string
		id := findIDs(t, 1, func(id envelope.ID) bool {
			for _, m := range without(ctAll, owner) {
				if Weight(id, m) > Weight(id, owner) {
					other = m
					return true
				}
			}
			return false
		})[0]
		c := newCore(t, owner, ms)
		wantClaim(t, c.Event(id, key, ct0), id, 1, 1, "event")
		startOwn(t, c, id, 1, 1, at(10*time.Millisecond))
		a := wantOnly(t, c.Claim(who(other), item(id, 1, 1), ctLease, at(time.Second)), Cancel, "same-epoch higher claim")
		if a.Epoch != 1 {
			t.Fatalf("cancel %+v", a)
		}
		wantNone(t, c.Done(id, 1, nil, 0, at(1100*time.Millisecond)), "done after losing")
	})
}

// 5. Acks.

func TestStaleAckIgnored(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(5)
	x := ctOwner(id.String(), ctAll, 1)
	y := ctOwner(id.String(), ctAll, 2)
	z := ctOwner(id.String(), ctAll, 3)
	c := newCore(t, z, ms)
	c.Claim(who(x), item(id, 1, 1), ctLease, ct0)
	c.Claim(who(y), item(id, 2, 2), ctLease, at(10*time.Millisecond))

	stale := c.Stats().Stale
	wantNone(t, c.Ack(who(x), item(id, 1, 0), at(20*time.Millisecond)), "stale ack")
	wantStatus(t, c, id, Pending, "", 0)
	if s := c.Stats(); s.Stale != stale+1 || s.Acked != 0 {
		t.Fatalf("after a stale ack: stats %+v (stale before %d)", s, stale)
	}
	// The same epoch, but a lower weight than the winner's: stale too.
	if Weight(id, x) < Weight(id, y) {
		wantNone(t, c.Ack(who(x), item(id, 2, 0), at(25*time.Millisecond)), "stale ack, lower weight")
		wantStatus(t, c, id, Pending, "", 0)
	}
	// An older incarnation of the winner: stale.
	wantNone(t, c.Ack(Claimant{y, 0}, item(id, 2, 0), at(27*time.Millisecond)), "ack of an older incarnation")
	wantStatus(t, c, id, Pending, "", 0)

	wantNone(t, c.Ack(who(y), item(id, 2, 0), at(30*time.Millisecond)), "winner's ack")
	wantStatus(t, c, id, Acked, y, 2)
	if s := c.Stats(); s.Acked != 1 || s.Completed != 1 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A second ack (even a higher one) changes nothing.
	c.Ack(who(x), item(id, 3, 0), at(40*time.Millisecond))
	wantStatus(t, c, id, Acked, y, 2)
}

func TestCompletedNeverStartedAgain(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(6)
	owner := ctOwner(id.String(), ctAll, 1)
	c := newCore(t, owner, ms)
	wantClaim(t, c.Event(id, "", ct0), id, 1, 1, "event")
	startOwn(t, c, id, 1, 1, at(10*time.Millisecond))
	a := wantOnly(t, c.Done(id, 1, nil, 0, at(time.Second)), SendAck, "done")
	if a.Event != id || a.Epoch != 1 {
		t.Fatalf("ack %+v", a)
	}
	wantNone(t, c.Ack(who(owner), item(id, 1, 0), at(1100*time.Millisecond)), "own ack seen")
	wantStatus(t, c, id, Acked, owner, 1)
	if s := c.Stats(); s.Acked != 1 || s.Completed != 1 {
		t.Fatalf("stats %+v", s)
	}

	// Everything again: the event, our claim, higher claims, the owner's
	// takeover triggers, time passing.
	step := at(2 * time.Second)
	check := func(acts []Action, what string) {
		t.Helper()
		wantNone(t, acts, what)
		step = step.Add(10 * time.Millisecond)
	}
	check(c.Event(id, "", step), "event again")
	check(c.Claim(who(owner), item(id, 1, 1), ctLease, step), "own claim again")
	check(c.Tick(step.Add(ctSettle)), "tick after own claim again")
	check(c.Claim(who(owner), item(id, 5, 5), ctLease, step), "own higher claim")
	check(c.Members(with(ms, Member{who(owner), heartbeat.Suspect}), step), "members change")
	check(c.Members(ms, step), "members back")
	check(c.Nack(who(owner), item(id, 1, 0), 0, "x", step), "nack")
	check(c.Tick(at(time.Minute)), "a minute later")
	check(c.Done(id, 1, nil, 0, at(time.Minute)), "done again")
	wantStatus(t, c, id, Acked, owner, 1)
	if s := c.Stats(); s.Started != 1 || s.Claims != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// 6. Nacks.

func TestNack(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(8)
	x := ctOwner(id.String(), ctAll, 1)
	y := ctOwner(id.String(), ctAll, 2)
	z := ctOwner(id.String(), ctAll, 3)
	const retry = 3 * time.Second

	cy, cz := newCore(t, y, ms), newCore(t, z, ms)
	both := func(what string, f func(c *Core) []Action) (ay, az []Action) {
		t.Helper()
		ay = slices.Clone(f(cy))
		az = slices.Clone(f(cz))
		return ay, az
	}
	noneBoth := func(what string, f func(c *Core) []Action) {
		t.Helper()
		ay, az := both(what, f)
		wantNone(t, ay, y+": "+what)
		wantNone(t, az, z+": "+what)
	}
	noneBoth("event", func(c *Core) []Action { return c.Event(id, "", ct0) })
	noneBoth("x claims", func(c *Core) []Action { return c.Claim(who(x), item(id, 1, 1), ctLease, ct0) })
	// z claims too, lower (x weighs most for the id: it is the owner by id).
	noneBoth("z claims", func(c *Core) []Action { return c.Claim(who(z), item(id, 1, 1), ctLease, at(time.Millisecond)) })

	for _, c := range []*Core{cy, cz} {
		stale := c.Stats().Stale
		wantNone(t, c.Nack(who(z), item(id, 1, 0), 0, "z fails", at(10*time.Millisecond)), "nack of the losing claim")
		wantNone(t, c.Nack(who(x), item(id, 2, 0), 0, "wrong epoch", at(10*time.Millisecond)), "nack at another epoch")
		wantNone(t, c.Nack(Claimant{x, 7}, item(id, 1, 0), 0, "other incarnation", at(10*time.Millisecond)), "nack of another incarnation")
		if s := c.Stats(); s.Stale != stale+3 {
			t.Fatalf("stale %d, want %d", s.Stale, stale+3)
		}
		if in := info(t, c, id); in.Owner != who(x) || in.Epoch != 1 || in.Attempts != 0 || len(in.Reasons) != 0 {
			t.Fatalf("after stale nacks: info %+v", in)
		}
	}

	nackAt := at(time.Second)
	noneBoth("winner's nack", func(c *Core) []Action { return c.Nack(who(x), item(id, 1, 0), retry, "boom", nackAt) })
	noneBoth("within the retry delay", func(c *Core) []Action { return c.Tick(nackAt.Add(retry - time.Millisecond)) })
	ay, az := both("retry delay passed", func(c *Core) []Action { return c.Tick(nackAt.Add(retry)) })
	wantClaim(t, ay, id, 2, 2, y+" (owner of epoch 2) after the retry delay")
	wantNone(t, az, z+" after the retry delay")
	in := info(t, cy, id)
	if in.Attempts != 1 || !slices.Equal(in.Reasons, []string{x + ": boom"}) {
		t.Fatalf("info %+v: want 1 attempt, reason %q", in, x+": boom")
	}
}

// 7. Takeover.

func TestTakeover(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(9)
	x := ctOwner(id.String(), ctAll, 1)

	// run feeds the event and x's claim to every other member's core, then
	// trigger; exactly next must claim epoch 2, as the trigger's actions or
	// by the tick at claimAt.
	type tc struct {
		name    string
		next    string // derived below
		trigger func(t *testing.T, c *Core) []Action
	}
	suspect := with(ms, Member{who(x), heartbeat.Suspect})
	dead := with(ms, Member{who(x), heartbeat.Dead})
	restarted := with(ms, Member{Claimant{x, 2}, heartbeat.Alive})
	cases := []tc{
		{"suspect", ctOwner(id.String(), without(ctAll, x), 2), func(t *testing.T, c *Core) []Action {
			return c.Members(suspect, at(2*time.Second))
		}},
		{"dead (QUIT)", ctOwner(id.String(), without(ctAll, x), 2), func(t *testing.T, c *Core) []Action {
			return c.Members(dead, at(2*time.Second))
		}},
		{"restarted", ctOwner(id.String(), ctAll, 2), func(t *testing.T, c *Core) []Action {
			return c.Members(restarted, at(2*time.Second))
		}},
		{"lease passed", ctOwner(id.String(), ctAll, 2), func(t *testing.T, c *Core) []Action {
			wantNone(t, c.Tick(at(ctLease)), "lease passed, skew not")
			wantNone(t, c.Tick(at(ctLease+ctSkew)), "at lease + skew")
			return c.Tick(at(ctLease + ctSkew + time.Millisecond))
		}},
		{"renewed lease passed", ctOwner(id.String(), ctAll, 2), func(t *testing.T, c *Core) []Action {
			wantNone(t, c.Claim(who(x), item(id, 1, 1), ctLease, at(ctLease/2)), "renewal")
			wantNone(t, c.Tick(at(ctLease+ctSkew+time.Millisecond)), "first lease passed, renewed")
			wantNone(t, c.Tick(at(ctLease/2+ctLease+ctSkew)), "renewed lease + skew")
			return c.Tick(at(ctLease/2 + ctLease + ctSkew + time.Millisecond))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.next == x {
				t.Fatal("derivation: the failed winner is the next owner")
			}
			for _, self := range without(ctAll, x) {
				c := newCore(t, self, ms)
				wantNone(t, c.Event(id, "", ct0), self+": event")
				wantNone(t, c.Claim(who(x), item(id, 1, 1), ctLease, ct0), self+": x claims")
				wantNone(t, c.Tick(at(time.Second)), self+": x holds its claim")
				acts := tc.trigger(t, c)
				if self == tc.next {
					wantClaim(t, acts, id, 2, 2, self+" (next owner) on takeover")
					if s := c.Stats(); s.Takeovers != 1 {
						t.Fatalf("stats %+v", s)
					}
					in := info(t, c, id)
					if in.Attempts != 1 || len(in.Reasons) != 1 {
						t.Fatalf("info %+v", in)
					}
				} else {
					wantNone(t, acts, self+" (not the next owner) on takeover")
				}
			}
		})
	}
}

// 8. Self-fencing.

func TestSelfFencing(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(10)
	owner := ctOwner(id.String(), ctAll, 1)

	started := func(t *testing.T) *Core {
		c := newCore(t, owner, ms)
		wantClaim(t, c.Event(id, "", ct0), id, 1, 1, "event")
		startOwn(t, c, id, 1, 1, at(10*time.Millisecond))
		return c
	}

	t.Run("session ends", func(t *testing.T) {
		c := started(t)
		until := at(3 * time.Second)
		wantNone(t, c.Session(until, at(time.Second)), "session shortened, still ahead")
		wantNone(t, c.Tick(until.Add(-time.Millisecond)), "before session end")
		a := want1(t, c.Tick(until), Cancel, "session end")
		if a.Event != id || a.Epoch != 1 {
			t.Fatalf("cancel %+v", a)
		}
		wantNone(t, c.Done(id, 1, nil, 0, until.Add(time.Millisecond)), "done after session end")
		wantNone(t, c.Done(id, 1, errors.New("x"), ctRetry, until.Add(time.Millisecond)), "failed after session end")
	})

	t.Run("session shortened to the past", func(t *testing.T) {
		c := started(t)
		now := at(time.Second)
		want1(t, c.Session(now, now), Cancel, "session now over")
		wantNone(t, c.Done(id, 1, nil, 0, now), "done after session end")
	})

	t.Run("done after lease end", func(t *testing.T) {
		c := started(t)
		// The process was frozen: no tick renewed the lease.
		acts := c.Done(id, 1, nil, 0, at(ctLease+time.Millisecond))
		wantNone(t, acts, "done after lease end", sends...)
	})

	t.Run("renewal", func(t *testing.T) {
		c := started(t)
		wantNone(t, c.Tick(at(ctLease/2-time.Millisecond)), "before half lease")
		a := wantOnly(t, c.Tick(at(ctLease/2)), SendClaim, "half lease")
		if a.Event != id || a.Epoch != 1 || a.Attempt != 1 || a.Lease != ctLease {
			t.Fatalf("renewal %+v", a)
		}
		if s := c.Stats(); s.Renewals != 1 || s.Claims != 1 {
			t.Fatalf("stats %+v", s)
		}
		wantNone(t, c.Claim(who(owner), item(id, 1, 1), ctLease, at(ctLease/2+time.Millisecond)), "renewal seen")
		if in := info(t, c, id); !in.Running {
			t.Fatalf("info %+v: not running after renewal", in)
		}
		// Past the first lease, within the renewed one: the ack goes out.
		a = wantOnly(t, c.Done(id, 1, nil, 0, at(ctLease+2*time.Second)), SendAck, "done within renewed lease")
		if a.Epoch != 1 {
			t.Fatalf("ack %+v", a)
		}
	})
}

// 9. Dead letters.

func TestDeadLetter(t *testing.T) {
	ids := []string{idA, idB}
	ms := alive(ids...)
	// a owns the even epochs, b the odd ones.
	id := findIDs(t, 1, func(id envelope.ID) bool { return ctOwner(id.String(), ids, 1) == idB })[0]
	for e := uint64(1); e <= 6; e++ {
		if want := []string{idB, idA}[(e-1)%2]; ctOwner(id.String(), ids, e) != want {
			t.Fatalf("derivation: owner at %d", e)
		}
	}
	c := newCore(t, idA, ms)
	now := ct0
	next := func(d time.Duration) time.Time { now = now.Add(d); return now }
	wantNone(t, c.Event(id, "", now), "event")
	var reasons []string
	var pending []Action // a's claim from the previous step
	for e := uint64(1); e <= 5; e++ {
		reason := fmt.Sprintf("fail %d", e)
		if e%2 == 1 { // b's epoch
			if len(pending) != 0 {
				t.Fatalf("epoch %d: a claimed b's epoch: %s", e, fmtActs(pending))
			}
			wantNone(t, c.Claim(who(idB), item(id, e, uint32(e)), ctLease, next(10*time.Millisecond)), "b claims")
			wantNone(t, c.Nack(who(idB), item(id, e, 0), ctRetry, reason, next(10*time.Millisecond)), "b nacks")
			reasons = append(reasons, idB+": "+reason)
		} else {
			wantClaim(t, pending, id, e, uint32(e), "a's turn")
			startOwn(t, c, id, e, uint32(e), next(10*time.Millisecond))
			now = now.Add(ctSettle)
			n := wantOnly(t, c.Done(id, e, errors.New(reason), ctRetry, next(10*time.Millisecond)), SendNack, "handler failed")
			if n.Epoch != e || n.Lease != ctRetry || n.Reason != reason {
				t.Fatalf("nack %+v", n)
			}
			wantNone(t, c.Nack(who(idA), item(id, e, 0), ctRetry, reason, next(10*time.Millisecond)), "own nack seen")
			reasons = append(reasons, idA+": "+reason)
		}
		wantNone(t, c.Tick(next(ctRetry-time.Millisecond)), "within retry")
		pending = slices.Clone(c.Tick(next(time.Millisecond)))
		if e < 5 {
			wantNone(t, pending, "after retry", SendDead)
		}
	}
	d := wantOnly(t, pending, SendDead, "after 5 failed attempts")
	if d.Event != id || d.Epoch != 6 || d.Attempt != 5 || !slices.Equal(d.Reasons, reasons) {
		t.Fatalf("dead %s e%d a%d reasons %q, want e6 a5 reasons %q", d.Event.Short(), d.Epoch, d.Attempt, d.Reasons, reasons)
	}
	if s := c.Stats(); s.Started != 2 {
		t.Fatalf("stats %+v", s)
	}
	wantNone(t, c.Dead(who(idA), item(id, 6, 0), next(10*time.Millisecond)), "dead marker seen")
	wantStatus(t, c, id, DeadLettered, idA, 6)
	if s := c.Stats(); s.Dead != 1 || s.Completed != 1 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	wantNone(t, c.Tick(next(time.Minute)), "after the dead letter")
	wantNone(t, c.Event(id, "", now), "event again")

	// Another member sees only the marker: that completes it too.
	o := newCore(t, idB, ms)
	wantNone(t, o.Dead(who(idA), item(id, 6, 0), ct0), "marker")
	wantStatus(t, o, id, DeadLettered, idA, 6)
	wantNone(t, o.Event(id, "", at(time.Millisecond)), "event after marker")
}

// 10. Claim timeout.

func TestClaimTimeoutPassesEpoch(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(11)
	x := ctOwner(id.String(), ctAll, 1)
	y := ctOwner(id.String(), ctAll, 2)
	z := ctOwner(id.String(), ctAll, 3)
	cy, cz := newCore(t, y, ms), newCore(t, z, ms)
	for _, c := range []*Core{cy, cz} {
		wantNone(t, c.Event(id, "", ct0), "event")
		wantNone(t, c.Tick(at(ctClaimTimeout-time.Millisecond)), "within the claim timeout")
	}
	wantClaim(t, cy.Tick(at(ctClaimTimeout)), id, 2, 1, y+": "+x+" never claimed")
	wantNone(t, cz.Tick(at(ctClaimTimeout)), z+": "+x+" never claimed")
	// y does not claim either (from z's view): z's turn next.
	wantNone(t, cz.Tick(at(2*ctClaimTimeout-time.Millisecond)), z+": within y's timeout")
	wantClaim(t, cz.Tick(at(2*ctClaimTimeout)), id, 3, 1, z+": "+y+" never claimed")
	// A late claim of epoch 1 loses to ours.
	wantNone(t, cy.Claim(who(x), item(id, 1, 1), ctLease, at(1100*time.Millisecond)), "late claim of epoch 1")
	if in := info(t, cy, id); !in.Mine {
		t.Fatalf("info %+v: the late lower claim took ours", in)
	}
}

// 11. MaxInFlight.

func TestMaxInFlight(t *testing.T) {
	ids := []string{idA, idB}
	ms := alive(ids...)
	evs := findIDs(t, 3, func(id envelope.ID) bool { return ctOwner(id.String(), ids, 1) == idA })

	free := newCore(t, idA, ms)
	for _, id := range evs[:2] {
		wantClaim(t, free.Event(id, "", ct0), id, 1, 1, "no bound")
	}

	c := newCore(t, idA, ms, func(cfg *Config) { cfg.MaxInFlight = 1 })
	wantClaim(t, c.Event(evs[0], "", ct0), evs[0], 1, 1, "first")
	wantNone(t, c.Event(evs[1], "", at(time.Millisecond)), "at the bound")
	if in := info(t, c, evs[1]); in.Mine {
		t.Fatalf("info %+v", in)
	}
	// The first completes: room again.
	c.Ack(who(idA), item(evs[0], 1, 0), at(2*time.Millisecond))
	wantClaim(t, c.Event(evs[2], "", at(3*time.Millisecond)), evs[2], 1, 1, "after completion")
}

// 12. Reset.

func TestReset(t *testing.T) {
	ids := []string{idA, idB}
	ms := alive(ids...)
	mine := findIDs(t, 2, func(id envelope.ID) bool { return ctOwner(id.String(), ids, 1) == idA })
	theirs := findIDs(t, 1, func(id envelope.ID) bool { return ctOwner(id.String(), ids, 1) == idB })[0]
	running, done := mine[0], mine[1]

	c := newCore(t, idA, ms)
	wantClaim(t, c.Event(running, "", ct0), running, 1, 1, "event")
	startOwn(t, c, running, 1, 1, at(10*time.Millisecond))
	wantNone(t, c.Event(theirs, "", at(50*time.Millisecond)), "their event")
	wantNone(t, c.Claim(who(idB), item(theirs, 1, 1), ctLease, at(50*time.Millisecond)), "their claim")
	wantClaim(t, c.Event(done, "", at(60*time.Millisecond)), done, 1, 1, "event")
	startOwn(t, c, done, 1, 1, at(60*time.Millisecond))
	wantOnly(t, c.Done(done, 1, nil, 0, at(100*time.Millisecond)), SendAck, "done")
	wantNone(t, c.Ack(who(idA), item(done, 1, 0), at(110*time.Millisecond)), "ack seen")
	if s := c.Stats(); s.Pending != 2 || s.Completed != 1 {
		t.Fatalf("before reset: stats %+v", s)
	}

	acts := c.Reset(at(200 * time.Millisecond))
	a := wantOnly(t, acts, Cancel, "reset")
	if a.Event != running || a.Epoch != 1 || a.Reason != "disconnected" {
		t.Fatalf("cancel %+v", a)
	}
	wantUntracked(t, c, running)
	wantUntracked(t, c, theirs)
	wantStatus(t, c, done, Acked, idA, 1)
	if s := c.Stats(); s.Pending != 0 || s.Completed != 1 {
		t.Fatalf("after reset: stats %+v", s)
	}
	wantNone(t, c.Done(running, 1, nil, 0, at(300*time.Millisecond)), "done after reset")
	wantNone(t, c.Tick(at(time.Minute)), "tick after reset")
	wantNone(t, c.Event(done, "", at(time.Minute)), "completed event again")
	wantStatus(t, c, done, Acked, idA, 1)
	// Nothing in flight any more: with a bound of 1 this would refuse.
	c2 := newCore(t, idA, ms, func(cfg *Config) { cfg.MaxInFlight = 1 })
	wantClaim(t, c2.Event(running, "", ct0), running, 1, 1, "event")
	c2.Reset(at(time.Millisecond))
	wantClaim(t, c2.Event(done, "", at(2*time.Millisecond)), done, 1, 1, "after reset, in flight is 0")
}

// 13. Memory.

func TestRetain(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(12)
	c := newCore(t, idA, ms, func(cfg *Config) { cfg.Retain = time.Minute })
	c.Ack(who(idB), item(id, 1, 0), ct0)
	wantStatus(t, c, id, Acked, idB, 1)
	if s := c.Stats(); s.Completed != 1 {
		t.Fatalf("stats %+v", s)
	}
	if next := c.Next(); !next.Equal(at(time.Minute)) {
		t.Fatalf("Next = %v, want the retention end %v", next, at(time.Minute))
	}
	c.Tick(at(time.Minute - time.Millisecond))
	if s := c.Stats(); s.Completed != 1 {
		t.Fatalf("within retention: stats %+v", s)
	}
	c.Tick(at(time.Minute))
	if s := c.Stats(); s.Completed != 0 || s.Pending != 0 {
		t.Fatalf("after retention: stats %+v", s)
	}
	wantUntracked(t, c, id)
}

func TestMaxEvents(t *testing.T) {
	ms := alive(ctAll...)
	c := newCore(t, idC, ms, func(cfg *Config) { cfg.MaxEvents = 2 })
	pending, completed, fresh, refused := testID(20), testID(21), testID(22), testID(23)
	c.Event(pending, "", ct0)
	c.Ack(who(idB), item(completed, 1, 0), at(time.Second))
	if s := c.Stats(); s.Pending != 1 || s.Completed != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Full: the completed one (the newer) goes first, the pending stays.
	c.Event(fresh, "", at(2*time.Second))
	wantStatus(t, c, pending, Pending, "", 0)
	wantStatus(t, c, fresh, Pending, "", 0)
	wantUntracked(t, c, completed)
	if s := c.Stats(); s.Refused != 0 || s.Pending != 2 || s.Completed != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Full of pending events: refused.
	wantNone(t, c.Event(refused, "", at(3*time.Second)), "refused event")
	wantNone(t, c.Claim(who(idB), item(refused, 1, 1), ctLease, at(3*time.Second)), "refused claim")
	wantUntracked(t, c, refused)
	if s := c.Stats(); s.Refused != 2 || s.Pending != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// 14. ByKey.

func TestByKey(t *testing.T) {
	const key = "customer-42"
	owner := ctOwner(key, ctAll, 1)
	// Two events the id alone would route to different members, at least
	// one of them not to the key's owner.
	var evs []envelope.ID
	for i := uint64(100); len(evs) < 2; i++ {
		id := testID(i)
		if len(evs) == 0 {
			if ctOwner(id.String(), ctAll, 1) != owner {
				evs = append(evs, id)
			}
		} else if ctOwner(id.String(), ctAll, 1) != ctOwner(evs[0].String(), ctAll, 1) {
			evs = append(evs, id)
		}
	}
	ms := alive(ctAll...)
	claimed := map[string]int{}
	for _, self := range ctAll {
		c := newCore(t, self, ms)
		for i, id := range evs {
			acts := c.Event(id, key, at(time.Duration(i)*time.Millisecond))
			if self == owner {
				wantClaim(t, acts, id, 1, 1, self+" (key owner)")
				claimed[self]++
			} else {
				wantNone(t, acts, self+" (not the key owner)")
			}
			if in := info(t, c, id); in.Key != key {
				t.Fatalf("info %+v", in)
			}
		}
	}
	if claimed[owner] != 2 || len(claimed) != 1 {
		t.Fatalf("claims by member %v, want 2 by %s", claimed, owner)
	}
}

// A NACK from a winner this member already judged failed (suspected, then
// its handler failed and it nacked) is one failed attempt, not two:
// otherwise the count, and with it when an event is dead-lettered, depends
// on the order a member saw the suspicion and the NACK in.
func TestNackAfterTakeoverCountsOnce(t *testing.T) {
	ids := []string{idA, idB}
	ms := alive(ids...)
	id := testID(13)
	x := ctOwner(id.String(), ids, 1)
	y := without(ids, x)[0]

	// Order 1: suspected, then the NACK.
	c1 := newCore(t, y, ms)
	wantNone(t, c1.Event(id, "", ct0), "event")
	wantNone(t, c1.Claim(who(x), item(id, 1, 1), ctLease, ct0), "x claims")
	wantClaim(t, c1.Members(with(ms, Member{who(x), heartbeat.Suspect}), at(time.Second)), id, 2, 2, "x suspected")
	c1.Nack(who(x), item(id, 1, 0), ctRetry, "boom", at(1100*time.Millisecond))

	// Order 2: the NACK, then suspected.
	c2 := newCore(t, y, ms)
	wantNone(t, c2.Event(id, "", ct0), "event")
	wantNone(t, c2.Claim(who(x), item(id, 1, 1), ctLease, ct0), "x claims")
	wantNone(t, c2.Nack(who(x), item(id, 1, 0), ctRetry, "boom", at(time.Second)), "x nacks")
	c2.Members(with(ms, Member{who(x), heartbeat.Suspect}), at(1100*time.Millisecond))

	i1, i2 := info(t, c1, id), info(t, c2, id)
	if i2.Attempts != 1 {
		t.Fatalf("nack then suspect: %d attempts, want 1", i2.Attempts)
	}
	if i1.Attempts != 1 {
		t.Errorf("suspect then nack: %d failed attempts (reasons %q, takeovers %d) for the one attempt of %s at epoch 1; want 1 (nack then suspect gives %d)",
			i1.Attempts, i1.Reasons, c1.Stats().Takeovers, x, i2.Attempts)
	}

	// What it costs on the wire: y's own attempt (the 2nd) fails, and y,
	// the only alive member, claims the 3rd attempt at epoch 3.
	startOwn(t, c1, id, 2, 2, at(1200*time.Millisecond))
	wantOnly(t, c1.Done(id, 2, errors.New("bad"), ctRetry, at(1300*time.Millisecond)), SendNack, "y's handler fails")
	wantNone(t, c1.Nack(who(y), item(id, 2, 0), ctRetry, "bad", at(1310*time.Millisecond)), "y's nack seen")
	acts := c1.Tick(at(1410 * time.Millisecond))
	if a := want1(t, acts, SendClaim, "after y's retry delay"); a.Epoch != 3 || a.Attempt != 3 {
		t.Errorf("third attempt claimed at epoch %d as attempt %d, want epoch 3, attempt 3", a.Epoch, a.Attempt)
	}
}

// Releases (a member shutting down gives its claims back).

func TestReleased(t *testing.T) {
	ms := alive(ctAll...)
	id := testID(14)
	x := ctOwner(id.String(), ctAll, 1)
	y := ctOwner(id.String(), ctAll, 2) // x stays alive: epoch 2 is y's
	z := ctOwner(id.String(), ctAll, 3)
	for _, self := range []string{y, z} {
		c := newCore(t, self, ms)
		wantNone(t, c.Event(id, "", ct0), "event")
		wantNone(t, c.Claim(who(x), item(id, 1, 1), ctLease, ct0), "x claims")
		stale := c.Stats().Stale
		wantNone(t, c.Released(who(z), item(id, 1, 0), at(time.Second)), "release of a claim that is not the winner")
		wantNone(t, c.Released(who(x), item(id, 2, 0), at(time.Second)), "release at another epoch")
		if s := c.Stats(); s.Stale != stale+2 {
			t.Fatalf("stats %+v", s)
		}
		acts := c.Released(who(x), item(id, 1, 0), at(time.Second))
		if self == y {
			// At once, and no failed attempt: still attempt 1.
			wantClaim(t, acts, id, 2, 1, y+" after x released")
		} else {
			wantNone(t, acts, z+" after x released")
		}
		if s := c.Stats(); s.Released != 1 || s.Takeovers != 0 {
			t.Fatalf("stats %+v", s)
		}
		if in := info(t, c, id); in.Attempts != 0 {
			t.Fatalf("info %+v: a release counted as a failed attempt", in)
		}
	}
}

func TestReleaseAll(t *testing.T) {
	ids := []string{idA, idB}
	ms := alive(ids...)
	evs := findIDs(t, 4, func(id envelope.ID) bool { return ctOwner(id.String(), ids, 1) == idA })
	running, waiting, acking, later := evs[0], evs[1], evs[2], evs[3]
	c := newCore(t, idA, ms)
	wantClaim(t, c.Event(running, "", ct0), running, 1, 1, "event")
	startOwn(t, c, running, 1, 1, at(10*time.Millisecond))
	wantClaim(t, c.Event(acking, "", at(40*time.Millisecond)), acking, 1, 1, "event")
	startOwn(t, c, acking, 1, 1, at(50*time.Millisecond))
	wantOnly(t, c.Done(acking, 1, nil, 0, at(100*time.Millisecond)), SendAck, "done")
	wantClaim(t, c.Event(waiting, "", at(110*time.Millisecond)), waiting, 1, 1, "event")

	acts := slices.Clone(c.ReleaseAll(at(200 * time.Millisecond)))
	if len(acts) != 2 {
		t.Fatalf("ReleaseAll: %s, want releases of the running and the waiting claims", fmtActs(acts))
	}
	for i, want := range []envelope.ID{running, waiting} { // in arrival order
		if a := acts[i]; a.Kind != SendNack || !a.Release || a.Event != want || a.Epoch != 1 {
			t.Fatalf("ReleaseAll[%d] = %+v, want a release of %s", i, a, want.Short())
		}
	}
	wantNone(t, c.Done(running, 1, nil, 0, at(300*time.Millisecond)), "done after release")
	wantNone(t, c.Event(later, "", at(300*time.Millisecond)), "new event after ReleaseAll")
	wantNone(t, c.Released(who(idA), item(running, 1, 0), at(310*time.Millisecond)), "own release seen", sends...)
	if in := info(t, c, running); in.Mine || in.Attempts != 0 {
		t.Fatalf("info %+v", in)
	}
}

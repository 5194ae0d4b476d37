package claims

import (
	"errors"
	"testing"

	"github.com/meshbot/meshbot/envelope"
)

func off(ms int64, id string) envelope.Offset { return envelope.Offset{Time: ms * 1e6, MsgID: id} }

// Scenarios of the consensus — majorities, rejects, dead members' votes,
// resumes, holes, replays — are scripts (testdata/scripts/consensus.txt).

func TestConsensusBounded(t *testing.T) {
	var c Consensus
	for i := range 1000 {
		c.Claim(testID(uint64(i+1)), "a", off(int64(i+1), ""))
	}
	if len(c.open) > maxOpenClaims {
		t.Fatalf("%d open claims, bound %d", len(c.open), maxOpenClaims)
	}
	c.Commit([]string{"a"}) // the claimant alone is a majority of 1
	if got := c.Committed(); got != off(1000, "") {
		t.Fatalf("committed %v", got)
	}
	if len(c.open) != 0 {
		t.Fatalf("%d claims left open at or below the committed offset", len(c.open))
	}
}

func TestPrefix(t *testing.T) {
	p := NewPrefix(3)
	done := map[uint64]bool{}
	for i := uint64(1); i <= 4; i++ {
		tracked := p.Seen(testID(i), off(int64(i), ""))
		if tracked != (i <= 3) {
			t.Fatalf("event %d tracked=%v with a bound of 3", i, tracked)
		}
	}
	check := func(want envelope.Offset, passed int) {
		t.Helper()
		got, ids := p.Advance(func(id envelope.ID) bool {
			for i := uint64(1); i <= 4; i++ {
				if testID(i) == id {
					return done[i]
				}
			}
			return false
		})
		if got != want || len(ids) != passed {
			t.Fatalf("prefix %v after passing %d, want %v after %d", got, len(ids), want, passed)
		}
	}
	done[2] = true
	check(envelope.Offset{}, 0) // 1 is pending
	done[1] = true
	check(off(2, ""), 2)
	done[3], done[4] = true, true
	check(off(3, ""), 1) // 4 was not tracked: the prefix stops at 3
	if p.Seen(testID(5), off(5, "")) {
		t.Fatal("tracking resumed after the bound was hit")
	}
}

func TestDecodeOffset(t *testing.T) {
	b, err := EncodeOffset(off(5, "abc"))
	if err != nil {
		t.Fatal(err)
	}
	if o, err := DecodeOffset(b); err != nil || o != off(5, "abc") {
		t.Fatalf("%v %v", o, err)
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x82, 0x00, 0x60}, {0xa0}} {
		if _, err := DecodeOffset(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", bad, err)
		}
	}
	if !off(5, "a").Before(off(6, "")) || off(5, "a").Before(off(5, "a")) || !off(5, "a").Before(off(5, "b")) || off(6, "").Before(off(5, "z")) {
		t.Error("Before is wrong")
	}
}

func TestCoveredAndReaches(t *testing.T) {
	// Three lines in one millisecond, then one later: arrival order a, b, c, d.
	a, b, c, d := off(5, "a"), off(5, "b"), off(5, "c"), off(6, "d")
	offs := []envelope.Offset{off(4, "z"), a, a, b, c, d}
	for _, tc := range []struct {
		c    envelope.Offset
		want int
	}{{b, 4}, {a, 3}, {c, 5}, {d, 6}, {off(5, "x"), 1}, {off(3, "y"), 0}, {off(9, ""), 6}} {
		if got := Covered(offs, tc.c); got != tc.want {
			t.Errorf("Covered(%v) = %d, want %d", tc.c, got, tc.want)
		}
	}
	p := NewPrefix(10)
	for i, o := range []envelope.Offset{a, b, c, d} {
		p.Seen(testID(uint64(i+1)), o)
	}
	p.Advance(func(id envelope.ID) bool { return id != testID(3) }) // a, b passed; c pending
	for _, tc := range []struct {
		o    envelope.Offset
		want bool
	}{{a, true}, {b, true}, {c, false}, {d, false}, {off(4, "q"), true}, {off(5, "x"), false}} {
		if got := p.Reaches(tc.o); got != tc.want {
			t.Errorf("Reaches(%v) = %v, want %v", tc.o, got, tc.want)
		}
	}
}

func TestHistoryClaimPayload(t *testing.T) {
	b, err := EncodeHistoryClaim(off(9, "x"), off(5, "abc"))
	if err != nil {
		t.Fatal(err)
	}
	if c, k, err := DecodeHistoryClaim(b); err != nil || c != off(9, "x") || k != off(5, "abc") {
		t.Fatalf("%v %v %v", c, k, err)
	}
	// No commit known yet: a zero committed offset.
	b, _ = EncodeHistoryClaim(off(9, "x"), envelope.Offset{})
	if c, k, err := DecodeHistoryClaim(b); err != nil || c != off(9, "x") || !k.IsZero() {
		t.Fatalf("%v %v %v", c, k, err)
	}
	// The bare offset still decodes as a claim.
	b, _ = EncodeOffset(off(7, "y"))
	if c, k, err := DecodeHistoryClaim(b); err != nil || c != off(7, "y") || !k.IsZero() {
		t.Fatalf("%v %v %v", c, k, err)
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x84, 0x00, 0x60, 0x00, 0x60}, {0x84, 0x05, 0x60, 0x20, 0x60}, {0x84, 0x05, 0x60, 0x00, 0x61, 'a'}, {0x83, 0x05, 0x60, 0x00}} {
		if _, _, err := DecodeHistoryClaim(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

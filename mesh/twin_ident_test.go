package mesh

import (
	"testing"
	"time"
)

// TestIdentFor: a node's ident fits InspIRCd's default maxident, starts
// with its service, and differs between processes started a moment apart.
func TestIdentFor(t *testing.T) {
	inc := uint64(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano())
	seen := map[string]bool{}
	for i := range uint64(1000) {
		id := identFor("worker", inc+i)
		if len(id) > 10 || id[:5] != "work-" {
			t.Fatalf("identFor(worker, %d) = %q", inc+i, id)
		}
		for _, c := range id[5:] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
				t.Fatalf("identFor = %q: %q is not a base-36 digit", id, c)
			}
		}
		seen[id] = true
	}
	if len(seen) < 999 {
		t.Errorf("1000 incarnations a nanosecond apart gave %d idents", len(seen))
	}
	if identFor("ab", 7) != identFor("ab", 7) || identFor("ab", 7)[:3] != "ab-" {
		t.Errorf("identFor(ab, 7) = %q, %q", identFor("ab", 7), identFor("ab", 7))
	}
}

// TestIsUID: what InspIRCd renames a user to on a nick collision.
func TestIsUID(t *testing.T) {
	for nick, want := range map[string]bool{
		"001AAAAAB": true, "9ZZ12AB3C": true,
		"twin-x": false, "001aaaaab": false, "001AAAAA": false, "A01AAAAAB": false, "001AAAAAB0": false,
	} {
		if got := isUID(nick); got != want {
			t.Errorf("isUID(%q) = %v, want %v", nick, got, want)
		}
	}
}

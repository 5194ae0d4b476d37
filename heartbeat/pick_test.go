package heartbeat

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

func mem(id string, st State, load float32) Member {
	return Member{Service: "s", Instance: id, State: st, Beat: Beat{Service: "s", Instance: id, Load: load}}
}

func TestLeastLoaded(t *testing.T) {
	skipB := func(m Member) bool { return m.Instance == "b" }
	skipAll := func(Member) bool { return true }
	cases := []struct {
		name     string
		ms       []Member
		skip     func(Member) bool
		tiebreak uint64
		want     string // "" = none
	}{
		{"none", nil, nil, 0, ""},
		{"the lowest load", []Member{mem("a", Alive, 0.5), mem("b", Alive, 0.1), mem("c", Alive, 0.3)}, nil, 7, "b"},
		{"alive over a less loaded suspect", []Member{mem("a", Suspect, 0), mem("b", Alive, 0.9)}, nil, 0, "b"},
		{"suspects when none is alive", []Member{mem("a", Suspect, 0.4), mem("b", Suspect, 0.2), mem("c", Dead, 0)}, nil, 0, "b"},
		{"never the dead", []Member{mem("a", Dead, 0), mem("b", Dead, 0)}, nil, 0, ""},
		{"skip", []Member{mem("a", Alive, 0.5), mem("b", Alive, 0.1), mem("c", Alive, 0.3)}, skipB, 0, "c"},
		{"skip the only alive: a suspect", []Member{mem("a", Suspect, 0.5), mem("b", Alive, 0.1)}, skipB, 0, "a"},
		{"skip everyone", []Member{mem("a", Alive, 0), mem("b", Suspect, 0)}, skipAll, 0, ""},
		{"a tie, tiebreak 0", []Member{mem("c", Alive, 0.2), mem("a", Alive, 0.2), mem("b", Alive, 0.3)}, nil, 0, "c"},
		{"a tie, tiebreak 1", []Member{mem("c", Alive, 0.2), mem("a", Alive, 0.2), mem("b", Alive, 0.3)}, nil, 1, "a"},
		{"a tie, tiebreak wraps", []Member{mem("c", Alive, 0.2), mem("a", Alive, 0.2), mem("b", Alive, 0.3)}, nil, 5, "a"},
		{"a tie after a higher load", []Member{mem("b", Alive, 0.3), mem("c", Alive, 0.2), mem("a", Alive, 0.2)}, nil, 1, "a"},
		{"a tie, the skipped do not count", []Member{mem("c", Alive, 0.2), mem("b", Alive, 0.2), mem("a", Alive, 0.2)}, skipB, 1, "a"},
		{"a tie among suspects", []Member{mem("c", Suspect, 0), mem("a", Suspect, 0), mem("b", Dead, 0)}, nil, 3, "a"},
		{"max tiebreak", []Member{mem("c", Alive, 0), mem("a", Alive, 0)}, nil, ^uint64(0), "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := LeastLoaded(c.ms, c.skip, c.tiebreak)
			if ok != (c.want != "") || got.Instance != c.want {
				t.Errorf("LeastLoaded = %q, %v; want %q", got.Instance, ok, c.want)
			}
			if !ok && !reflect.DeepEqual(got, Member{}) {
				t.Errorf("not ok but returned %+v", got)
			}
		})
	}
}

// naiveLeastLoaded is LeastLoaded's twin: the candidates of the first
// non-empty tier (alive, then suspect), those with the least load, in list
// order; tiebreak indexes them.
func naiveLeastLoaded(ms []Member, skip func(Member) bool, tiebreak uint64) (Member, bool) {
	for _, st := range []State{Alive, Suspect} {
		var cs []Member
		for _, m := range ms {
			if m.State == st && (skip == nil || !skip(m)) {
				cs = append(cs, m)
			}
		}
		if len(cs) == 0 {
			continue
		}
		least := cs[0].Beat.Load
		for _, m := range cs {
			least = min(least, m.Beat.Load)
		}
		var ties []Member
		for _, m := range cs {
			if m.Beat.Load == least {
				ties = append(ties, m)
			}
		}
		return ties[tiebreak%uint64(len(ties))], true
	}
	return Member{}, false
}

func TestLeastLoadedNaiveTwin(t *testing.T) {
	f := func(ms pickSet, loads []uint8, tiebreak uint64, skipMod uint8) bool {
		for i := range ms {
			if i < len(loads) {
				ms[i].Beat.Load = float32(loads[i]%4) / 4 // few values: many ties
			}
		}
		skip := func(m Member) bool { return len(m.Instance)%int(skipMod%3+1) == 0 }
		if skipMod%2 == 0 {
			skip = nil
		}
		got, ok := LeastLoaded(ms, skip, tiebreak)
		want, wok := naiveLeastLoaded(ms, skip, tiebreak)
		if ok != wok || id(got) != id(want) {
			t.Logf("%v, tiebreak %d: got %s %v, want %s %v", ms, tiebreak, id(got), ok, id(want), wok)
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 3000}); err != nil {
		t.Error(err)
	}
}

// Successive tiebreaks spread requests over every equally loaded member.
func TestLeastLoadedSpreads(t *testing.T) {
	ms := []Member{mem("a", Alive, 0.1), mem("b", Alive, 0.1), mem("c", Alive, 0.5), mem("d", Alive, 0.1)}
	seen := map[string]int{}
	for tb := range uint64(300) {
		m, _ := LeastLoaded(ms, nil, tb)
		seen[m.Instance]++
	}
	if want := map[string]int{"a": 100, "b": 100, "d": 100}; !reflect.DeepEqual(seen, want) {
		t.Errorf("picked %v, want %v", seen, want)
	}
}

// pickSet is a random member list for testing/quick: ids unique, states
// mixed.
type pickSet []Member

func (pickSet) Generate(r *rand.Rand, size int) reflect.Value {
	n := r.Intn(12)
	var ms pickSet
	for _, i := range r.Perm(40)[:n] {
		svc := []string{"web", "db", "cache"}[r.Intn(3)]
		st := []State{Alive, Alive, Suspect, Dead}[r.Intn(4)]
		ms = append(ms, Member{Service: svc, Instance: fmt.Sprint("i", i), State: st})
	}
	return reflect.ValueOf(ms)
}

// naiveRendezvous is Rendezvous's twin: weigh every candidate, then take
// the heaviest alive one, or the heaviest suspect one when none is alive.
func naiveRendezvous(key string, ms []Member, skip func(Member) bool) (Member, bool) {
	type cand struct {
		m Member
		w uint64
	}
	var alive, suspect []cand
	for _, m := range ms {
		if skip != nil && skip(m) {
			continue
		}
		c := cand{m, Weight(key, m.Service+"/"+m.Instance)}
		switch m.State {
		case Alive:
			alive = append(alive, c)
		case Suspect:
			suspect = append(suspect, c)
		}
	}
	for _, cs := range [][]cand{alive, suspect} {
		if len(cs) == 0 {
			continue
		}
		best := cs[0]
		for _, c := range cs[1:] {
			if c.w > best.w {
				best = c
			}
		}
		return best.m, true
	}
	return Member{}, false
}

func id(m Member) string { return m.Service + "/" + m.Instance }

func TestRendezvousNaiveTwin(t *testing.T) {
	f := func(key string, ms pickSet, skipMod uint8) bool {
		skip := func(m Member) bool { return skipMod > 0 && len(m.Instance)%int(skipMod%4+1) == 0 }
		if skipMod%2 == 0 {
			skip = nil
		}
		got, ok := Rendezvous(key, ms, skip)
		want, wok := naiveRendezvous(key, ms, skip)
		if ok != wok || id(got) != id(want) {
			t.Logf("key %q, %v: got %s %v, want %s %v", key, ms, id(got), ok, id(want), wok)
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 3000}); err != nil {
		t.Error(err)
	}
}

// Every observer with the same members picks the same one, whatever the
// order it holds them in.
func TestRendezvousOrderFree(t *testing.T) {
	f := func(key string, ms pickSet, seed int64) bool {
		want, wok := Rendezvous(key, ms, nil)
		r := rand.New(rand.NewSource(seed))
		for range 5 {
			sh := append(pickSet(nil), ms...)
			r.Shuffle(len(sh), func(i, j int) { sh[i], sh[j] = sh[j], sh[i] })
			if got, ok := Rendezvous(key, sh, nil); ok != wok || id(got) != id(want) {
				t.Logf("key %q: %v picks %s, %v picks %s", key, ms, id(want), sh, id(got))
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}

// A member leaving moves only its own keys, and its keys go elsewhere.
func TestRendezvousRemoval(t *testing.T) {
	f := func(ms pickSet, which uint8, keys []string) bool {
		if len(ms) == 0 {
			return true
		}
		gone := ms[int(which)%len(ms)]
		rest := append(pickSet(nil), ms[:int(which)%len(ms)]...)
		rest = append(rest, ms[int(which)%len(ms)+1:]...)
		keys = append(keys, "a", "b", "c", "orders", "users/42")
		for _, k := range keys {
			before, bok := Rendezvous(k, ms, nil)
			after, aok := Rendezvous(k, rest, nil)
			switch {
			case !bok:
				if aok {
					return false
				}
			case id(before) == id(gone):
				if aok && id(after) == id(gone) {
					return false
				}
				// Its keys go where the naive twin sends them.
				if w, wok := naiveRendezvous(k, rest, nil); wok != aok || id(w) != id(after) {
					return false
				}
			case gone.State == Alive && before.State == Suspect:
				// Cannot happen: an alive member was there to pick.
				return false
			case !aok || id(after) != id(before):
				// Removing a suspect while an alive one is picked, or
				// anyone not picked, must not move the key.
				t.Logf("key %q moved from %s to %s when %s left %v", k, id(before), id(after), id(gone), ms)
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}

func TestRendezvous(t *testing.T) {
	ms := []Member{mem("a", Alive, 0), mem("b", Alive, 0), mem("c", Suspect, 0), mem("d", Dead, 0)}
	// Prefers alive: over many keys, neither the suspect nor the dead is
	// picked while alive members remain.
	for i := range 1000 {
		k := fmt.Sprint("key", i)
		if m, ok := Rendezvous(k, ms, nil); !ok || m.State != Alive {
			t.Fatalf("%s → %+v, %v", k, m, ok)
		}
	}
	// Only the suspect left alive: it is picked; none at all: not ok.
	onlyC := func(m Member) bool { return m.Instance != "c" && m.Instance != "d" }
	if m, ok := Rendezvous("k", ms, onlyC); !ok || m.Instance != "c" {
		t.Errorf("only a suspect left: %+v, %v", m, ok)
	}
	if m, ok := Rendezvous("k", ms[3:], nil); ok {
		t.Errorf("only the dead: %+v", m)
	}
	if _, ok := Rendezvous("k", nil, nil); ok {
		t.Error("no members: ok")
	}
	// Skip: a skipped member is never picked; the rest keep their keys.
	skipA := func(m Member) bool { return m.Instance == "a" }
	for i := range 200 {
		k := fmt.Sprint("key", i)
		before, _ := Rendezvous(k, ms, nil)
		after, ok := Rendezvous(k, ms, skipA)
		if !ok || after.Instance == "a" || before.Instance != "a" && after.Instance != before.Instance {
			t.Fatalf("%s: %s, skipping a: %s", k, before.Instance, after.Instance)
		}
	}
}

// The weights spread keys evenly: each of 5 members gets its fifth of
// 20000 keys, give or take 10%.
func TestRendezvousBalance(t *testing.T) {
	var ms []Member
	for i := range 5 {
		ms = append(ms, mem(fmt.Sprint("worker-", i), Alive, 0))
	}
	count := map[string]int{}
	const keys = 20000
	for i := range keys {
		m, _ := Rendezvous(fmt.Sprint("order-", i), ms, nil)
		count[m.Instance]++
	}
	for _, m := range ms {
		if c := count[m.Instance]; c < keys/5*9/10 || c > keys/5*11/10 {
			t.Errorf("%s got %d of %d keys: %v", m.Instance, c, keys, count)
		}
	}
}

// The weight is a pure function of key and member, and separates the key
// from the member (no "ab"+"c" = "a"+"bc" collision).
func TestWeight(t *testing.T) {
	if a, b := Weight("k", "s/i"), Weight("k", "s/i"); a != b {
		t.Error("Weight is not deterministic")
	}
	if Weight("ab", "c") == Weight("a", "bc") {
		t.Error("Weight(ab, c) == Weight(a, bc)")
	}
	if Weight("k", "s/a") == Weight("k", "s/b") {
		t.Error("two members, one weight")
	}
}

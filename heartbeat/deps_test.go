package heartbeat

import (
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/quick"
)

func dep(svc, inst string, st State, deps ...string) Member {
	return Member{Service: svc, Instance: inst, State: st, Beat: Beat{Service: svc, Instance: inst, Depends: deps}}
}

func TestDependencies(t *testing.T) {
	cases := []struct {
		name    string
		members []Member
		want    map[string][]string
	}{
		{"none", nil, map[string][]string{}},
		{
			"merged over instances, sorted, without duplicates",
			[]Member{
				dep("web", "1", Alive, "db", "cache", "db"),
				dep("web", "2", Suspect, "auth", "db"),
				dep("db", "1", Alive),
			},
			map[string][]string{"web": {"auth", "cache", "db"}, "db": nil},
		},
		{
			"dead members do not count",
			[]Member{
				dep("web", "1", Alive, "db"),
				dep("web", "2", Dead, "legacy"),
				dep("old", "1", Dead, "db"),
			},
			map[string][]string{"web": {"db"}},
		},
		{
			"a service that depends on itself",
			[]Member{dep("a", "1", Alive, "a")},
			map[string][]string{"a": {"a"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Dependencies(c.members); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Dependencies = %v, want %v", got, c.want)
			}
		})
	}
	// The members' own slices are not changed.
	m := dep("web", "1", Alive, "z", "a")
	Dependencies([]Member{m})
	if !slices.Equal(m.Beat.Depends, []string{"z", "a"}) {
		t.Errorf("Dependencies sorted a member's Depends: %v", m.Beat.Depends)
	}
}

func TestCycles(t *testing.T) {
	cases := []struct {
		name string
		g    map[string][]string
		want [][]string
	}{
		{"empty", map[string][]string{}, nil},
		{"nil", nil, nil},
		{"no cycle", map[string][]string{"a": {"b"}, "b": {"c"}, "c": nil}, nil},
		{"a DAG with shared dependencies", map[string][]string{"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": nil, "e": {"a", "d"}}, nil},
		{"dependencies nobody announces", map[string][]string{"a": {"x", "y"}, "b": {"x"}}, nil},
		{"self-loop", map[string][]string{"a": {"a"}, "b": {"a"}}, [][]string{{"a"}}},
		{"two-cycle", map[string][]string{"a": {"b"}, "b": {"a"}}, [][]string{{"a", "b"}}},
		{"two disjoint cycles", map[string][]string{"d": {"c"}, "c": {"d"}, "a": {"b"}, "b": {"a"}}, [][]string{{"a", "b"}, {"c", "d"}}},
		{"two cycles through one service", map[string][]string{"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}, [][]string{{"a", "b"}, {"a", "c"}}},
		{
			// Found from d (reached from a) as d→c→b→d: reported from b.
			"rotated to the smallest name",
			map[string][]string{"a": {"d"}, "d": {"c"}, "c": {"b"}, "b": {"d"}},
			[][]string{{"b", "d", "c"}},
		},
		{
			"a cycle reached from several services is reported once",
			map[string][]string{"a": {"c"}, "b": {"c"}, "e": {"d"}, "c": {"d"}, "d": {"c"}},
			[][]string{{"c", "d"}},
		},
		{
			"a three-cycle and a self-loop",
			map[string][]string{"x": {"y", "x"}, "y": {"z"}, "z": {"x"}},
			[][]string{{"x"}, {"x", "y", "z"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for range 5 { // map order varies; the answer must not
				if got := Cycles(c.g); !reflect.DeepEqual(got, c.want) {
					t.Fatalf("Cycles = %v, want %v", got, c.want)
				}
			}
		})
	}
}

// depGraph is a random dependency graph for testing/quick.
type depGraph map[string][]string

func (depGraph) Generate(r *rand.Rand, size int) reflect.Value {
	n := 1 + r.Intn(7)
	g := depGraph{}
	for i := range n {
		s := string(rune('a' + i))
		g[s] = nil
		for j := range n + 1 { // n+1: sometimes a service nobody announces
			if r.Intn(4) == 0 {
				g[s] = append(g[s], string(rune('a'+j)))
			}
		}
		r.Shuffle(len(g[s]), func(x, y int) { g[s][x], g[s][y] = g[s][y], g[s][x] })
	}
	return reflect.ValueOf(g)
}

// reach is the naive transitive closure of g.
func reach(g map[string][]string) map[[2]string]bool {
	r := map[[2]string]bool{}
	var nodes []string
	for s, ds := range g {
		nodes = append(nodes, s)
		for _, d := range ds {
			r[[2]string{s, d}] = true
			nodes = append(nodes, d)
		}
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	for _, k := range nodes {
		for _, i := range nodes {
			for _, j := range nodes {
				if r[[2]string{i, k}] && r[[2]string{k, j}] {
					r[[2]string{i, j}] = true
				}
			}
		}
	}
	return r
}

// TestCyclesQuick checks Cycles against a naive twin (transitive closure):
// it finds a cycle exactly when there is one, at least one in every
// strongly connected part that has one, and every cycle it reports is a
// real one, without repeats, rotated and sorted as documented.
//
// It need not report every elementary cycle: in a→b→c→a with a→c as well,
// a→c→a may go unreported (see TestCyclesNotAll).
func TestCyclesQuick(t *testing.T) {
	check := func(dg depGraph) bool {
		g := map[string][]string(dg)
		got := Cycles(g)
		r := reach(g)
		has := func(a, b string) bool { return slices.Contains(g[a], b) }
		if !slices.IsSortedFunc(got, slices.Compare) {
			t.Logf("%v: not sorted: %v", g, got)
			return false
		}
		seen := map[string]bool{}
		for _, c := range got {
			k := strings.Join(c, " ")
			if len(c) == 0 || seen[k] || c[0] != slices.Min(c) {
				t.Logf("%v: bad cycle %v in %v", g, c, got)
				return false
			}
			seen[k] = true
			uniq := slices.Clone(c)
			slices.Sort(uniq)
			if len(slices.Compact(uniq)) != len(c) {
				t.Logf("%v: %v repeats a service", g, c)
				return false
			}
			for i := range c {
				if !has(c[i], c[(i+1)%len(c)]) {
					t.Logf("%v: %v is no cycle: no edge %s→%s", g, c, c[i], c[(i+1)%len(c)])
					return false
				}
			}
		}
		// Every service on a cycle (reaches itself) is in a strongly
		// connected part with a reported cycle.
		for s := range g {
			if !r[[2]string{s, s}] {
				continue
			}
			found := false
			for _, c := range got {
				if r[[2]string{s, c[0]}] && r[[2]string{c[0], s}] {
					found = true
				}
			}
			if !found {
				t.Logf("%v: %s is on a cycle but none reported near it: %v", g, s, got)
				return false
			}
		}
		return true
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}

// TestCyclesNotAll pins down what Cycles reports when cycles share edges:
// one per back edge of a depth-first search from the smallest name, not
// every elementary cycle.
func TestCyclesNotAll(t *testing.T) {
	g := map[string][]string{"a": {"b", "c"}, "b": {"c"}, "c": {"a"}}
	got := Cycles(g)
	if want := [][]string{{"a", "b", "c"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Cycles = %v, want %v (a→c→a is not reported)", got, want)
	}
}

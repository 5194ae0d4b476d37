package heartbeat

import (
	"slices"
)

// Dependencies returns the dependency graph the live members announce:
// service → the services it depends on (merged over its instances, sorted).
func Dependencies(members []Member) map[string][]string {
	g := map[string][]string{}
	for _, m := range members {
		if m.State == Dead {
			continue
		}
		if _, ok := g[m.Service]; !ok {
			g[m.Service] = nil
		}
		for _, d := range m.Beat.Depends {
			if !slices.Contains(g[m.Service], d) {
				g[m.Service] = append(g[m.Service], d)
			}
		}
	}
	for s := range g {
		slices.Sort(g[s])
	}
	return g
}

// Cycles returns dependency cycles in g — at least one for every group of
// services that depend on each other in a loop (not every distinct cycle
// through such a group) — each as the services on it starting from the
// smallest name, sorted; nil when there are none.
func Cycles(g map[string][]string) [][]string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var cycles [][]string
	seen := map[string]bool{}
	var visit func(s string)
	visit = func(s string) {
		color[s] = grey
		stack = append(stack, s)
		for _, d := range g[s] {
			switch color[d] {
			case white:
				visit(d)
			case grey:
				i := slices.Index(stack, d)
				c := rotate(slices.Clone(stack[i:]))
				if k := key2(c); !seen[k] {
					seen[k] = true
					cycles = append(cycles, c)
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[s] = black
	}
	names := make([]string, 0, len(g))
	for s := range g {
		names = append(names, s)
	}
	slices.Sort(names)
	for _, s := range names {
		if color[s] == white {
			visit(s)
		}
	}
	slices.SortFunc(cycles, func(a, b []string) int { return slices.Compare(a, b) })
	return cycles
}

// rotate starts a cycle at its smallest name.
func rotate(c []string) []string {
	i := slices.Index(c, slices.Min(c))
	return append(c[i:], c[:i]...)
}

func key2(c []string) string {
	k := ""
	for _, s := range c {
		k += s + "\x00"
	}
	return k
}

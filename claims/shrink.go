package claims

import (
	"slices"

	"github.com/meshbot/meshbot/envelope"
)

// Memory returned. A member tracks every event of its group for the
// retention, so a burst grows its maps and slices to the burst's size. Go
// maps never shrink and a slice keeps its array, so once the burst's events
// are forgotten the structures are rebuilt at the size they hold: memory
// follows the events remembered, not the largest burst seen. Each rebuild
// copies what is left, at most a quarter of what was dropped since the
// last one: amortised, a constant per event.

// shrinkFloor is the size below which nothing is rebuilt.
const shrinkFloor = 1024

// shouldShrink reports whether a structure holding n entries, after holding
// peak, is worth rebuilding.
func shouldShrink(n, peak int) bool { return peak >= shrinkFloor && n <= peak/4 }

// shrinkMap returns m rebuilt at its size when it holds a quarter of its
// peak or less, and the peak to count from.
func shrinkMap[V any](m map[envelope.ID]V, peak int) (map[envelope.ID]V, int) {
	n := len(m)
	if n > peak {
		return m, n
	}
	if !shouldShrink(n, peak) {
		return m, peak
	}
	out := make(map[envelope.ID]V, n)
	for k, v := range m {
		out[k] = v
	}
	return out, n
}

// shrinkSlice returns s[head:] in an array of its size when s's array is
// four times larger or more, nil when it is empty, else s[head:].
func shrinkSlice[T any](s []T, head int) []T {
	switch {
	case len(s) == head:
		return nil
	case shouldShrink(len(s)-head, cap(s)):
		return slices.Clone(s[head:])
	}
	return s[head:]
}

// shrink rebuilds the core's structures that outgrew what they hold.
func (c *Core) shrink() {
	if len(c.events) > c.peak {
		c.peak = len(c.events)
	}
	c.events, c.peak = shrinkMap(c.events, c.peak)
	c.done, c.doneHead = shrinkSlice(c.done, c.doneHead), 0
	c.timers = shrinkSlice(c.timers, 0)
}

// shrink rebuilds the group's structures that outgrew what they hold.
func (g *Group) shrink() {
	if len(g.events) > g.peak {
		g.peak = len(g.events)
	}
	g.events, g.peak = shrinkMap(g.events, g.peak)
	g.behind = shrinkSlice(g.behind, 0)
	g.behindIDs = shrinkSlice(g.behindIDs, 0)
	g.prefix.q, g.prefix.head = shrinkSlice(g.prefix.q, g.prefix.head), 0
}

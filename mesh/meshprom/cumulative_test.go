package meshprom

import (
	"maps"
	"testing"
)

func TestCumulative(t *testing.T) {
	bounds := []float64{0.1, 1, 10}
	for _, tc := range []struct {
		name  string
		per   []uint64
		count uint64
		cum   map[float64]uint64
	}{
		{"empty", []uint64{0, 0, 0, 0}, 0, map[float64]uint64{0.1: 0, 1: 0, 10: 0}},
		{"spread", []uint64{1, 2, 3, 4}, 10, map[float64]uint64{0.1: 1, 1: 3, 10: 6}},
		{"only slow", []uint64{0, 0, 0, 7}, 7, map[float64]uint64{0.1: 0, 1: 0, 10: 0}},
		// Defensive: a snapshot shorter or longer than the bounds.
		{"short", []uint64{2}, 2, map[float64]uint64{0.1: 2, 1: 2, 10: 2}},
		{"long", []uint64{1, 1, 1, 1, 1}, 5, map[float64]uint64{0.1: 1, 1: 2, 10: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			count, cum := cumulative(bounds, tc.per)
			if count != tc.count || !maps.Equal(cum, tc.cum) {
				t.Errorf("cumulative(%v) = %d %v, want %d %v", tc.per, count, cum, tc.count, tc.cum)
			}
		})
	}
}

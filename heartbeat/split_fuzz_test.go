package heartbeat

import (
	"strings"
	"testing"
)

// FuzzParseSplitQuit: the text of a QUIT, from the network. No input
// panics; a text taken for a split names two servers, each a word of the
// text.
func FuzzParseSplitQuit(f *testing.F) {
	for _, s := range []string{"a.example b.example", "*.net *.split", "Quit: a.example b.example", "Ping timeout: 120 seconds", "", " ", "a b c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		near, far, ok := ParseSplitQuit(s)
		if !ok {
			if near != "" || far != "" {
				t.Fatalf("no split, yet %q %q", near, far)
			}
			return
		}
		if near == "" || far == "" || !strings.Contains(s, near) || !strings.Contains(s, far) {
			t.Fatalf("split of %q: %q %q", s, near, far)
		}
	})
}

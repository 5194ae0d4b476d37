package envelope

import "testing"

// FuzzParseOffset: an offset as text (flags, files, what a person types,
// offsets quoted back by tools). No input panics; what parses prints to
// a text that parses to the same offset.
func FuzzParseOffset(f *testing.F) {
	for _, s := range []string{"", "2026-11-23T08:19:43.921Z/0MB~1795424215~7", "2026-11-23T08:19:43Z/", "2026-11-23T08:19:43Z", "x/y", "2026-11-23T08:19:43.921Z/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOffset(s)
		if err != nil {
			return
		}
		again, err := ParseOffset(o.String())
		if err != nil || again.Time != o.Time || again.MsgID != o.MsgID {
			t.Fatalf("%q parses to %+v, printed %q, parsed again %+v (%v)", s, o, o.String(), again, err)
		}
	})
}

package history_test

import (
	"testing"

	"github.com/meshbot/meshbot/history"
)

// FuzzDecodeStateRequest and FuzzDecodeStateAnswer: what arrives from the
// network never panics, and what decodes encodes again.
func FuzzDecodeStateRequest(f *testing.F) {
	for _, r := range []history.StateRequest{{Domain: "cfg"}, {Domain: "cfg.app", Key: "k", Versions: 3}, {Domain: "a", After: "m"}} {
		b, err := r.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := history.DecodeStateRequest(b)
		if err != nil {
			return
		}
		if _, err := r.Encode(); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeStateAnswer(f *testing.F) {
	a := history.StateAnswer{Records: []history.PageRecord{{Time: 1, MsgID: "m", Nick: "cfg-a", Tags: map[string]string{"+meshbot/e": "AA"}, Body: "mesh state cfg 00000000"}},
		Last: "k", End: true, Recorder: "history/r1", Kept: 2}
	b, err := a.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := history.DecodeStateAnswer(b)
		if err != nil {
			return
		}
		if _, err := a.Encode(); err != nil {
			t.Fatal(err)
		}
	})
}

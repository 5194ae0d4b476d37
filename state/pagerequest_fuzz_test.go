package state

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshbot/meshbot/envelope"
)

// FuzzDecodePageRequest: a snapshot request as a holder receives it from
// the network (§8.5): no input panics, errors wrap ErrMalformed, what
// decodes names a valid domain, holds at most MaxHave updates, and
// re-encodes to bytes that decode to the same encoding. The seed corpus
// is in testdata/fuzz/FuzzDecodePageRequest.
func FuzzDecodePageRequest(f *testing.F) {
	for _, r := range []*PageRequest{{Domain: "cfg"}, {Domain: "cfg.flags", After: "a", Until: "z", Have: []envelope.ID{envelope.NewID()}, MaxBytes: 4096}} {
		b, err := EncodePageRequest(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodePageRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if ValidDomain(r.Domain) != nil || len(r.Have) > MaxHave {
			t.Fatalf("accepted %+v", r)
		}
		enc, err := EncodePageRequest(r)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", r, err)
		}
		again, err := DecodePageRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		enc2, _ := EncodePageRequest(again)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
	})
}

package state

import (
	"bytes"
	"testing"
)

// FuzzDecodePayload: no input panics, and what decodes re-encodes to a
// payload that decodes to the same update (§8.2). The seed corpus is in
// testdata/fuzz/FuzzDecodePayload.
func FuzzDecodePayload(f *testing.F) {
	for _, u := range []*Update{
		{Version: 1, Puts: []KeyPut{{Key: "k", Version: 1, Value: []byte("v")}}},
		{Version: 9, Deletes: []KeyDelete{{Key: "gone", Version: 4}}},
		{Version: 3, Whole: true, Puts: []KeyPut{{Key: "a", Version: 2}, {Key: "b", Version: 1, Value: []byte{0xff}}}, Deletes: []KeyDelete{{Key: "c", Version: 5}}},
	} {
		b, err := EncodePayload(u)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var u Update
		if err := DecodePayload(b, &u); err != nil {
			return
		}
		enc, err := EncodePayload(&u)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", u, err)
		}
		var again Update
		if err := DecodePayload(enc, &again); err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		enc2, _ := EncodePayload(&again)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzDecodePage: snapshot requests and pages from the network never
// panic, and what decodes re-encodes.
func FuzzDecodePage(f *testing.F) {
	p, _ := EncodePage(&Page{Updates: []Sealed{{Envelope: []byte{0xa0}, Nick: "cfg-a"}}, Last: "k", End: true, Version: 3, Keys: 1})
	f.Add(p)
	r, _ := EncodePageRequest(&PageRequest{Domain: "cfg", After: "a", Until: "b", MaxBytes: 10})
	f.Add(r)
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := DecodePage(b); err == nil {
			enc, err := EncodePage(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodePage(enc); err != nil {
				t.Fatalf("re-encoded page does not decode: %v", err)
			}
		}
		if r, err := DecodePageRequest(b); err == nil {
			if _, err := EncodePageRequest(r); err != nil {
				t.Fatalf("decoded request does not encode: %v", err)
			}
		}
	})
}

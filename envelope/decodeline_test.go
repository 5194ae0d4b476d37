package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// twin feeds the same lines to two decoders of one config, one through
// Decode and one through DecodeLine, and fails when Result differs from
// what Decode returned or the counters differ. It returns the DecodeLine
// results.
type twin struct {
	t          *testing.T
	plain, det *Decoder
}

func newTwin(t *testing.T, cfg func() DecoderConfig) *twin {
	return &twin{t: t, plain: NewDecoder(cfg()), det: NewDecoder(cfg())}
}

func (w *twin) line(sender string, l Line) DecodedLine {
	w.t.Helper()
	envs, mesh, err := w.plain.Decode(sender, l.Tags, l.Body, t0)
	got := w.det.DecodeLine(sender, l.Tags, l.Body, t0)
	genvs, gmesh, gerr := got.Result()
	if gmesh != mesh || fmt.Sprint(gerr) != fmt.Sprint(err) || len(genvs) != len(envs) {
		w.t.Fatalf("Result() = %d envs, %v, %v; Decode = %d envs, %v, %v", len(genvs), gmesh, gerr, len(envs), mesh, err)
	}
	for i := range envs {
		if genvs[i].ID != envs[i].ID {
			w.t.Fatalf("envelope %d: %s, Decode gave %s", i, genvs[i].ID, envs[i].ID)
		}
	}
	if len(Errors(gerr)) != len(Errors(err)) {
		w.t.Fatalf("Result() joins %d errors, Decode %d", len(Errors(gerr)), len(Errors(err)))
	}
	ps, pr := w.plain.Stats()
	ds, dr := w.det.Stats()
	if ps != ds || pr != dr {
		w.t.Fatalf("counters differ: Decode %+v %+v, DecodeLine %+v %+v", ps, pr, ds, dr)
	}
	return got
}

func sealedWith(t *testing.T, e *Envelope, s Signer) []byte {
	t.Helper()
	b, err := Seal(e, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeLines(t *testing.T, e *Envelope, sealed []byte, c Carrier, lim Limits) []Line {
	t.Helper()
	lines, err := EncodeLines(e, sealed, c, lim)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestDecodeLineNotMesh(t *testing.T) {
	w := newTwin(t, func() DecoderConfig { return DecoderConfig{} })
	got := w.line("bob", Line{Body: "good morning, bots"})
	if !reflect.DeepEqual(got, DecodedLine{}) {
		t.Fatalf("a human line: %+v, want the zero DecodedLine", got)
	}
	if s, _ := w.det.Stats(); s.NotMesh != 1 {
		t.Fatalf("NotMesh = %d", s.NotMesh)
	}
}

// One whole envelope, on either carrier: carrier, sealed bytes, state.
func TestDecodeLineWhole(t *testing.T) {
	_, hm, ring := testKeys(t)
	for _, c := range []Carrier{CarrierTag, CarrierBody} {
		t.Run(c.String(), func(t *testing.T) {
			e := sampleEnvelope()
			sealed := sealedWith(t, e, hm)
			lines := encodeLines(t, e, sealed, c, Limits{BodyBytes: 1000})
			if len(lines) != 1 {
				t.Fatalf("%d lines", len(lines))
			}
			w := newTwin(t, func() DecoderConfig { return DecoderConfig{Verifier: &Verifier{Keys: ring}} })
			got := w.line("orders-a1", lines[0])
			if !got.Mesh || got.Carrier != c || got.Err != nil || got.Fragment != nil || got.Fragments != 0 || len(got.Envelopes) != 1 {
				t.Fatalf("%+v", got)
			}
			de := got.Envelopes[0]
			if de.Envelope == nil || de.Envelope.ID != e.ID || !bytes.Equal(de.Sealed, sealed) || de.Signature != SigVerified || de.Err != nil {
				t.Fatalf("entry %+v", de)
			}
		})
	}
}

// Fragments in order and out of order: each stored one says which it is;
// the one that completes the envelope says how many it took, whatever its
// index.
func TestDecodeLineFragments(t *testing.T) {
	e := sampleEnvelope()
	e.Payload = bytes.Repeat([]byte("y"), 900)
	sealed := sealedWith(t, e, nil)
	for _, c := range []Carrier{CarrierTag, CarrierBody} {
		lines := encodeLines(t, e, sealed, c, Limits{TagBytes: 400, BodyBytes: 300})
		n := len(lines)
		if n < 4 {
			t.Fatalf("%s: %d lines, want several", c, n)
		}
		orders := map[string][]int{"in order": nil, "reversed": nil, "shuffled": nil}
		for i := range n {
			orders["in order"] = append(orders["in order"], i)
			orders["reversed"] = append(orders["reversed"], n-1-i)
		}
		orders["shuffled"] = rand.New(rand.NewPCG(1, 2)).Perm(n)
		for name, order := range orders {
			t.Run(c.String()+"/"+name, func(t *testing.T) {
				w := newTwin(t, func() DecoderConfig { return DecoderConfig{} })
				for k, i := range order {
					got := w.line("orders-a1", lines[i])
					if !got.Mesh || got.Carrier != c || got.Err != nil {
						t.Fatalf("line %d: %+v", i+1, got)
					}
					f, _, _ := ParseLine(lines[i].Tags, lines[i].Body)
					if k < n-1 {
						want := &Fragment{Short: e.ID.Short(), Index: i + 1, Count: n, Bytes: len(f.Data)}
						if !reflect.DeepEqual(got.Fragment, want) || got.Fragments != 0 || len(got.Envelopes) != 0 {
							t.Fatalf("line %d (%d-th): fragment %+v, fragments %d, %d envelopes; want %+v", i+1, k+1, got.Fragment, got.Fragments, len(got.Envelopes), want)
						}
						continue
					}
					if got.Fragment != nil || got.Fragments != n || len(got.Envelopes) != 1 {
						t.Fatalf("last line %d: fragment %+v, fragments %d, %d envelopes", i+1, got.Fragment, got.Fragments, len(got.Envelopes))
					}
					de := got.Envelopes[0]
					if de.Envelope.ID != e.ID || !bytes.Equal(de.Sealed, sealed) || de.Signature != SigUnsigned || de.Err != nil {
						t.Fatalf("entry %+v", de)
					}
				}
			})
		}
	}
}

// §3.9: one entry per envelope of a batch, in line order, each with its
// own bytes, state and error; the rejected one still shows its envelope.
func TestDecodeLineBatch(t *testing.T) {
	ed, hm, ring := testKeys(t)
	signers := []Signer{hm, nil, NewHMACSigner("mesh", []byte("wrong key")), ed}
	var envs []*Envelope
	var sealed [][]byte
	for i, s := range signers {
		e := sampleEnvelope()
		e.Payload = []byte(fmt.Sprintf("event-%d", i))
		envs, sealed = append(envs, e), append(sealed, sealedWith(t, e, s))
	}
	l, err := EncodeBatchLine(envs, sealed, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := newTwin(t, func() DecoderConfig { return DecoderConfig{Verifier: &Verifier{Keys: ring}} })
	got := w.line("orders-a1", l)
	if !got.Mesh || got.Carrier != CarrierTag || got.Err != nil || got.Fragment != nil || got.Fragments != 0 || len(got.Envelopes) != len(envs) {
		t.Fatalf("%+v", got)
	}
	wantSig := []SigState{SigVerified, SigUnsigned, SigUnknown, SigVerified}
	for i, de := range got.Envelopes {
		if de.Envelope == nil || de.Envelope.ID != envs[i].ID || !bytes.Equal(de.Sealed, sealed[i]) || de.Signature != wantSig[i] {
			t.Errorf("entry %d: %+v, want signature %s", i, de, wantSig[i])
		}
		if forged := i == 2; forged != errors.Is(de.Err, ErrForged) || !forged && de.Err != nil {
			t.Errorf("entry %d: err %v", i, de.Err)
		}
	}
	if accepted, _, _ := got.Result(); len(accepted) != 3 {
		t.Errorf("Result: %d accepted, want 3", len(accepted))
	}
}

// The signature states, with and without a keyring, with and without
// AcceptUnchecked.
func TestDecodeLineSignatures(t *testing.T) {
	ed, hm, ring := testKeys(t)
	forger := NewHMACSigner("mesh", []byte("wrong key"))
	stranger := NewHMACSigner("other", []byte("a key nobody trusts"))
	type want struct {
		sig SigState
		err error
	}
	ok := func(s SigState) want { return want{s, nil} }
	bad := func(err error) want { return want{SigUnknown, err} }
	for _, tc := range []struct {
		name string
		cfg  DecoderConfig
		// by signer: unsigned, ed25519, hmac, forged, unknown key
		want [5]want
	}{
		{"no keyring", DecoderConfig{},
			[5]want{ok(SigUnsigned), bad(ErrUnknownKey), bad(ErrUnknownKey), bad(ErrUnknownKey), bad(ErrUnknownKey)}},
		{"no keyring, unchecked", DecoderConfig{AcceptUnchecked: true},
			[5]want{ok(SigUnsigned), ok(SigUnchecked), ok(SigUnchecked), ok(SigUnchecked), ok(SigUnchecked)}},
		{"no keyring, unchecked, signed required", DecoderConfig{AcceptUnchecked: true, Verifier: &Verifier{RequireSigned: true}},
			[5]want{bad(ErrUnsigned), ok(SigUnchecked), ok(SigUnchecked), ok(SigUnchecked), ok(SigUnchecked)}},
		{"keyring", DecoderConfig{Verifier: &Verifier{Keys: ring}},
			[5]want{ok(SigUnsigned), ok(SigVerified), ok(SigVerified), bad(ErrForged), bad(ErrUnknownKey)}},
		{"keyring, unchecked", DecoderConfig{AcceptUnchecked: true, Verifier: &Verifier{Keys: ring}},
			[5]want{ok(SigUnsigned), ok(SigVerified), ok(SigVerified), bad(ErrForged), bad(ErrUnknownKey)}},
		{"keyring, signed required", DecoderConfig{Verifier: &Verifier{Keys: ring, RequireSigned: true}},
			[5]want{bad(ErrUnsigned), ok(SigVerified), ok(SigVerified), bad(ErrForged), bad(ErrUnknownKey)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTwin(t, func() DecoderConfig { return tc.cfg })
			for i, s := range []Signer{nil, ed, hm, forger, stranger} {
				e := sampleEnvelope()
				sealed := sealedWith(t, e, s)
				got := w.line("orders-a1", encodeLines(t, e, sealed, CarrierBody, Limits{BodyBytes: 2000})[0])
				if got.Err != nil || len(got.Envelopes) != 1 {
					t.Fatalf("signer %d: %+v", i, got)
				}
				de := got.Envelopes[0]
				if de.Signature != tc.want[i].sig || !errors.Is(de.Err, tc.want[i].err) || (tc.want[i].err == nil) != (de.Err == nil) {
					t.Errorf("signer %d: %s, %v; want %s, %v", i, de.Signature, de.Err, tc.want[i].sig, tc.want[i].err)
				}
				if de.Envelope == nil || de.Envelope.ID != e.ID {
					t.Errorf("signer %d: the envelope is not shown: %+v", i, de)
				}
				// Open agrees with the line's verdict.
				if _, err := w.det.Open(sealed, t0); (err == nil) != (de.Err == nil) {
					t.Errorf("signer %d: Open: %v, the line: %v", i, err, de.Err)
				}
			}
		})
	}
}

// A guard's rejection comes after the signature check: the state stays.
func TestDecodeLineDuplicate(t *testing.T) {
	_, hm, ring := testKeys(t)
	e := sampleEnvelope()
	l := encodeLines(t, e, sealedWith(t, e, hm), CarrierTag, Limits{})[0]
	w := newTwin(t, func() DecoderConfig {
		return DecoderConfig{Verifier: &Verifier{Keys: ring}, Guard: NewGuard(0, 0)}
	})
	if got := w.line("orders-a1", l); got.Envelopes[0].Err != nil {
		t.Fatal(got.Envelopes[0].Err)
	}
	de := w.line("orders-a1", l).Envelopes[0]
	if !errors.Is(de.Err, ErrDuplicate) || de.Signature != SigVerified || de.Envelope.ID != e.ID {
		t.Fatalf("%+v", de)
	}
}

// Rejections of the line as a whole, and of bytes that do not decode.
func TestDecodeLineRejected(t *testing.T) {
	e := sampleEnvelope()
	e.Payload = bytes.Repeat([]byte("z"), 600)
	// Valid base64 of bytes that are neither an envelope nor a batch,
	// split into fragments.
	junk := encodeLines(t, e, bytes.Repeat([]byte{0x01}, 600), CarrierTag, Limits{TagBytes: 400})
	// A batch whose second element does not decode.
	batch := append([]byte{0x82, 0x41, 0xa0}, 0x43, 0xff, 0xff, 0xff)
	for _, tc := range []struct {
		name    string
		lines   []Line
		carrier Carrier
		err     error // of the line
		frags   int
		entries []error // of the envelopes
	}{
		{"bad base64", []Line{{Tags: map[string]string{TagData: "%%%"}, Body: "mesh"}}, CarrierTag, ErrMalformed, 0, nil},
		{"newer line format", []Line{{Body: "~m3 event t 1a2b3c4d AAAA"}}, 0, ErrVersion, 0, nil},
		{"bad fragment tag", []Line{{Tags: map[string]string{TagData: "AAAA", TagFragment: "zz"}}}, 0, ErrMalformed, 0, nil},
		{"fragments of junk", junk, CarrierTag, ErrMalformed, len(junk), nil},
		{"undecodable element", []Line{{Tags: map[string]string{TagData: b64.EncodeToString(batch)}}}, CarrierTag, nil, 0, []error{ErrMalformed, ErrMalformed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTwin(t, func() DecoderConfig { return DecoderConfig{} })
			var got DecodedLine
			for _, l := range tc.lines {
				got = w.line("x", l)
			}
			if !got.Mesh || got.Carrier != tc.carrier || !errors.Is(got.Err, tc.err) || (tc.err == nil) != (got.Err == nil) || got.Fragments != tc.frags || got.Fragment != nil {
				t.Fatalf("%+v", got)
			}
			if len(got.Envelopes) != len(tc.entries) {
				t.Fatalf("%d entries, want %d", len(got.Envelopes), len(tc.entries))
			}
			for i, de := range got.Envelopes {
				if !errors.Is(de.Err, tc.entries[i]) || de.Envelope != nil || de.Signature != SigUnknown || len(de.Sealed) == 0 {
					t.Errorf("entry %d: %+v", i, de)
				}
			}
		})
	}
}

func TestSigStateString(t *testing.T) {
	for s, want := range map[SigState]string{SigUnknown: "unknown", SigUnsigned: "unsigned", SigUnchecked: "unchecked", SigVerified: "verified", 9: "sig9"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", s, s.String(), want)
		}
	}
}

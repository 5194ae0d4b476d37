package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Every decoder error must wrap one of the package's sentinels, so callers
// can count rejections by reason.
func checkSentinel(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []error{ErrMalformed, ErrTruncated, ErrTooLarge, ErrVersion, ErrUnsigned, ErrForged, ErrUnknownKey, ErrDuplicate, ErrExpired, ErrFragment, ErrWrongSender, ErrUnencrypted} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error wraps no sentinel: %v", err)
}

func seedLines(f *testing.F) {
	e := sampleEnvelope()
	_, hm, _ := testKeys(f)
	sealed, _ := Seal(e, hm)
	for _, c := range []Carrier{CarrierTag, CarrierBody} {
		lines, _ := EncodeLines(e, sealed, c, Limits{BodyBytes: 120})
		for _, l := range lines[:min(3, len(lines))] {
			f.Add(l.Tags[TagData], l.Tags[TagFragment], l.Body)
		}
	}
	// A batch (§3.9) of a signed and an unsigned envelope.
	plain := sampleEnvelope()
	unsigned, _ := Seal(plain, nil)
	if b, err := EncodeBatchLine([]*Envelope{e, plain}, [][]byte{sealed, unsigned}, Limits{}); err == nil {
		f.Add(b.Tags[TagData], "", b.Body)
	}
	f.Add("", "", "hello world")
	f.Add("", "", "~m1 event t 12345678 1/2 AAAA")
	f.Add("", "", "~m9 event t 12345678 AAAA")
}

// FuzzDecodeLine feeds arbitrary lines, twice each (a second copy meets
// the state the first left), to Decoders: no panic, errors wrap a
// sentinel, whatever decodes re-encodes to an envelope that decodes to the
// same bytes, DecodeLine agrees with Decode (results and counters) and
// keeps the invariants of DecodedLine, also with AcceptUnchecked.
func FuzzDecodeLine(f *testing.F) {
	seedLines(f)
	_, _, ring := testKeys(f)
	f.Fuzz(func(t *testing.T, data, frag, body string) {
		tags := map[string]string{}
		if data != "" {
			tags[TagData] = data
		}
		if frag != "" {
			tags[TagFragment] = frag
		}
		d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring}})
		twin := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring}})
		unchecked := NewDecoder(DecoderConfig{AcceptUnchecked: true})
		for range 2 {
			envs, mesh, err := d.Decode("fuzzer", tags, body, t0)
			for _, e := range Errors(err) {
				checkSentinel(t, e)
			}
			for _, env := range envs {
				checkStable(t, env)
			}
			l := twin.DecodeLine("fuzzer", tags, body, t0)
			checkDecodedLine(t, l, false)
			lenvs, lmesh, lerr := l.Result()
			if lmesh != mesh || len(lenvs) != len(envs) || fmt.Sprint(lerr) != fmt.Sprint(err) {
				t.Fatalf("DecodeLine: %d envelopes, %v, %v; Decode: %d, %v, %v", len(lenvs), lmesh, lerr, len(envs), mesh, err)
			}
			ds, dr := d.Stats()
			ts, tr := twin.Stats()
			if ds != ts || dr != tr {
				t.Fatalf("counters differ: Decode %+v %+v, DecodeLine %+v %+v", ds, dr, ts, tr)
			}
			checkDecodedLine(t, unchecked.DecodeLine("fuzzer", tags, body, t0), true)
		}
	})
}

// checkDecodedLine checks what every DecodedLine guarantees.
func checkDecodedLine(t *testing.T, l DecodedLine, acceptUnchecked bool) {
	t.Helper()
	if !l.Mesh {
		if l.Carrier != 0 || l.Err != nil || l.Fragment != nil || l.Fragments != 0 || l.Envelopes != nil {
			t.Fatalf("not a mesh line, yet %+v", l)
		}
		return
	}
	checkSentinel(t, l.Err)
	switch {
	case l.Err != nil:
		if l.Fragment != nil || len(l.Envelopes) != 0 {
			t.Fatalf("a rejected line with %+v", l)
		}
	case l.Fragment != nil:
		f := l.Fragment
		if len(l.Envelopes) != 0 || l.Fragments != 0 || f.Count < 2 || f.Index < 1 || f.Index > f.Count || f.Bytes < 1 || !validShort(f.Short) || l.Carrier == 0 {
			t.Fatalf("a stored fragment with %+v %+v", l, f)
		}
	default:
		if len(l.Envelopes) == 0 || l.Carrier == 0 || l.Fragments == 1 {
			t.Fatalf("a complete line with %+v", l)
		}
	}
	for i, e := range l.Envelopes {
		checkSentinel(t, e.Err)
		if len(e.Sealed) == 0 {
			t.Fatalf("envelope %d: no bytes", i)
		}
		if e.Err == nil && (e.Envelope == nil || e.Signature == SigUnknown) {
			t.Fatalf("envelope %d accepted as %+v", i, e)
		}
		if e.Envelope == nil && e.Signature != SigUnknown {
			t.Fatalf("envelope %d: no envelope, yet %s", i, e.Signature)
		}
		signed := e.Envelope != nil && len(e.Envelope.Signature) > 0 && e.Envelope.Auth != nil
		switch e.Signature {
		case SigUnsigned:
			if signed {
				t.Fatalf("envelope %d: signed, reported unsigned", i)
			}
		case SigUnchecked:
			if !signed || !acceptUnchecked {
				t.Fatalf("envelope %d: unchecked (signed %v, AcceptUnchecked %v)", i, signed, acceptUnchecked)
			}
		case SigVerified:
			if !signed || acceptUnchecked {
				t.Fatalf("envelope %d: verified (signed %v, AcceptUnchecked %v)", i, signed, acceptUnchecked)
			}
		}
	}
}

// checkStable: a decoded envelope re-encodes to bytes that decode to it.
func checkStable(t *testing.T, env *Envelope) {
	{
		enc, err := Marshal(env)
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		again, err := Unmarshal(enc, 0)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		enc2, _ := Marshal(again)
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not stable")
		}
	}
}

// FuzzUnmarshal feeds arbitrary bytes to the CBOR decoder.
func FuzzUnmarshal(f *testing.F) {
	e := sampleEnvelope()
	enc, _ := Marshal(e)
	f.Add(enc)
	_, hm, _ := testKeys(f)
	sealed, _ := Seal(sampleEnvelope(), hm)
	f.Add(sealed)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Unmarshal(b, 0)
		checkSentinel(t, err)
		if env != nil {
			v := &Verifier{Keys: NewKeyring()}
			checkSentinel(t, v.Verify(b, env))
		}
	})
}

// FuzzReassembly drives a Reassembler with a fuzzer-chosen schedule of
// fragments from a few senders, with small limits, and checks the bounds
// hold after every step.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0, 1, 3, 10, 0, 2, 3, 10, 0, 3, 3, 10})
	f.Add([]byte{1, 1, 2, 200, 2, 1, 2, 255, 1, 2, 2, 1})
	f.Fuzz(func(t *testing.T, sched []byte) {
		lim := ReassemblyLimits{MaxEnvelope: 300, MaxFragments: 8, MaxPerSender: 2, MaxPendingBytes: 2000}
		r := NewReassembler(lim)
		now := t0
		for len(sched) >= 4 {
			sender := string('a' + rune(sched[0]%3))
			idx := int(sched[1] % 10)
			count := int(sched[2] % 10)
			size := int(sched[3])
			short := "0000000" + string('0'+rune(sched[0]>>4%4))
			sched = sched[4:]
			if size > 250 {
				now = now.Add(time.Duration(size-250) * 10 * time.Second) // let some expire
			}
			out, err := r.Add(sender, Frame{Short: short, Index: idx, Count: count, Data: string(bytes.Repeat([]byte("Q"), size))}, now)
			checkSentinel(t, err)
			if len(out) > lim.MaxEnvelope {
				t.Fatalf("reassembled %d bytes > %d", len(out), lim.MaxEnvelope)
			}
			s := r.Stats()
			if s.Bytes > lim.MaxPendingBytes || s.Bytes < 0 {
				t.Fatalf("holding %d bytes, limit %d", s.Bytes, lim.MaxPendingBytes)
			}
		}
	})
}

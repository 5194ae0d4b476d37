package envelope

import (
	"errors"
	"strconv"
	"time"
)

// SigState is what a Decoder established about an envelope's signature.
type SigState uint8

// Signature states. Append-only.
const (
	// SigUnknown: nothing was established: the envelope did not decode,
	// or its signature check failed (the error says why).
	SigUnknown SigState = iota
	// SigUnsigned: the envelope carries no signature, and the decoder
	// does not require one.
	SigUnsigned
	// SigUnchecked: the envelope is signed, but the decoder had no keyring
	// and was made with DecoderConfig.AcceptUnchecked: nobody vouches for
	// it.
	SigUnchecked
	// SigVerified: the signature verified with a key of the keyring that
	// belongs to the sending service (ed25519) or with the mesh key (HMAC).
	SigVerified
)

func (s SigState) String() string {
	switch s {
	case SigUnknown:
		return "unknown"
	case SigUnsigned:
		return "unsigned"
	case SigUnchecked:
		return "unchecked"
	case SigVerified:
		return "verified"
	}
	return "sig" + strconv.Itoa(int(s))
}

// DecodedLine is everything a Decoder learned from one received line, for
// tools that show lines and for callers that need more than Decode
// returns. Result gives exactly what Decode would have returned.
type DecodedLine struct {
	// Mesh is false for lines that are not mesh lines (human chatter);
	// nothing else is set then.
	Mesh bool
	// Carrier is the carrier of a mesh line; 0 when the line is too
	// malformed to tell.
	Carrier Carrier
	// Err is set when the line as a whole was rejected: it does not parse,
	// its fragment does not fit reassembly, or its data is neither an
	// envelope nor a batch. Envelopes is empty then. It wraps one of the
	// package's sentinels.
	Err error
	// Fragment is set when the line was a fragment that was stored: its
	// envelope is not complete yet, and Envelopes is empty.
	Fragment *Fragment
	// Fragments is the number of fragments of the envelope data this line
	// completed (0 when the line carried its data whole).
	Fragments int
	// Envelopes holds one entry per envelope of the line, in line order:
	// one, or several for a batch (docs/PROTOCOL.md §3.9), accepted or not.
	Envelopes []DecodedEnvelope
}

// Fragment describes a fragment line held for reassembly.
type Fragment struct {
	Short string // the short id of the envelope it belongs to
	Index int    // its number, from 1
	Count int    // how many fragments the envelope has
	Bytes int    // the base64 text this line carried
}

// DecodedEnvelope is one envelope of a line.
type DecodedEnvelope struct {
	// Envelope is the decoded envelope: set whenever the bytes decode,
	// also when it was then rejected (forged, duplicate, ...), so that a
	// tool can show what it refused. Nil when the bytes do not decode.
	Envelope *Envelope
	// Sealed is the envelope as received: CBOR, signature included;
	// len(Sealed) is its sealed size. Read-only.
	Sealed []byte
	// Signature is what the signature check established; SigUnknown
	// when Err is set before or by the check.
	Signature SigState
	// Err says why the envelope was rejected; nil when it was accepted.
	Err error
}

// DecodeLine is Decode for tools: the same steps on the same decoder state
// (reassembly, guard, counters), with everything learned on the way
// reported in the result. Decode costs less; use it where the result is
// only acted on.
func (d *Decoder) DecodeLine(sender string, tags map[string]string, body string, now time.Time) DecodedLine {
	st, mesh, err := d.frame(sender, tags, body, now)
	if !mesh {
		return DecodedLine{}
	}
	l := DecodedLine{Mesh: true, Carrier: st.frame.Carrier, Err: err}
	if st.sealed != nil && st.frame.Count > 1 {
		l.Fragments = st.frame.Count
	}
	switch {
	case err != nil:
		return l
	case st.sealed == nil:
		f := st.frame
		l.Fragment = &Fragment{Short: f.Short, Index: f.Index, Count: f.Count, Bytes: len(f.Data)}
		return l
	}
	l.Envelopes = make([]DecodedEnvelope, len(st.parts))
	for i, p := range st.parts {
		env, own, sig, err := d.open(sender, tags, p, now)
		if own == nil {
			own = append([]byte(nil), p...) // p is the decoder's scratch
		}
		l.Envelopes[i] = DecodedEnvelope{Envelope: env, Sealed: own, Signature: sig, Err: err}
	}
	return l
}

// Result returns what Decode returns for the line: its accepted envelopes,
// whether it is a mesh line, and its errors (the line's, or one joined
// error per rejected envelope).
func (l DecodedLine) Result() (envs []*Envelope, mesh bool, err error) {
	if !l.Mesh || l.Err != nil {
		return nil, l.Mesh, l.Err
	}
	var errs []error
	for _, e := range l.Envelopes {
		if e.Err != nil {
			errs = append(errs, e.Err)
			continue
		}
		envs = append(envs, e.Envelope)
	}
	return envs, true, errors.Join(errs...)
}

package envelope

import (
	"errors"
	"time"
)

// DecoderConfig configures a Decoder. The zero value accepts unsigned
// envelopes and keeps no replay guard.
type DecoderConfig struct {
	// Limits bound fragment reassembly; Limits.MaxEnvelope also bounds
	// every envelope.
	Limits ReassemblyLimits
	// Verifier checks signatures; nil accepts only unsigned envelopes and
	// rejects signed ones with ErrUnknownKey (there is no key to check
	// them), unless AcceptUnchecked is set.
	Verifier *Verifier
	// Guard, when set, rejects replayed ids and envelopes outside its
	// time window.
	Guard *Guard
	// AcceptUnchecked makes a Decoder without a keyring (Verifier nil, or
	// Verifier.Keys nil) accept signed envelopes without checking their
	// signatures, reported as SigUnchecked by DecodeLine, instead of
	// rejecting them with ErrUnknownKey. Everything else is checked as
	// usual (the signature's place in the encoding, RequireSigned, the
	// guard); with a keyring it changes nothing: signatures are verified
	// and forged ones rejected.
	//
	// It is for tools that show lines (meshbot decode) and for finding
	// candidate lines that their user then verifies with its own keys. It
	// must never be set on a decoder whose envelopes are acted on: anyone
	// can write a signed-looking envelope.
	AcceptUnchecked bool

	// BindSender rejects, with ErrWrongSender, an envelope whose sender
	// (service, instance) is not the nick that sent its line
	// (docs/PROTOCOL.md §4.4): the IRC server vouches for nicks, so this
	// holds in every trust mode, signed or not. Every decoder whose
	// envelopes are acted on sets it.
	BindSender bool
	// Accounts, with BindSender, also binds services to accounts: a bound
	// service's lines must carry the account tag of its account.
	Accounts *AccountBinding

	// Crypter opens encrypted payloads (docs/PROTOCOL.md §4.5): the
	// envelope is handed on with its payload, headers and error in clear
	// (Encrypted still true). Nil opens none.
	Crypter *Crypter
	// MustOpen rejects an encrypted envelope the decoder holds no key for
	// (ErrUnknownKey): a node cannot act on it. Without it such envelopes
	// are handed on still encrypted (PayloadEncrypted), for tools that
	// show or store lines. A payload that does not open with a key the
	// decoder holds is always rejected (ErrForged).
	MustOpen bool
	// RequireEncrypted rejects events, requests and responses whose
	// payload travels in clear (ErrUnencrypted).
	RequireEncrypted bool
}

// Decoder turns received lines into verified envelopes: parse, reassemble,
// decode, verify, de-duplicate. Decode returns what to act on; DecodeLine
// reports every step for tools. It is a pure core with one owner (the
// connection's reader): not safe for concurrent use, no clock reads.
type Decoder struct {
	cfg   DecoderConfig
	reasm *Reassembler
	stats DecodeStats

	// Scratch reused from line to line: a line's data decoded from base64
	// (Unmarshal copies each envelope out of it), and its parts.
	data  []byte
	parts [][]byte
}

// DecodeStats count what a Decoder saw, by outcome.
type DecodeStats struct {
	NotMesh   uint64 // human chatter and other non-mesh lines
	Fragments uint64 // fragment lines held for reassembly
	Accepted  uint64 // envelopes delivered
	Rejected  RejectCounts
}

// RejectCounts count rejected lines by reason.
type RejectCounts struct {
	Malformed, Truncated, TooLarge, Version, Unsigned, Forged, UnknownKey, Duplicate, Expired, Fragment uint64
	WrongSender, Unencrypted                                                                            uint64
}

// Total is the sum of all rejections.
func (c RejectCounts) Total() uint64 {
	return c.Malformed + c.Truncated + c.TooLarge + c.Version + c.Unsigned + c.Forged + c.UnknownKey + c.Duplicate + c.Expired + c.Fragment +
		c.WrongSender + c.Unencrypted
}

// count adds err to the counter of its reason.
func (c *RejectCounts) count(err error) {
	switch Reason(err) {
	case "truncated":
		c.Truncated++
	case "too-large":
		c.TooLarge++
	case "version":
		c.Version++
	case "unsigned":
		c.Unsigned++
	case "forged":
		c.Forged++
	case "unknown-key":
		c.UnknownKey++
	case "duplicate":
		c.Duplicate++
	case "expired":
		c.Expired++
	case "fragment":
		c.Fragment++
	case "wrong-sender":
		c.WrongSender++
	case "unencrypted":
		c.Unencrypted++
	default:
		c.Malformed++
	}
}

// NewDecoder returns a Decoder.
func NewDecoder(cfg DecoderConfig) *Decoder {
	if cfg.Verifier == nil {
		cfg.Verifier = &Verifier{}
	}
	d := &Decoder{cfg: cfg, reasm: NewReassembler(cfg.Limits)}
	d.cfg.Limits = d.reasm.Limits()
	return d
}

// Decode takes one received PRIVMSG from sender (the nick, or the full
// prefix) with its tags and text. It returns:
//   - mesh == false: not a mesh line (count it, ignore it);
//   - no envelopes and err == nil: a fragment was stored, the envelope is
//     not complete yet;
//   - envs: the complete, verified envelopes of the line (one, or several
//     for a batch);
//   - err != nil: the line, or some envelopes of a batch, were rejected;
//     err joins one error per rejected envelope (Errors splits them,
//     errors.Is tells the reasons), and envs still holds the accepted ones.
//
// DecodeLine does the same and reports everything it learned on the way.
func (d *Decoder) Decode(sender string, tags map[string]string, body string, now time.Time) (envs []*Envelope, mesh bool, err error) {
	return d.AppendDecode(nil, sender, tags, body, now)
}

// AppendDecode is Decode that appends the line's envelopes to dst and
// returns the extended slice: a caller that reuses dst from line to line
// decodes an unsigned or signed line of one envelope in one allocation
// (the envelope). The envelopes are the caller's to keep; dst is not
// kept.
func (d *Decoder) AppendDecode(dst []*Envelope, sender string, tags map[string]string, body string, now time.Time) (envs []*Envelope, mesh bool, err error) {
	st, mesh, err := d.frame(sender, tags, body, now)
	if !mesh || err != nil || st.parts == nil {
		return dst, mesh, err
	}
	var errs []error
	for _, p := range st.parts {
		env, _, _, err := d.open(sender, tags, p, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dst = append(dst, env)
	}
	return dst, true, errors.Join(errs...)
}

// lineStage is how far a line got through the steps before its envelopes
// are opened.
type lineStage struct {
	frame  Frame    // the parsed line (Carrier set once it is known)
	sealed []byte   // the line's whole data, once complete (the decoder's scratch)
	parts  [][]byte // the sealed envelopes of sealed: one, or a batch's
}

// frame parses a line, adds it to reassembly and splits a batch: the
// steps Decode and DecodeLine share. It counts a line that ends here (not
// a mesh line, a stored fragment, a rejection); parts is nil unless the
// envelopes are ready to open.
func (d *Decoder) frame(sender string, tags map[string]string, body string, now time.Time) (st lineStage, mesh bool, err error) {
	st.frame, mesh, err = parseLine(tags, body) // whole envelopes' data is checked as it is decoded
	if !mesh {
		d.stats.NotMesh++
		return st, false, nil
	}
	if err != nil {
		d.stats.Rejected.count(err)
		return st, true, err
	}
	data, done, err := d.reasm.add(d.data[:0], sender, st.frame, now)
	if err != nil {
		d.stats.Rejected.count(err)
		return st, true, err
	}
	if !done {
		d.stats.Fragments++
		return st, true, nil
	}
	d.data = data
	st.sealed = d.data
	d.parts, err = appendBatch(d.parts[:0], st.sealed)
	if err != nil {
		d.stats.Rejected.count(err)
		return st, true, err
	}
	st.parts = d.parts
	return st, true, nil
}

// Errors returns the individual errors of a Decode error (one per rejected
// envelope of a batch).
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Open decodes and verifies sealed envelope bytes, applying the guard when
// there is one, without the sender's line: it cannot check BindSender.
// Decoders of envelopes that are acted on use OpenFrom. It is not counted
// in Stats.
func (d *Decoder) Open(sealed []byte, now time.Time) (*Envelope, error) {
	env, _, _, err := d.check("", nil, sealed, now, false)
	if err != nil {
		return nil, err
	}
	return env, nil
}

// OpenFrom is Open for the sealed bytes of a line that nick sent with
// tags (a recorded line, a history page's data): every check Decode makes
// of an envelope, the sender binding included. tags nil means the source
// kept none (the account is then not checked; the nick is). It is not
// counted in Stats.
func (d *Decoder) OpenFrom(nick string, tags map[string]string, sealed []byte, now time.Time) (*Envelope, error) {
	env, _, _, err := d.check(nick, tags, sealed, now, true)
	if err != nil {
		return nil, err
	}
	return env, nil
}

// open is OpenFrom for an envelope of a line: counted in Stats. own is
// the envelope's own copy of sealed (nil when it was too large to copy).
func (d *Decoder) open(sender string, tags map[string]string, sealed []byte, now time.Time) (*Envelope, []byte, SigState, error) {
	if tags == nil {
		tags = noTags // a live line: a missing account tag is no account
	}
	env, own, sig, err := d.check(sender, tags, sealed, now, true)
	if err != nil {
		d.stats.Rejected.count(err)
	} else {
		d.stats.Accepted++
	}
	return env, own, sig, err
}

// noTags stands for the tags of a live line that has none.
var noTags = map[string]string{}

// check decodes, binds to its sender, verifies, opens and guards sealed
// bytes, in that order (a line that fails a check leaves no trace in the
// guard). It returns the envelope whenever it decodes, also when it is
// then rejected (err says why), its own copy of sealed (read-only; nil
// when sealed is over the size limit) and what the signature check
// established (SigUnknown when it failed). bind says whether source and
// tags are the line's (Open has none).
func (d *Decoder) check(source string, tags map[string]string, sealed []byte, now time.Time, bind bool) (*Envelope, []byte, SigState, error) {
	env, own, err := unmarshalCopy(sealed, d.cfg.Limits.MaxEnvelope)
	if err != nil {
		return nil, own, SigUnknown, err
	}
	if bind {
		if err := d.checkSender(source, tags, env); err != nil {
			return env, own, SigUnknown, err
		}
	}
	sig, err := d.verify(own, env)
	if err != nil {
		return env, own, SigUnknown, err
	}
	if err := d.openPayload(env); err != nil {
		return env, own, sig, err
	}
	if d.cfg.Guard != nil {
		if err := d.cfg.Guard.Check(env, now); err != nil {
			return env, own, sig, err
		}
	}
	return env, own, sig, nil
}

// verify checks the signature of env, whose encoding is sealed.
func (d *Decoder) verify(sealed []byte, env *Envelope) (SigState, error) {
	v := d.cfg.Verifier
	switch {
	case len(env.Signature) == 0 || env.Auth == nil:
		return SigUnsigned, v.Verify(sealed, env) // RequireSigned; half a signature
	case d.cfg.AcceptUnchecked && v.Keys == nil:
		if _, err := signedPart(sealed, env.Signature); err != nil {
			return SigUnknown, err
		}
		return SigUnchecked, nil
	}
	return SigVerified, v.Verify(sealed, env)
}

// Forget drops partial envelopes of a sender that left.
func (d *Decoder) Forget(sender string) { d.reasm.Forget(sender) }

// Stats returns the counters, including reassembly.
func (d *Decoder) Stats() (DecodeStats, ReassemblyStats) { return d.stats, d.reasm.Stats() }

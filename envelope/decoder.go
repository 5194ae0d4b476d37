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
	// rejects signed ones with ErrUnknownKey (there is no key to check them).
	Verifier *Verifier
	// Guard, when set, rejects replayed ids and envelopes outside its
	// time window.
	Guard *Guard
}

// Decoder turns received lines into verified envelopes: parse, reassemble,
// decode, verify, de-duplicate. It is a pure core with one owner (the
// connection's reader): not safe for concurrent use, no clock reads.
type Decoder struct {
	cfg   DecoderConfig
	reasm *Reassembler
	stats DecodeStats
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
}

// Total is the sum of all rejections.
func (c RejectCounts) Total() uint64 {
	return c.Malformed + c.Truncated + c.TooLarge + c.Version + c.Unsigned + c.Forged + c.UnknownKey + c.Duplicate + c.Expired + c.Fragment
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
func (d *Decoder) Decode(sender string, tags map[string]string, body string, now time.Time) (envs []*Envelope, mesh bool, err error) {
	f, mesh, err := ParseLine(tags, body)
	if !mesh {
		d.stats.NotMesh++
		return nil, false, nil
	}
	if err != nil {
		d.stats.Rejected.count(err)
		return nil, true, err
	}
	sealed, err := d.reasm.Add(sender, f, now)
	if err != nil {
		d.stats.Rejected.count(err)
		return nil, true, err
	}
	if sealed == nil {
		d.stats.Fragments++
		return nil, true, nil
	}
	parts, err := SplitBatch(sealed)
	if err != nil {
		d.stats.Rejected.count(err)
		return nil, true, err
	}
	var errs []error
	for _, p := range parts {
		env, err := d.Open(p, now)
		if err != nil {
			d.stats.Rejected.count(err)
			errs = append(errs, err)
			continue
		}
		d.stats.Accepted++
		envs = append(envs, env)
	}
	return envs, true, errors.Join(errs...)
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

// Open decodes and verifies sealed envelope bytes (from a reassembled line,
// or from a history store), applying the guard when there is one.
func (d *Decoder) Open(sealed []byte, now time.Time) (*Envelope, error) {
	env, err := Unmarshal(sealed, d.cfg.Limits.MaxEnvelope)
	if err != nil {
		return nil, err
	}
	if err := d.cfg.Verifier.Verify(sealed, env); err != nil {
		return nil, err
	}
	if d.cfg.Guard != nil {
		if err := d.cfg.Guard.Check(env, now); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// Forget drops partial envelopes of a sender that left.
func (d *Decoder) Forget(sender string) { d.reasm.Forget(sender) }

// Stats returns the counters, including reassembly.
func (d *Decoder) Stats() (DecodeStats, ReassemblyStats) { return d.stats, d.reasm.Stats() }

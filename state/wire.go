package state

import (
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/meshbot/meshbot/envelope"
)

// Update is one state update (§8.2): the payload of a state envelope with
// the envelope's identity. Updates of a domain are envelopes of kind
// state, topic = the domain, sent by an instance of the owning service in
// the domain's channel.
type Update struct {
	// ID is the envelope's id.
	ID envelope.ID
	// Domain is the envelope's topic.
	Domain string
	// Writer is the envelope's sender.
	Writer envelope.Sender
	// SentAt is the envelope's time (Unix ns).
	SentAt int64
	// From is the nick that sent the line, and FromService the service
	// that nick belongs to (mesh.ParseNick), as the runtime saw them; a
	// receiver checks both against the owner (§8.6). Empty when unknown.
	From, FromService string
	// Version is the domain version of the update: the writer's domain
	// version plus one.
	Version uint64
	// Puts and Deletes are the keys it writes, each with its new key
	// version.
	Puts    []KeyPut
	Deletes []KeyDelete
	// Whole marks a whole-state update (Replace): Puts are the domain's
	// keys and Deletes every other key the writer held.
	Whole bool
	// Sealed is the envelope as received, signature included: what a
	// replica hands to newcomers (§8.5). Nil when not kept.
	Sealed []byte
}

// KeyPut sets a key.
type KeyPut struct {
	_       struct{} `cbor:",toarray"`
	Key     string
	Version uint64
	Value   []byte
}

// KeyDelete deletes a key.
type KeyDelete struct {
	_       struct{} `cbor:",toarray"`
	Key     string
	Version uint64
}

// Limits of an update (§8.2).
const (
	// MaxKeyLen bounds a key, in bytes.
	MaxKeyLen = 512
	// MaxOps bounds the puts and deletes of one update.
	MaxOps = 1 << 16
)

// wireUpdate is the payload: a CBOR map with small integer keys; unknown
// keys are ignored.
type wireUpdate struct {
	Version uint64      `cbor:"1,keyasint"`
	Puts    []KeyPut    `cbor:"2,keyasint,omitempty"`
	Deletes []KeyDelete `cbor:"3,keyasint,omitempty"`
	Whole   bool        `cbor:"4,keyasint,omitempty"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	encMode = envelope.EncMode()
	decMode = envelope.StrictDecMode(4, MaxOps, 16)
}

// EncodePayload returns the payload of u's envelope. It checks u as
// DecodePayload would.
func EncodePayload(u *Update) ([]byte, error) {
	w := wireUpdate{Version: u.Version, Puts: u.Puts, Deletes: u.Deletes, Whole: u.Whole}
	for i, p := range w.Puts {
		if p.Value == nil { // an empty value is an empty byte string, never null
			w.Puts = append([]KeyPut(nil), w.Puts...)
			for j := i; j < len(w.Puts); j++ {
				if w.Puts[j].Value == nil {
					w.Puts[j].Value = []byte{}
				}
			}
			break
		}
	}
	if err := w.check(); err != nil {
		return nil, err
	}
	return encMode.Marshal(&w)
}

// DecodePayload reads a state payload into u's Version, Puts, Deletes and
// Whole.
func DecodePayload(b []byte, u *Update) error {
	var w wireUpdate
	if err := decMode.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := w.check(); err != nil {
		return err
	}
	u.Version, u.Puts, u.Deletes, u.Whole = w.Version, w.Puts, w.Deletes, w.Whole
	return nil
}

func (w *wireUpdate) check() error {
	if w.Version == 0 {
		return fmt.Errorf("%w: domain version 0", ErrMalformed)
	}
	n := len(w.Puts) + len(w.Deletes)
	if n == 0 && !w.Whole {
		return fmt.Errorf("%w: no key", ErrMalformed)
	}
	if n > MaxOps {
		return fmt.Errorf("%w: %d keys (at most %d)", ErrMalformed, n, MaxOps)
	}
	seen := make(map[string]struct{}, n)
	add := func(key string, v uint64) error {
		if err := CheckKey(key); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if v == 0 {
			return fmt.Errorf("%w: key %q at version 0", ErrMalformed, key)
		}
		if _, dup := seen[key]; dup {
			return fmt.Errorf("%w: key %q twice", ErrMalformed, key)
		}
		seen[key] = struct{}{}
		return nil
	}
	for _, p := range w.Puts {
		if err := add(p.Key, p.Version); err != nil {
			return err
		}
	}
	for _, d := range w.Deletes {
		if err := add(d.Key, d.Version); err != nil {
			return err
		}
	}
	return nil
}

// CheckKey reports whether key may name a key: 1 to MaxKeyLen bytes of
// UTF-8 without control characters.
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes (1 to %d)", ErrBadKey, len(key), MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %q is not UTF-8", ErrBadKey, key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q has control characters", ErrBadKey, key)
		}
	}
	return nil
}

// DecodeUpdate reads a state envelope: its kind must be state, its topic a
// domain name, its payload a state payload. from is the nick that sent the
// line and fromService its service ("" when unknown); sealed the envelope
// as received (nil: not kept). It does not judge authority; Replica.Receive
// does (§8.6).
func DecodeUpdate(env *envelope.Envelope, from, fromService string, sealed []byte) (*Update, error) {
	if env.Kind != envelope.KindState {
		return nil, fmt.Errorf("%w: kind %s is not state", ErrMalformed, env.Kind)
	}
	if err := ValidDomain(env.Topic); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	u := &Update{ID: env.ID, Domain: env.Topic, Writer: env.Sender, SentAt: env.Time,
		From: from, FromService: fromService, Sealed: sealed}
	if err := DecodePayload(env.Payload, u); err != nil {
		return nil, err
	}
	return u, nil
}

// Envelope returns the state envelope of u, unsealed: kind state, topic the
// domain, u's id, writer and time.
func (u *Update) Envelope() (*envelope.Envelope, error) {
	payload, err := EncodePayload(u)
	if err != nil {
		return nil, err
	}
	return &envelope.Envelope{Version: envelope.Version, Kind: envelope.KindState, ID: u.ID,
		Time: u.SentAt, Sender: u.Writer, Topic: u.Domain, Payload: payload}, nil
}

// Keys returns how many keys u writes.
func (u *Update) Keys() int { return len(u.Puts) + len(u.Deletes) }

package envelope

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Wire versions. A decoder accepts MinVersion..MaxVersion and refuses a newer
// one with a *VersionError, so that an old instance never misreads a message
// whose meaning has changed.
const (
	MinVersion = 1
	MaxVersion = 1
	// Version is what this package writes.
	Version = MaxVersion
)

// Kind says what an envelope is. The list is append-only: a number, once
// given out, keeps its meaning forever. Unknown kinds decode (a newer peer may
// send them); it is up to the receiver to ignore what it does not know.
type Kind uint8

// The kinds of the protocol. See docs/PROTOCOL.md §2.
const (
	KindEvent         Kind = 1  // a published event on a topic
	KindRequest       Kind = 2  // a request by DM; Topic holds the method
	KindResponse      Kind = 3  // the answer to a request; Correlation = request id
	KindClaim         Kind = 4  // an anycast member claims an event
	KindAck           Kind = 5  // a claimed event was completed
	KindNack          Kind = 6  // a claimed event failed; retry later
	KindHeartbeat     Kind = 7  // liveness and membership
	KindHistoryClaim  Kind = 8  // a proposed committed offset
	KindHistoryAck    Kind = 9  // agreement with a HistoryClaim
	KindHistoryReject Kind = 10 // disagreement with a HistoryClaim
	KindState         Kind = 11 // retained domain state
	KindReplay        Kind = 12 // a replayed, recorded line (history streams)
	KindDeadLetter    Kind = 13 // an event given up on after N attempts
)

var kindNames = [...]string{
	KindEvent:         "event",
	KindRequest:       "req",
	KindResponse:      "resp",
	KindClaim:         "claim",
	KindAck:           "ack",
	KindNack:          "nack",
	KindHeartbeat:     "hb",
	KindHistoryClaim:  "hclaim",
	KindHistoryAck:    "hack",
	KindHistoryReject: "hrej",
	KindState:         "state",
	KindReplay:        "replay",
	KindDeadLetter:    "dead",
}

// String returns the short legible name used in channel lines, or "kN" for a
// kind this version does not know.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("k%d", uint8(k))
}

// ParseKind is the inverse of Kind.String for the known kinds.
func ParseKind(s string) (Kind, bool) {
	for k, name := range kindNames {
		if name != "" && name == s {
			return Kind(k), true
		}
	}
	return 0, false
}

// ID is a random 128-bit identifier.
type ID [16]byte

// NewID returns a fresh random ID.
func NewID() ID {
	var id ID
	// crypto/rand.Read never fails on supported platforms (Go ≥ 1.24).
	_, _ = rand.Read(id[:])
	return id
}

// IsZero reports whether id is the zero ID (no id).
func (id ID) IsZero() bool { return id == ID{} }

// String returns the full id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, the form shown in channel lines.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// Sender identifies the instance that wrote an envelope.
type Sender struct {
	_ struct{} `cbor:",toarray"`
	// Service is the service name (the signing identity with ed25519).
	Service string
	// Instance tells instances of one service apart.
	Instance string
	// Incarnation changes on every start of the instance.
	Incarnation uint64
}

// Headers carry metadata about the payload.
type Headers struct {
	// ContentType of the payload, e.g. "application/json".
	ContentType string `cbor:"1,keyasint,omitempty"`
	// Traceparent is a W3C trace-context header value.
	Traceparent string `cbor:"2,keyasint,omitempty"`
}

// IsZero reports whether no header is set.
func (h Headers) IsZero() bool { return h == Headers{} }

// Error is a typed error carried back in a response.
type Error struct {
	_       struct{} `cbor:",toarray"`
	Code    uint32
	Message string
}

// Auth names how an envelope is signed. It is part of the signed content, so
// the key id cannot be swapped without breaking the signature.
type Auth struct {
	_     struct{} `cbor:",toarray"`
	Alg   Alg
	KeyID string
}

// Envelope is one protocol message. The zero values of optional fields are
// not written to the wire.
type Envelope struct {
	Version     uint8   `cbor:"1,keyasint"`
	Kind        Kind    `cbor:"2,keyasint"`
	ID          ID      `cbor:"3,keyasint"`
	Time        int64   `cbor:"4,keyasint,omitempty"` // sender's clock, Unix nanoseconds
	Sender      Sender  `cbor:"5,keyasint"`
	Topic       string  `cbor:"6,keyasint,omitempty"` // topic, or method for requests
	Correlation ID      `cbor:"7,keyasint,omitzero"`  // the event or request this refers to
	Payload     []byte  `cbor:"8,keyasint,omitempty"`
	Headers     Headers `cbor:"9,keyasint,omitzero"`
	Epoch       uint64  `cbor:"10,keyasint,omitempty"` // claim fencing epoch
	LeaseMillis uint32  `cbor:"11,keyasint,omitempty"` // claim lease, or retry delay for a nack
	Attempt     uint32  `cbor:"12,keyasint,omitempty"` // delivery attempt, from 1
	Deadline    int64   `cbor:"13,keyasint,omitempty"` // request deadline, Unix nanoseconds
	Error       *Error  `cbor:"14,keyasint,omitempty"` // remote error in a response
	Auth        *Auth   `cbor:"15,keyasint,omitempty"` // how Signature was made
	Crypt       *Crypt  `cbor:"16,keyasint,omitempty"` // how Payload is encrypted (crypt.go)
	// Signature is written last on the wire (its key sorts after every
	// other) and covers everything before it; see docs/PROTOCOL.md §4.
	Signature []byte `cbor:"65535,keyasint,omitempty"`

	// Human, when set, is what the envelope's lines show people after its
	// size instead of a preview of its payload: a sender's note for
	// envelopes whose payload means more decoded (a heartbeat, the events
	// a claim refers to). Secret keeps the payload out of the lines (they
	// show SecretMark). Neither travels: they shape the sender's lines
	// only (docs/PROTOCOL.md §3.2), and an encrypted envelope shows
	// neither.
	Human  string `cbor:"-"`
	Secret bool   `cbor:"-"`

	// opened: a decoder decrypted the payload (Encrypted stays true).
	opened bool
}

// New returns an envelope of the given kind with a fresh id, the current
// version and the given time.
func New(kind Kind, sender Sender, topic string, payload []byte, now time.Time) *Envelope {
	return &Envelope{
		Version: Version,
		Kind:    kind,
		ID:      NewID(),
		Time:    now.UnixNano(),
		Sender:  sender,
		Topic:   topic,
		Payload: payload,
	}
}

// SentAt returns the sender's time as a time.Time.
func (e *Envelope) SentAt() time.Time { return time.Unix(0, e.Time) }

// EncryptedMark follows the kind in the summary of an envelope whose
// payload is encrypted: "event+encrypted orders.created 1a2b3c4d".
const EncryptedMark = "+encrypted"

// Summary is the short legible description shown to people in a channel:
// kind, topic and short id. The kind of an encrypted envelope carries
// EncryptedMark; nothing of its payload is ever shown.
func (e *Envelope) Summary() string {
	kind := e.Kind.String()
	if e.Encrypted() {
		kind += EncryptedMark
	}
	return kind + " " + legibleTopic(e.Topic) + " " + e.ID.Short()
}

// legibleTopic makes a topic safe to show as one token in a line.
func legibleTopic(t string) string {
	if t == "" {
		return "-"
	}
	if len(t) > 64 {
		t = t[:64]
	}
	clean := true
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return t
	}
	b := []byte(t)
	for i, c := range b {
		if c <= ' ' || c == 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

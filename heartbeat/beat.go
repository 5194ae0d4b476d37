package heartbeat

import (
	"fmt"
	"math"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/meshbot/meshbot/envelope"
)

// Sub is a subscription an instance announces.
type Sub struct {
	_     struct{} `cbor:",toarray"`
	Topic string
	// Group is the anycast group, "" for a multicast subscription.
	Group string
}

// Beat is what an instance announces in every heartbeat (the payload of a
// heartbeat envelope; the envelope's sender says who beats).
type Beat struct {
	Service     string `cbor:"1,keyasint"`
	Instance    string `cbor:"2,keyasint"`
	Incarnation uint64 `cbor:"3,keyasint"`
	// Seq counts the beats of one incarnation, from 1.
	Seq uint64 `cbor:"4,keyasint,omitempty"`
	// IntervalMillis is the sender's heartbeat interval; receivers judge
	// its freshness by it.
	IntervalMillis uint32 `cbor:"5,keyasint"`
	Subs           []Sub  `cbor:"6,keyasint,omitempty"`
	// Load is the sender's own measure of how busy it is, 0 = idle.
	Load float32 `cbor:"7,keyasint,omitempty"`
	// StateVersion is the version of the domain state the sender owns.
	StateVersion uint64 `cbor:"8,keyasint,omitempty"`
	// Depends lists the services the sender depends on.
	Depends []string `cbor:"9,keyasint,omitempty"`
	// Domains are the domains of state the sender holds a loaded copy of
	// (docs/PROTOCOL.md §8): those its service owns, and those it mirrors.
	Domains []Domain `cbor:"10,keyasint,omitempty"`
	// DomainDepends lists the domains the sender depends on.
	DomainDepends []string `cbor:"11,keyasint,omitempty"`
	// Methods are the request methods the sender answers, sorted (at most
	// MaxMethods: discovery, not a contract).
	Methods []string `cbor:"12,keyasint,omitempty"`
	// Kicked are the subscriptions of the sender that a channel operator
	// removed from their topic with KICK: it no longer receives them, and
	// is no member of their anycast group (Subs leaves them out).
	Kicked []Sub `cbor:"13,keyasint,omitempty"`
}

// MaxMethods bounds the methods one beat announces.
const MaxMethods = 64

// Domain is a domain of state as a heartbeat announces it: its name, and
// the sender's copy of it (its version, live keys and their bytes, and a
// digest of its keys' versions that copies holding the same writes share).
type Domain struct {
	_       struct{} `cbor:",toarray"`
	Name    string
	Version uint64
	Keys    uint64
	Bytes   uint64
	Digest  uint64
}

// Interval returns the announced interval.
func (b *Beat) Interval() time.Duration { return time.Duration(b.IntervalMillis) * time.Millisecond }

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	encMode = envelope.EncMode()
	decMode = envelope.StrictDecMode(4, 1024, 32)
}

// Encode returns the wire form of b.
func Encode(b *Beat) ([]byte, error) { return encMode.Marshal(b) }

// Decode parses a heartbeat payload. Unknown keys are ignored.
func Decode(data []byte) (*Beat, error) {
	var b Beat
	if err := decMode.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	if b.Service == "" || b.Instance == "" || b.IntervalMillis == 0 {
		return nil, fmt.Errorf("heartbeat: service, instance and interval are required")
	}
	if l := float64(b.Load); math.IsNaN(l) || math.IsInf(l, 0) || l < 0 {
		return nil, fmt.Errorf("heartbeat: load %v is not a finite, non-negative number", b.Load)
	}
	return &b, nil
}

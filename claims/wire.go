package claims

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Item is one event in a CLAIM or ACK envelope: which event, at which epoch,
// and (claims only) the attempt it is, from 1.
type Item struct {
	_       struct{} `cbor:",toarray"`
	Event   envelope.ID
	Epoch   uint64
	Attempt uint32
}

// MaxItems bounds the events in one CLAIM or ACK envelope. At about 26
// base64 bytes an item, 120 items keep the envelope well within one
// tag-carrier line.
const MaxItems = 120

// DeadLetter is the payload of an event on the dead-letter topic
// <topic>._dead: the event given up on and why.
type DeadLetter struct {
	// Topic and Group say where the event was published and who gave up.
	Topic string `cbor:"1,keyasint"`
	Group string `cbor:"2,keyasint"`
	// Event is the original event envelope, as received.
	Event *envelope.Envelope `cbor:"3,keyasint"`
	// Attempts counts the failed attempts; Reasons says why each failed.
	Attempts uint32   `cbor:"4,keyasint"`
	Reasons  []string `cbor:"5,keyasint,omitempty"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	encMode = envelope.EncMode()
	decMode = envelope.StrictDecMode(8, MaxItems*4, 64)
}

// ErrMalformed is returned for a claims payload that does not decode.
var ErrMalformed = errors.New("claims: malformed payload")

func errMalformedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// EncodeItems returns the payload of a CLAIM or ACK envelope: the bytes
// the deterministic encoding gives (core deterministic CBOR), written
// without reflection (a member encodes every claim and ack it sends).
func EncodeItems(items []Item) ([]byte, error) {
	if len(items) == 0 || len(items) > MaxItems {
		return nil, fmt.Errorf("claims: %d items in one envelope (1 to %d)", len(items), MaxItems)
	}
	b := make([]byte, 0, 2+len(items)*(2+len(items[0].Event)+2*9))
	b = appendHead(b, 4, uint64(len(items)))
	for _, it := range items {
		b = append(b, 0x83, bstr16)
		b = append(b, it.Event[:]...)
		b = appendHead(b, 0, it.Epoch)
		b = appendHead(b, 0, uint64(it.Attempt))
	}
	return b, nil
}

// appendHead appends the shortest CBOR head of major type major and
// argument v.
func appendHead(b []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(b, m|byte(v))
	case v <= 0xff:
		return append(b, m|24, byte(v))
	case v <= 0xffff:
		return append(b, m|25, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(b, m|26, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, m|27, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// wireItem is Item as decoded: the event id's length is checked, not
// padded or cut.
type wireItem struct {
	_       struct{} `cbor:",toarray"`
	Event   cbor.RawMessage
	Epoch   uint64
	Attempt uint32
}

// bstr16 is the CBOR head of a 16-byte byte string.
const bstr16 = 0x50

// DecodeItems reads the payload of a CLAIM or ACK envelope.
func DecodeItems(b []byte) ([]Item, error) {
	if items, ok := decodeItemsFast(b); ok {
		return items, nil
	}
	return decodeItemsSlow(b)
}

// decodeItemsFast reads the common, shortest-form encoding that EncodeItems
// writes without the reflection of the general decoder (every member
// decodes every claim and ack of its group). Anything else — other valid
// encodings and every error — goes to decodeItemsSlow, so both accept and
// refuse the same inputs (FuzzDecodeItems checks they agree).
func decodeItemsFast(b []byte) ([]Item, bool) {
	if len(b) == 0 || b[0]>>5 != 4 {
		return nil, false
	}
	n, p := int(b[0]&0x1f), 1
	if n == 24 {
		if len(b) < 2 || b[1] < 24 {
			return nil, false
		}
		n, p = int(b[1]), 2
	} else if n > 23 {
		return nil, false
	}
	if n == 0 || n > MaxItems {
		return nil, false
	}
	items := make([]Item, n)
	for i := range items {
		if len(b) < p+18 || b[p] != 0x83 || b[p+1] != bstr16 {
			return nil, false
		}
		copy(items[i].Event[:], b[p+2:p+18])
		p += 18
		epoch, q, ok := readUint(b, p)
		if !ok || epoch == 0 {
			return nil, false
		}
		attempt, q, ok := readUint(b, q)
		if !ok || attempt > 1<<32-1 {
			return nil, false
		}
		if items[i].Event.IsZero() {
			return nil, false
		}
		items[i].Epoch, items[i].Attempt, p = epoch, uint32(attempt), q
	}
	return items, p == len(b)
}

// readUint reads a shortest-form CBOR unsigned integer at b[p:].
func readUint(b []byte, p int) (v uint64, next int, ok bool) {
	if p >= len(b) || b[p]>>5 != 0 {
		return 0, 0, false
	}
	info := b[p] & 0x1f
	if info < 24 {
		return uint64(info), p + 1, true
	}
	size := 0
	switch info {
	case 24:
		size = 1
	case 25:
		size = 2
	case 26:
		size = 4
	case 27:
		size = 8
	default:
		return 0, 0, false
	}
	if p+1+size > len(b) {
		return 0, 0, false
	}
	for _, c := range b[p+1 : p+1+size] {
		v = v<<8 | uint64(c)
	}
	// Shortest form only: a longer head than needed goes the slow way.
	if (size == 1 && v < 24) || (size > 1 && v < 1<<(8*size/2)) {
		return 0, 0, false
	}
	return v, p + 1 + size, true
}

func decodeItemsSlow(b []byte) ([]Item, error) {
	var raw []wireItem
	if err := decMode.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(raw) == 0 || len(raw) > MaxItems {
		return nil, fmt.Errorf("%w: %d items", ErrMalformed, len(raw))
	}
	items := make([]Item, len(raw))
	for i, r := range raw {
		if len(r.Event) != 1+len(items[i].Event) || r.Event[0] != bstr16 {
			return nil, fmt.Errorf("%w: the event id is not a 16-byte string", ErrMalformed)
		}
		copy(items[i].Event[:], r.Event[1:])
		items[i].Epoch, items[i].Attempt = r.Epoch, r.Attempt
		if items[i].Event.IsZero() || r.Epoch == 0 {
			return nil, fmt.Errorf("%w: item without event or epoch", ErrMalformed)
		}
	}
	return items, nil
}

// EncodeDeadLetter returns the payload of a dead-letter event.
func EncodeDeadLetter(d *DeadLetter) ([]byte, error) { return encMode.Marshal(d) }

// DecodeDeadLetter reads the payload of a dead-letter event.
func DecodeDeadLetter(b []byte) (*DeadLetter, error) {
	var d DeadLetter
	if err := decMode.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if d.Event == nil {
		return nil, fmt.Errorf("%w: dead letter without its event", ErrMalformed)
	}
	return &d, nil
}

// DeadTopic is the dead-letter topic of topic.
func DeadTopic(topic string) string { return topic + "._dead" }

// Weight is the rendezvous weight that breaks ties between claims of one
// event at the same epoch: every observer computes the same one from the
// event id and the member id, without knowing the event's key.
func Weight(event envelope.ID, member string) uint64 {
	var key [2 * len(envelope.ID{})]byte
	hex.Encode(key[:], event[:])
	return heartbeat.WeightBytes(key[:], member)
}

// Token is the fencing token of a claim: it grows with the order in which
// claims win, (epoch, weight), so a store that keeps the highest token it
// saw per event and refuses lower ones refuses a claimant that lost.
func Token(epoch, weight uint64) uint64 { return epoch<<32 | weight>>32 }

// Lease bounds of the wire: LeaseMillis is a uint32.
const maxLease = time.Duration(1<<32-1) * time.Millisecond

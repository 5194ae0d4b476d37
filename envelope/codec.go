package envelope

import (
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
)

// DefaultMaxEnvelope is the default limit on an encoded envelope (1 MiB).
const DefaultMaxEnvelope = 1 << 20

// Decoding limits: an envelope is a flat map with two small nested arrays,
// so anything deeper or wider than this is hostile.
const (
	maxNesting  = 4
	maxMapPairs = 64
	maxArray    = 16
)

// sigKey is the CBOR map key of Signature. Encoded as 0x19 0xff 0xff it sorts
// after every other key in the deterministic order, so the signature entry is
// always the last bytes of an encoded envelope.
const sigKey = 0xffff

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	decMode = StrictDecMode(maxNesting, maxArray, maxMapPairs)
}

// EncMode is the CBOR encoding of the mesh's payloads (envelopes, beats,
// claims, history pages): core deterministic.
func EncMode() cbor.EncMode { return encMode }

// StrictDecMode is the CBOR decoding of the mesh's payloads: duplicate map
// keys, indefinite lengths and tags are refused, and nesting, arrays and
// maps are bounded as given. Bounds the cbor package refuses are a
// programming error: it panics.
func StrictDecMode(maxNesting, maxArray, maxMapPairs int) cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  maxNesting,
		MaxMapPairs:      maxMapPairs,
		MaxArrayElements: maxArray,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}

// Marshal encodes e in CBOR core deterministic encoding: the same envelope
// always gives the same bytes, which is what signatures rely on.
func Marshal(e *Envelope) ([]byte, error) {
	if e.Version == 0 {
		return nil, fmt.Errorf("%w: version not set", ErrMalformed)
	}
	return encMode.Marshal(e)
}

// Unmarshal decodes one envelope from data, which must hold exactly one CBOR
// item of at most max bytes (max ≤ 0 means DefaultMaxEnvelope). The
// envelope shares no bytes with data. It refuses a newer version with a
// *VersionError, and anything that is not a well-formed envelope with
// ErrMalformed. Unknown keys are ignored. It does not verify the
// signature; see Verifier.
//
// The envelope, its strings, payload and signature take one allocation
// with a copy of data (block.go): a payload kept alone keeps that whole
// allocation.
func Unmarshal(data []byte, max int) (*Envelope, error) {
	e, _, err := unmarshalCopy(data, max)
	return e, err
}

// unmarshalCopy is Unmarshal; it also returns the envelope's own copy of
// data (read-only), set whenever data fits max.
func unmarshalCopy(data []byte, max int) (*Envelope, []byte, error) {
	if max <= 0 {
		max = DefaultMaxEnvelope
	}
	if len(data) > max {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), max)
	}
	e, auth, buf := newBlock(len(data))
	own := buf[:len(data):len(data)]
	copy(own, data)
	if fastUnmarshal(own, e, auth) { // fastdecode.go: the form Marshal writes
		if e.Crypt != nil {
			// A decoder opens an encrypted payload in place: in a copy,
			// so that the sealed bytes stay as received.
			e.Payload = append([]byte(nil), e.Payload...)
		}
		if err := e.check(); err != nil {
			return nil, own, err
		}
		return e, own, nil
	}
	*e = Envelope{}
	if err := decMode.Unmarshal(own, e); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, own, fmt.Errorf("%w: %v", ErrTruncated, err)
		}
		return nil, own, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := e.check(); err != nil {
		return nil, own, err
	}
	return e, own, nil
}

// check validates the fields every envelope must have.
func (e *Envelope) check() error {
	switch {
	case e.Version == 0:
		return fmt.Errorf("%w: no version", ErrMalformed)
	case e.Version > MaxVersion:
		return &VersionError{Got: e.Version, Max: MaxVersion}
	case e.Version < MinVersion:
		return &VersionError{Got: e.Version, Max: MaxVersion}
	case e.Kind == 0:
		return fmt.Errorf("%w: no kind", ErrMalformed)
	case e.ID.IsZero():
		return fmt.Errorf("%w: no id", ErrMalformed)
	case e.Sender.Service == "":
		return fmt.Errorf("%w: no sender service", ErrMalformed)
	}
	return nil
}

// signedPart returns the bytes a signature covers: the encoded envelope as if
// it had no Signature entry. enc must be the encoding of an envelope whose
// signature is sig (possibly empty).
func signedPart(enc []byte, sig []byte) ([]byte, error) {
	if len(sig) == 0 {
		return enc, nil
	}
	var buf [9]byte
	head, body, err := signedParts(buf[:0], enc, sig)
	if err != nil {
		return nil, err
	}
	return append(append(make([]byte, 0, len(head)+len(body)), head...), body...), nil
}

// signedParts is signedPart in two pieces, without a copy: the map header
// of the signed bytes (appended to buf), then the rest of them (a slice
// of enc). sig must not be empty.
func signedParts(buf, enc, sig []byte) (head, body []byte, err error) {
	tail := sigEntryLen(len(sig))
	if len(enc) < tail+3 || enc[len(enc)-tail] != 0x19 || enc[len(enc)-tail+1] != 0xff || enc[len(enc)-tail+2] != 0xff {
		return nil, nil, fmt.Errorf("%w: signature is not the last entry", ErrMalformed)
	}
	n, hdr, err := mapHeader(enc)
	if err != nil || n == 0 || hdr > len(enc)-tail {
		return nil, nil, fmt.Errorf("%w: bad map header", ErrMalformed)
	}
	return appendMapHeader(buf, n-1), enc[hdr : len(enc)-tail], nil
}

// appendSignature returns enc (an encoding without a signature) with the
// signature entry added as the last map pair.
func appendSignature(enc, sig []byte) ([]byte, error) {
	n, hdr, err := mapHeader(enc)
	if err != nil {
		return nil, err
	}
	out := appendMapHeader(make([]byte, 0, len(enc)+sigEntryLen(len(sig))+1), n+1)
	out = append(out, enc[hdr:]...)
	out = appendHead(out, 0, sigKey) // the key: 19 ff ff
	out = appendHead(out, 0x40, uint64(len(sig)))
	return append(out, sig...), nil
}

// sigEntryLen is the encoded size of the key 0xffff and a byte string of n bytes.
func sigEntryLen(n int) int { return 3 + headLen(uint64(n)) + n }

// mapHeader reads a definite-length CBOR map header.
func mapHeader(b []byte) (n uint64, size int, err error) {
	if len(b) == 0 || b[0]>>5 != 5 {
		return 0, 0, fmt.Errorf("%w: not a map", ErrMalformed)
	}
	info := b[0] & 0x1f
	switch {
	case info < 24:
		return uint64(info), 1, nil
	case info == 24 && len(b) >= 2:
		return uint64(b[1]), 2, nil
	case info == 25 && len(b) >= 3:
		return uint64(b[1])<<8 | uint64(b[2]), 3, nil
	}
	return 0, 0, fmt.Errorf("%w: map header", ErrMalformed)
}

func appendMapHeader(b []byte, n uint64) []byte { return appendHead(b, 0xa0, n) }

// appendHead appends a CBOR head with major type bits mt and argument n.
func appendHead(b []byte, mt byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, mt|byte(n))
	case n <= 0xff:
		return append(b, mt|24, byte(n))
	case n <= 0xffff:
		return append(b, mt|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, mt|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, mt|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func headLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	}
	return 9
}

package envelope

import (
	"math"
	"unicode/utf8"
	"unsafe"
)

// The fast decoder. Every envelope a node receives is decoded (one per
// subscriber, and the sender's own echo), so decoding is on the hot path;
// the general CBOR decoder pays for reflection on every field, more so for
// the nested arrays of signed and encrypted envelopes (auth, crypt). The
// fast decoder reads the form this package writes — a definite-length map
// of the known keys in increasing order, each with a value of its type —
// and reports anything else as not handled, which Unmarshal then gives to
// the general decoder. For everything it accepts, it gives the envelope
// the general decoder gives (FuzzFastUnmarshal checks it against the
// general decoder as a naive twin). It copies nothing: the envelope's
// strings and byte slices point into the bytes it decodes, which
// Unmarshal owns (block.go).

// cur reads CBOR items from b; ok turns false at the first thing it does
// not handle, after which every read returns zero values.
type cur struct {
	b  []byte
	ok bool
}

// head reads a definite head: its major type and argument.
func (c *cur) head() (major byte, arg uint64) {
	if !c.ok || len(c.b) == 0 {
		c.ok = false
		return 0, 0
	}
	major, info := c.b[0]>>5, c.b[0]&0x1f
	n := 0
	switch {
	case info < 24:
		c.b = c.b[1:]
		return major, uint64(info)
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	default: // indefinite lengths, reserved values, simple values
		c.ok = false
		return 0, 0
	}
	if len(c.b) < 1+n {
		c.ok = false
		return 0, 0
	}
	for _, x := range c.b[1 : 1+n] {
		arg = arg<<8 | uint64(x)
	}
	c.b = c.b[1+n:]
	return major, arg
}

// want reads a head of major type m.
func (c *cur) want(m byte) uint64 {
	major, arg := c.head()
	if major != m {
		c.ok = false
		return 0
	}
	return arg
}

func (c *cur) uint(max uint64) uint64 {
	v := c.want(0)
	if v > max {
		c.ok = false
		return 0
	}
	return v
}

func (c *cur) int() int64 {
	major, arg := c.head()
	if arg > math.MaxInt64 || major > 1 {
		c.ok = false
		return 0
	}
	if major == 1 {
		return -1 - int64(arg)
	}
	return int64(arg)
}

// raw reads the content of a byte or text string (m 2 or 3), not copied.
func (c *cur) raw(m byte) []byte {
	n := c.want(m)
	if !c.ok || n > uint64(len(c.b)) {
		c.ok = false
		return nil
	}
	s := c.b[:n]
	c.b = c.b[n:]
	return s
}

// bytes reads a byte string, not copied; its capacity ends with it, so
// that an append never writes over what follows.
func (c *cur) bytes() []byte {
	s := c.raw(2)
	if !c.ok {
		return nil
	}
	return s[:len(s):len(s)]
}

// text reads a text string, not copied: the string shares the decoded
// bytes, which nobody writes once decoded.
func (c *cur) text() string {
	s := c.raw(3)
	if !c.ok || !utf8.Valid(s) {
		c.ok = false
		return ""
	}
	if len(s) == 0 {
		return ""
	}
	return unsafe.String(&s[0], len(s))
}

func (c *cur) id() (id ID) {
	s := c.raw(2)
	if len(s) != len(id) {
		c.ok = false
		return ID{}
	}
	copy(id[:], s)
	return id
}

// array reads an array head of exactly n elements.
func (c *cur) array(n uint64) {
	if c.want(4) != n {
		c.ok = false
	}
}

// fastUnmarshal decodes data into e when it is in the form described
// above, and reports whether it did; e is unspecified when it did not.
// e shares the bytes of data, which must not change while e is in use.
// auth, when not nil, is where e.Auth is put (saves an allocation).
func fastUnmarshal(data []byte, e *Envelope, auth *Auth) bool {
	c := cur{b: data, ok: true}
	pairs := c.want(5)
	if !c.ok || pairs > maxMapPairs {
		return false
	}
	last := int64(-1)
	for range pairs {
		key := c.want(0)
		if !c.ok || int64(key) <= last || key > sigKey {
			return false // not in increasing order (or a duplicate): the general decoder
		}
		last = int64(key)
		switch key {
		case 1:
			e.Version = uint8(c.uint(math.MaxUint8))
		case 2:
			e.Kind = Kind(c.uint(math.MaxUint8))
		case 3:
			e.ID = c.id()
		case 4:
			e.Time = c.int()
		case 5:
			c.array(3)
			e.Sender.Service = c.text()
			e.Sender.Instance = c.text()
			e.Sender.Incarnation = c.uint(math.MaxUint64)
		case 6:
			e.Topic = c.text()
		case 7:
			e.Correlation = c.id()
		case 8:
			e.Payload = c.bytes()
		case 9:
			n := c.want(5)
			if n > 2 {
				return false
			}
			hk := uint64(0)
			for range n {
				k := c.want(0)
				if k <= hk || k > 2 {
					return false
				}
				hk = k
				if k == 1 {
					e.Headers.ContentType = c.text()
				} else {
					e.Headers.Traceparent = c.text()
				}
			}
		case 10:
			e.Epoch = c.uint(math.MaxUint64)
		case 11:
			e.LeaseMillis = uint32(c.uint(math.MaxUint32))
		case 12:
			e.Attempt = uint32(c.uint(math.MaxUint32))
		case 13:
			e.Deadline = c.int()
		case 14:
			c.array(2)
			e.Error = &Error{Code: uint32(c.uint(math.MaxUint32)), Message: c.text()}
		case 15:
			c.array(2)
			if auth == nil {
				auth = new(Auth)
			}
			*auth = Auth{Alg: Alg(c.uint(math.MaxUint8)), KeyID: c.text()}
			e.Auth = auth
		case 16:
			c.array(4)
			e.Crypt = &Crypt{Alg: CryptAlg(c.uint(math.MaxUint8)), KeyID: c.text(), PeerKeyID: c.text(), Nonce: c.bytes()}
		case sigKey:
			e.Signature = c.bytes()
		default:
			return false // a key this version does not know: the general decoder ignores it
		}
		if !c.ok {
			return false
		}
	}
	return c.ok && len(c.b) == 0
}

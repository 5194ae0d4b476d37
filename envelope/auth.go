package envelope

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
)

// Alg is a signature algorithm. Append-only, like Kind.
type Alg uint8

// Signature algorithms.
const (
	AlgEd25519    Alg = 1 // per-service key pair; the key is bound to a service
	AlgHMACSHA256 Alg = 2 // one mesh key shared by every service; faster
)

func (a Alg) String() string {
	switch a {
	case AlgEd25519:
		return "ed25519"
	case AlgHMACSHA256:
		return "hmac-sha256"
	}
	return fmt.Sprintf("alg%d", uint8(a))
}

// A Signer signs envelopes. Implementations are safe for concurrent use.
type Signer interface {
	// Auth names the algorithm and key; it is written into the envelope
	// and covered by the signature.
	Auth() Auth
	// Sign returns the signature of msg.
	Sign(msg []byte) []byte
}

type ed25519Signer struct {
	auth Auth
	key  ed25519.PrivateKey
}

// NewEd25519Signer signs with a service's private key under keyID.
func NewEd25519Signer(keyID string, key ed25519.PrivateKey) Signer {
	return &ed25519Signer{auth: Auth{Alg: AlgEd25519, KeyID: keyID}, key: key}
}

func (s *ed25519Signer) Auth() Auth             { return s.auth }
func (s *ed25519Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.key, msg) }

type hmacSigner struct {
	auth Auth
	key  *hmacKey
}

// NewHMACSigner signs with the mesh key under keyID. Anyone holding the mesh
// key can sign as any service: use ed25519 where services must not be able
// to impersonate each other.
func NewHMACSigner(keyID string, key []byte) Signer {
	return &hmacSigner{auth: Auth{Alg: AlgHMACSHA256, KeyID: keyID}, key: newHMACKey(key)}
}

func (s *hmacSigner) Auth() Auth             { return s.auth }
func (s *hmacSigner) Sign(msg []byte) []byte { return s.key.sum(msg, nil) }

// hmacKey is an HMAC-SHA256 key with a pool of its keyed hash states:
// keying a state costs more than hashing a small envelope.
type hmacKey struct {
	pool sync.Pool // of *hmacState
}

// hmacState is a keyed hash with room for what a check needs, so that
// checking a signature allocates nothing.
type hmacState struct {
	h    hash.Hash
	head [9]byte // a map header of the signed bytes
	out  [sha256.Size]byte
}

func newHMACKey(key []byte) *hmacKey {
	k := append([]byte(nil), key...)
	h := &hmacKey{}
	h.pool.New = func() any { return &hmacState{h: hmac.New(sha256.New, k)} }
	return h
}

// sum returns the HMAC of a followed by b.
func (k *hmacKey) sum(a, b []byte) []byte {
	st := k.pool.Get().(*hmacState)
	st.h.Reset()
	st.h.Write(a)
	st.h.Write(b)
	out := st.h.Sum(make([]byte, 0, sha256.Size))
	k.pool.Put(st)
	return out
}

// equal reports whether sig is the HMAC of head (at most 9 bytes: a map
// header) followed by body, in constant time.
func (k *hmacKey) equal(head, body, sig []byte) bool {
	st := k.pool.Get().(*hmacState)
	n := copy(st.head[:], head)
	st.h.Reset()
	st.h.Write(st.head[:n])
	st.h.Write(body)
	ok := len(head) == n && hmac.Equal(st.h.Sum(st.out[:0]), sig)
	k.pool.Put(st)
	return ok
}

// Seal encodes e, signed by s when s is not nil. It sets e.Auth and
// e.Signature accordingly.
func Seal(e *Envelope, s Signer) ([]byte, error) {
	e.Signature = nil
	if s == nil {
		e.Auth = nil
		return Marshal(e)
	}
	a := s.Auth()
	e.Auth = &a
	enc, err := Marshal(e)
	if err != nil {
		return nil, err
	}
	sig := s.Sign(enc)
	out, err := appendSignature(enc, sig)
	if err != nil {
		return nil, err
	}
	e.Signature = sig
	return out, nil
}

type edKey struct {
	service string
	pub     ed25519.PublicKey
}

// Keyring holds the keys an instance trusts: signature keys (ed25519
// public keys bound to services, HMAC mesh keys) and, for encrypted
// payloads, mesh payload keys and the services' X25519 public keys
// (keyring_crypt.go). It is safe for concurrent use; keys can be added and
// removed while it is in use (rotation).
type Keyring struct {
	mu      sync.RWMutex
	ed      map[string]edKey
	hmac    map[string]*hmacKey
	payload map[string]cipher.AEAD
	x25519  map[string]dhKey
	dhOrder map[string][]string // service → its X25519 key ids, oldest first
}

// NewKeyring returns an empty keyring.
func NewKeyring() *Keyring {
	return &Keyring{ed: map[string]edKey{}, hmac: map[string]*hmacKey{}, payload: map[string]cipher.AEAD{},
		x25519: map[string]dhKey{}, dhOrder: map[string][]string{}}
}

// AddEd25519 trusts pub under keyID for envelopes sent by service.
func (k *Keyring) AddEd25519(keyID, service string, pub ed25519.PublicKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ed[keyID] = edKey{service: service, pub: append(ed25519.PublicKey(nil), pub...)}
}

// AddHMAC trusts the mesh key under keyID.
func (k *Keyring) AddHMAC(keyID string, key []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hmac[keyID] = newHMACKey(key)
}

// Verifier checks envelope signatures against a keyring.
type Verifier struct {
	// Keys are the trusted keys. Nil trusts none.
	Keys *Keyring
	// RequireSigned rejects unsigned envelopes with ErrUnsigned.
	RequireSigned bool
}

// Verify checks the signature of e, whose encoding is enc (as received).
// Unsigned envelopes pass unless RequireSigned is set.
func (v *Verifier) Verify(enc []byte, e *Envelope) error {
	if len(e.Signature) == 0 || e.Auth == nil {
		if v.RequireSigned {
			return ErrUnsigned
		}
		if len(e.Signature) != 0 || e.Auth != nil {
			return fmt.Errorf("%w: signature without auth", ErrMalformed)
		}
		return nil
	}
	var buf [9]byte
	head, body, err := signedParts(buf[:0], enc, e.Signature)
	if err != nil {
		return err
	}
	if v.Keys == nil {
		return fmt.Errorf("%w: %q (no keyring)", ErrUnknownKey, e.Auth.KeyID)
	}
	v.Keys.mu.RLock()
	defer v.Keys.mu.RUnlock()
	switch e.Auth.Alg {
	case AlgEd25519:
		k, ok := v.Keys.ed[e.Auth.KeyID]
		if !ok {
			return fmt.Errorf("%w: ed25519 key %q", ErrUnknownKey, e.Auth.KeyID)
		}
		if k.service != e.Sender.Service {
			return fmt.Errorf("%w: key %q belongs to %q, not %q", ErrUnknownKey, e.Auth.KeyID, k.service, e.Sender.Service)
		}
		msg := append(append(make([]byte, 0, len(head)+len(body)), head...), body...)
		if len(e.Signature) != ed25519.SignatureSize || !ed25519.Verify(k.pub, msg, e.Signature) {
			return ErrForged
		}
	case AlgHMACSHA256:
		key, ok := v.Keys.hmac[e.Auth.KeyID]
		if !ok {
			return fmt.Errorf("%w: hmac key %q", ErrUnknownKey, e.Auth.KeyID)
		}
		if !key.equal(head, body, e.Signature) {
			return ErrForged
		}
	default:
		return fmt.Errorf("%w: algorithm %s", ErrUnknownKey, e.Auth.Alg)
	}
	return nil
}

package envelope

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Payload encryption (docs/PROTOCOL.md §4.5). The application's part of an
// envelope — payload, headers and a response's error — can travel
// encrypted with XChaCha20-Poly1305, while every routing field (kind, id,
// time, sender, topic, correlation, epoch, lease, attempt, deadline) stays
// readable and is bound to the ciphertext as associated data: claims,
// history and replay work on encrypted envelopes unchanged, and a person in
// the channel sees that a payload is encrypted, never what it says.
//
// Channels use a mesh payload key (one secret every member holds). Direct
// messages use a key two services agree on with X25519 (each service has a
// key pair; the keyring holds the public halves), derived with HKDF-SHA256
// and bound to both service names and both key ids. Key ids make rotation
// possible without stopping the mesh: a receiver accepts every key its
// keyring holds, a sender uses the newest.

// CryptAlg names how a payload is encrypted. Append-only, like Kind.
type CryptAlg uint8

// Payload encryption algorithms.
const (
	// CryptMesh: XChaCha20-Poly1305 under a mesh payload key.
	CryptMesh CryptAlg = 1
	// CryptPair: XChaCha20-Poly1305 under the key the sending and the
	// receiving service agree on with X25519 (HKDF-SHA256).
	CryptPair CryptAlg = 2
)

func (a CryptAlg) String() string {
	switch a {
	case CryptMesh:
		return "mesh"
	case CryptPair:
		return "pair"
	}
	return fmt.Sprintf("crypt%d", uint8(a))
}

// PayloadKeySize is the size of a mesh payload key.
const PayloadKeySize = chacha20poly1305.KeySize

// Crypt says how an envelope's payload is encrypted (key 16).
type Crypt struct {
	_   struct{} `cbor:",toarray"`
	Alg CryptAlg
	// KeyID names the mesh key (CryptMesh) or the sending service's
	// X25519 key (CryptPair).
	KeyID string
	// PeerKeyID names the receiving service's X25519 key (CryptPair).
	PeerKeyID string
	// Nonce is the AEAD nonce (24 random bytes).
	Nonce []byte
}

// UserPayload reports whether envelopes of kind k carry the application's
// payload (events, requests, responses): what an encrypting node encrypts.
// The other kinds carry the protocol's own routing data (heartbeats,
// claims, offsets) and stay readable.
func (k Kind) UserPayload() bool {
	return k == KindEvent || k == KindRequest || k == KindResponse
}

// Encrypted reports whether the payload travelled encrypted: it still is
// (PayloadEncrypted), or a decoder opened it. What shows an envelope to
// people must never show the payload of an encrypted one to those who do
// not hold its key; the line summaries say "encrypted" (EncryptedMark).
func (e *Envelope) Encrypted() bool { return e.Crypt != nil || e.opened }

// PayloadEncrypted reports whether Payload holds ciphertext now (no
// decoder with the key opened it).
func (e *Envelope) PayloadEncrypted() bool { return e.Crypt != nil }

// cryptBody is the plaintext of an encrypted payload: the fields the
// encryption hides.
type cryptBody struct {
	Payload []byte  `cbor:"1,keyasint,omitempty"`
	Headers Headers `cbor:"2,keyasint,omitzero"`
	Error   *Error  `cbor:"3,keyasint,omitempty"`
}

// bodyDecMode decodes a cryptBody: a flat map with two small nested ones.
var bodyDecMode = StrictDecMode(4, maxArray, 16)

// aadContext starts the associated data: it separates these keys' use from
// anything else.
const aadContext = "meshbot payload v1"

// appendAAD appends the associated data of e: the routing fields and the
// encryption's own header, as a CBOR array in a fixed order. New envelope
// keys are not added here (old receivers would disagree); the signature
// covers them.
func appendAAD(b []byte, e *Envelope) []byte {
	b = appendHead(b, 0x80, 16)
	b = appendText(b, aadContext)
	b = appendHead(b, 0, uint64(e.Version))
	b = appendHead(b, 0, uint64(e.Kind))
	b = appendBytes(b, e.ID[:])
	b = appendInt(b, e.Time)
	b = appendHead(b, 0x80, 3)
	b = appendText(b, e.Sender.Service)
	b = appendText(b, e.Sender.Instance)
	b = appendHead(b, 0, e.Sender.Incarnation)
	b = appendText(b, e.Topic)
	b = appendBytes(b, e.Correlation[:])
	b = appendHead(b, 0, e.Epoch)
	b = appendHead(b, 0, uint64(e.LeaseMillis))
	b = appendHead(b, 0, uint64(e.Attempt))
	b = appendInt(b, e.Deadline)
	b = appendHead(b, 0, uint64(e.Crypt.Alg))
	b = appendText(b, e.Crypt.KeyID)
	return appendText(b, e.Crypt.PeerKeyID)
}

// aadPool holds the buffers associated data is built in: an AEAD takes
// it through an interface, so a buffer on the stack would escape (one
// allocation per envelope sealed or opened).
var aadPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func appendText(b []byte, s string) []byte  { return append(appendHead(b, 0x60, uint64(len(s))), s...) }
func appendBytes(b []byte, p []byte) []byte { return append(appendHead(b, 0x40, uint64(len(p))), p...) }

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendHead(b, 0, uint64(v))
	}
	return appendHead(b, 0x20, uint64(-1-v))
}

// A Crypter encrypts the payloads a service sends and opens those it
// receives, with the mesh keys of its Keyring (channels), its own X25519
// keys and the services' public X25519 keys in the Keyring (DMs). It is
// safe for concurrent use, and its keys can change while it is in use
// (rotation).
type Crypter struct {
	service string
	keys    *Keyring

	mu      sync.RWMutex
	meshKey string                      // the mesh key id that encrypts
	own     map[string]*ecdh.PrivateKey // this service's X25519 keys by id
	order   []string                    // their ids, oldest first
	current string                      // the own key that encrypts
	pairs   map[[2]string]pairKey       // derived keys by (own id, peer id)
}

type pairKey struct {
	peer *ecdh.PublicKey
	aead cipher.AEAD
}

// NewCrypter returns a Crypter for service over keys (the keyring it
// verifies with: it holds the mesh payload keys and the services' X25519
// public keys).
func NewCrypter(service string, keys *Keyring) *Crypter {
	if keys == nil {
		keys = NewKeyring()
	}
	return &Crypter{service: service, keys: keys, own: map[string]*ecdh.PrivateKey{}, pairs: map[[2]string]pairKey{}}
}

// Keys returns the keyring the Crypter reads.
func (c *Crypter) Keys() *Keyring { return c.keys }

// UseMeshKey makes the keyring's mesh payload key keyID the one that
// encrypts channel payloads from now on (every mesh key of the keyring
// still opens). To rotate: add the new key to every member's keyring,
// then switch each sender to it, then remove the old one.
func (c *Crypter) UseMeshKey(keyID string) error {
	if _, ok := c.keys.payloadKey(keyID); !ok {
		return fmt.Errorf("%w: mesh payload key %q is not in the keyring", ErrUnknownKey, keyID)
	}
	c.mu.Lock()
	c.meshKey = keyID
	c.mu.Unlock()
	return nil
}

// MeshKey returns the id of the mesh key that encrypts ("" for none).
func (c *Crypter) MeshKey() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.meshKey
}

// AddX25519 gives the service its X25519 private key keyID. Every key
// added opens DMs; the first one added encrypts them until UseX25519
// names another. Its public half must be in the other services' keyrings
// (Keyring.AddX25519Public) for them to use it. To rotate: add the new
// key (it opens DMs to it at once), then put its public half in the
// others' keyrings (they encrypt to the newest one), then switch to it
// (UseX25519, or RemoveX25519 of the old one), then remove the old public
// key from the keyrings.
func (c *Crypter) AddX25519(keyID string, priv *ecdh.PrivateKey) error {
	if priv == nil || priv.Curve() != ecdh.X25519() {
		return fmt.Errorf("%w: key %q is not an X25519 key", ErrMalformed, keyID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.own[keyID]; !ok {
		c.order = append(c.order, keyID)
	}
	c.own[keyID] = priv
	if c.current == "" {
		c.current = keyID
	}
	for k := range c.pairs {
		if k[0] == keyID {
			delete(c.pairs, k) // a new key under an old id
		}
	}
	return nil
}

// UseX25519 makes the service's own key keyID (added before) the one that
// encrypts its DMs from now on.
func (c *Crypter) UseX25519(keyID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.own[keyID]; !ok {
		return fmt.Errorf("%w: own x25519 key %q was not added", ErrUnknownKey, keyID)
	}
	c.current = keyID
	return nil
}

// RemoveX25519 forgets the service's own key keyID (the end of a
// rotation). If it encrypted, the oldest remaining key, if any, encrypts
// from then on.
func (c *Crypter) RemoveX25519(keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.own, keyID)
	for k := range c.pairs {
		if k[0] == keyID {
			delete(c.pairs, k)
		}
	}
	c.order = slices.DeleteFunc(c.order, func(id string) bool { return id == keyID })
	if c.current == keyID {
		c.current = ""
		if len(c.order) > 0 {
			c.current = c.order[0]
		}
	}
}

// Encrypt returns a copy of e whose payload, headers and error are
// encrypted; e itself is not changed. peer is the receiving service of a
// DM, "" for a channel: a DM uses the key agreed with peer when both
// services have X25519 keys, else the mesh key. It fails with
// ErrUnknownKey when it has no key to use.
func (c *Crypter) Encrypt(e *Envelope, peer string) (*Envelope, error) {
	hdr, aead, err := c.sendKey(peer)
	if err != nil {
		return nil, err
	}
	body, err := appendBody(make([]byte, 0, len(e.Payload)+16+aead.Overhead()), e)
	if err != nil {
		return nil, err
	}
	out := *e
	out.Headers, out.Error, out.Auth, out.Signature, out.opened = Headers{}, nil, nil, nil, false
	hdr.Nonce = make([]byte, chacha20poly1305.NonceSizeX)
	_, _ = rand.Read(hdr.Nonce) // never fails (Go ≥ 1.24)
	out.Crypt = &hdr
	aad := aadPool.Get().(*[]byte)
	*aad = appendAAD((*aad)[:0], &out)
	out.Payload = aead.Seal(body[:0], hdr.Nonce, body, *aad) // in place
	aadPool.Put(aad)
	return &out, nil
}

// appendBody appends the plaintext of e's encrypted fields: the CBOR of a
// cryptBody, written by hand for the common case (a payload alone) with
// the bytes the deterministic encoder would write.
func appendBody(b []byte, e *Envelope) ([]byte, error) {
	if !e.Headers.IsZero() || e.Error != nil {
		enc, err := encMode.Marshal(&cryptBody{Payload: e.Payload, Headers: e.Headers, Error: e.Error})
		return append(b, enc...), err
	}
	if len(e.Payload) == 0 {
		return append(b, 0xa0), nil // {}
	}
	return appendBytes(append(b, 0xa1, 0x01), e.Payload), nil // {1: payload}
}

// decodeBody reads a cryptBody, the common case (a payload alone) without
// reflection and without a copy.
func decodeBody(p []byte) (cryptBody, error) {
	var body cryptBody
	if len(p) > 2 && p[0] == 0xa1 && p[1] == 0x01 && p[2]>>5 == 2 {
		if n, rest, err := readHead(p[2:], 2); err == nil && n == uint64(len(rest)) {
			body.Payload = rest
			return body, nil
		}
	}
	if len(p) == 1 && p[0] == 0xa0 {
		return body, nil
	}
	err := bodyDecMode.Unmarshal(p, &body)
	return body, err
}

// sendKey picks the key that encrypts for peer.
func (c *Crypter) sendKey(peer string) (Crypt, cipher.AEAD, error) {
	c.mu.RLock()
	meshKey, own := c.meshKey, c.current
	c.mu.RUnlock()
	if peer != "" && own != "" {
		if peerID, ok := c.keys.newestX25519(peer); ok {
			aead, err := c.pairKey(own, peerID, peer)
			if err != nil {
				return Crypt{}, nil, err
			}
			return Crypt{Alg: CryptPair, KeyID: own, PeerKeyID: peerID}, aead, nil
		}
	}
	if meshKey == "" {
		if peer != "" {
			return Crypt{}, nil, fmt.Errorf("%w: no key to encrypt for %s (no X25519 key of it, no mesh key)", ErrUnknownKey, peer)
		}
		return Crypt{}, nil, fmt.Errorf("%w: no mesh payload key to encrypt with", ErrUnknownKey)
	}
	aead, ok := c.keys.payloadKey(meshKey)
	if !ok {
		return Crypt{}, nil, fmt.Errorf("%w: mesh payload key %q was removed from the keyring", ErrUnknownKey, meshKey)
	}
	return Crypt{Alg: CryptMesh, KeyID: meshKey}, aead, nil
}

// Decrypt opens e's payload in place: Payload, Headers and Error get their
// clear values, Crypt is cleared and Encrypted stays true. A key it does
// not hold is ErrUnknownKey; a payload that does not open (tampered, or
// routing fields changed) is ErrForged; a malformed header ErrMalformed.
// An envelope that is not encrypted is left alone. The bytes e.Payload
// held are not changed (a new slice replaces it).
func (c *Crypter) Decrypt(e *Envelope) error { return c.decrypt(e, false) }

// decrypt is Decrypt; inPlace opens the payload in its own bytes (they
// are overwritten, also when it does not open): for envelopes the caller
// owns, as a Decoder owns what it decoded.
func (c *Crypter) decrypt(e *Envelope, inPlace bool) error {
	h := e.Crypt
	if h == nil {
		return nil
	}
	if len(h.Nonce) != chacha20poly1305.NonceSizeX {
		return fmt.Errorf("%w: nonce of %d bytes", ErrMalformed, len(h.Nonce))
	}
	var aead cipher.AEAD
	switch h.Alg {
	case CryptMesh:
		var ok bool
		if aead, ok = c.keys.payloadKey(h.KeyID); !ok {
			return fmt.Errorf("%w: mesh payload key %q", ErrUnknownKey, h.KeyID)
		}
	case CryptPair:
		var err error
		if aead, err = c.openPairKey(e.Sender.Service, h); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: payload encryption %s", ErrUnknownKey, h.Alg)
	}
	if len(e.Payload) < aead.Overhead() {
		return fmt.Errorf("%w: encrypted payload of %d bytes", ErrForged, len(e.Payload))
	}
	var dst []byte
	if inPlace {
		dst = e.Payload[:0]
	}
	aad := aadPool.Get().(*[]byte)
	*aad = appendAAD((*aad)[:0], e)
	plain, err := aead.Open(dst, h.Nonce, e.Payload, *aad)
	aadPool.Put(aad)
	if err != nil {
		return fmt.Errorf("%w: the payload does not open with key %q", ErrForged, h.KeyID)
	}
	body, err := decodeBody(plain)
	if err != nil {
		return fmt.Errorf("%w: encrypted payload: %v", ErrMalformed, err)
	}
	e.Payload, e.Headers, e.Error, e.Crypt, e.opened = body.Payload, body.Headers, body.Error, nil, true
	return nil
}

// openPairKey returns the pair key of a DM sent by sender with header h:
// to this service (h.PeerKeyID is one of its own keys), or by it (its own
// DM, echoed back by the server).
func (c *Crypter) openPairKey(sender string, h *Crypt) (cipher.AEAD, error) {
	c.mu.RLock()
	_, ownSent := c.own[h.KeyID]
	c.mu.RUnlock()
	if sender == c.service && ownSent {
		peer, ok := c.keys.x25519Service(h.PeerKeyID)
		if !ok {
			return nil, fmt.Errorf("%w: x25519 key %q", ErrUnknownKey, h.PeerKeyID)
		}
		return c.pairKey(h.KeyID, h.PeerKeyID, peer)
	}
	service, ok := c.keys.x25519Service(h.KeyID)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: x25519 key %q", ErrUnknownKey, h.KeyID)
	case service != sender:
		return nil, fmt.Errorf("%w: x25519 key %q belongs to %q, not %q", ErrUnknownKey, h.KeyID, service, sender)
	}
	return c.pairKey(h.PeerKeyID, h.KeyID, service)
}

// pairKey returns the key this service (own key ownID) shares with
// service peer (its key peerID), deriving it on first use.
func (c *Crypter) pairKey(ownID, peerID, peer string) (cipher.AEAD, error) {
	pub, ok := c.keys.x25519Public(peerID)
	if !ok {
		return nil, fmt.Errorf("%w: x25519 key %q", ErrUnknownKey, peerID)
	}
	id := [2]string{ownID, peerID}
	c.mu.RLock()
	pk, cached := c.pairs[id]
	priv := c.own[ownID]
	c.mu.RUnlock()
	if cached && pk.peer.Equal(pub) {
		return pk.aead, nil
	}
	if priv == nil {
		return nil, fmt.Errorf("%w: own x25519 key %q", ErrUnknownKey, ownID)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: x25519 key %q: %v", ErrForged, peerID, err)
	}
	key, err := hkdf.Key(sha256.New, shared, nil, pairInfo(c.service, ownID, peer, peerID), chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pairs[id] = pairKey{peer: pub, aead: aead}
	c.mu.Unlock()
	return aead, nil
}

// pairInfo is the HKDF info of a pair key: both services and both key ids,
// in an order both sides compute alike.
func pairInfo(svcA, keyA, svcB, keyB string) string {
	if svcB < svcA || svcB == svcA && keyB < keyA {
		svcA, keyA, svcB, keyB = svcB, keyB, svcA, keyA
	}
	return "meshbot pair v1\x00" + svcA + "\x00" + keyA + "\x00" + svcB + "\x00" + keyB
}

// openPayload decrypts env's payload with the decoder's Crypter, and
// applies MustOpen and RequireEncrypted.
func (d *Decoder) openPayload(env *Envelope) error {
	if env.Crypt == nil {
		if d.cfg.RequireEncrypted && env.Kind.UserPayload() {
			return fmt.Errorf("%w: %s %s from %s", ErrUnencrypted, env.Kind, env.ID.Short(), clipName(env.Sender.Service))
		}
		return nil
	}
	if d.cfg.Crypter == nil {
		if d.cfg.MustOpen {
			return fmt.Errorf("%w: payload encrypted with %s key %q, and this decoder holds no payload keys", ErrUnknownKey, env.Crypt.Alg, env.Crypt.KeyID)
		}
		return nil
	}
	err := d.cfg.Crypter.decrypt(env, true) // env is ours: Unmarshal made it
	if err != nil && !d.cfg.MustOpen && errors.Is(err, ErrUnknownKey) {
		return nil // hand it on encrypted
	}
	return err
}

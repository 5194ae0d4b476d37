package envelope

import (
	"crypto/cipher"
	"crypto/ecdh"
	"fmt"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
)

// dhKey is a service's X25519 public key.
type dhKey struct {
	service string
	pub     *ecdh.PublicKey
}

// AddPayloadKey trusts the mesh payload key keyID (PayloadKeySize bytes):
// payloads encrypted with it open (CryptMesh). A Crypter encrypts with it
// once told to (Crypter.UseMeshKey).
func (k *Keyring) AddPayloadKey(keyID string, key []byte) error {
	if len(key) != PayloadKeySize {
		return fmt.Errorf("%w: payload key %q is %d bytes, want %d", ErrMalformed, keyID, len(key), PayloadKeySize)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.payload[keyID] = aead
	return nil
}

// AddX25519Public trusts pub (32 bytes) as service's X25519 key keyID: DMs
// to the service are encrypted with the key agreed with it (the newest key
// added for it), and its DMs encrypted with it open.
func (k *Keyring) AddX25519Public(keyID, service string, pub []byte) error {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("%w: x25519 key %q: %v", ErrMalformed, keyID, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok := k.x25519[keyID]; ok {
		k.dhOrder[old.service] = slices.DeleteFunc(k.dhOrder[old.service], func(id string) bool { return id == keyID })
	}
	k.x25519[keyID] = dhKey{service: service, pub: p}
	k.dhOrder[service] = append(k.dhOrder[service], keyID)
	return nil
}

// Remove forgets every key named keyID (of any kind): the end of a
// rotation. Envelopes signed or encrypted with it are refused from then on.
func (k *Keyring) Remove(keyID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.ed, keyID)
	delete(k.hmac, keyID)
	delete(k.payload, keyID)
	if old, ok := k.x25519[keyID]; ok {
		k.dhOrder[old.service] = slices.DeleteFunc(k.dhOrder[old.service], func(id string) bool { return id == keyID })
		delete(k.x25519, keyID)
	}
}

// HasPayloadKeys reports whether the keyring holds a mesh payload key or an
// X25519 key: whether it can open any encrypted payload.
func (k *Keyring) HasPayloadKeys() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.payload) > 0 || len(k.x25519) > 0
}

func (k *Keyring) payloadKey(keyID string) (cipher.AEAD, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	a, ok := k.payload[keyID]
	return a, ok
}

func (k *Keyring) x25519Public(keyID string) (*ecdh.PublicKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	d, ok := k.x25519[keyID]
	return d.pub, ok
}

func (k *Keyring) x25519Service(keyID string) (string, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	d, ok := k.x25519[keyID]
	return d.service, ok
}

// newestX25519 returns the id of the last X25519 key added for service.
func (k *Keyring) newestX25519(service string) (string, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	ids := k.dhOrder[service]
	if len(ids) == 0 {
		return "", false
	}
	return ids[len(ids)-1], true
}

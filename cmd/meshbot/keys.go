package main

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/meshbot/meshbot/envelope"
)

// Key files (docs/CLI.md, "Key files"): text, one key per line, fields
// separated by blanks; blank lines and lines starting with '#' are ignored.
//
//	ed25519         KEYID SERVICE PUBLIC    a service's public key (keyrings)
//	hmac            KEYID KEY               the mesh HMAC key (keyrings, --hmac-key-file)
//	ed25519-private KEYID SERVICE PRIVATE   a service's private key (--ed25519-key-file)
//	payload         KEYID KEY               a mesh payload key (keyrings, --payload-key-file)
//	x25519          KEYID SERVICE PUBLIC    a service's DM key (keyrings)
//	x25519-private  KEYID SERVICE PRIVATE   a service's DM private key (--x25519-key-file)
//
// Keys are base64 (standard or URL alphabet, padding optional): an ed25519
// public key is 32 bytes, a private key its 32-byte seed or the 64-byte Go
// form, an HMAC key at least 16 bytes, a payload key 32 bytes, X25519 keys
// 32 bytes.
const (
	keyEd25519        = "ed25519"
	keyHMAC           = "hmac"
	keyEd25519Private = "ed25519-private"
	keyPayload        = "payload"
	keyX25519         = "x25519"
	keyX25519Private  = "x25519-private"
	minHMACKey        = 16
)

type keyLine struct {
	kind, id, service string
	key               []byte
	line              int
}

type hmacKey struct {
	id  string
	key []byte
}

type edPrivate struct {
	id, service string
	priv        ed25519.PrivateKey
}

func (k edPrivate) public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// parseKeys reads a key file.
func parseKeys(path string) ([]keyLine, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	var out []keyLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, args...))
		}
		k := keyLine{kind: f[0], line: n}
		var b64 string
		switch f[0] {
		case keyEd25519, keyEd25519Private, keyX25519, keyX25519Private:
			if len(f) != 4 {
				return nil, bad("want %q KEYID SERVICE KEY, got %d fields", f[0], len(f))
			}
			k.id, k.service, b64 = f[1], f[2], f[3]
		case keyHMAC, keyPayload:
			if len(f) != 3 {
				return nil, bad("want %q KEYID KEY, got %d fields", f[0], len(f))
			}
			k.id, b64 = f[1], f[2]
		default:
			return nil, bad("unknown key type %q: want ed25519, hmac, ed25519-private, payload, x25519 or x25519-private", f[0])
		}
		if k.key, err = decodeKey(b64); err != nil {
			return nil, bad("key %s: %v", k.id, err)
		}
		switch {
		case k.kind == keyEd25519 && len(k.key) != ed25519.PublicKeySize:
			return nil, bad("ed25519 public key %s is %d bytes, want %d", k.id, len(k.key), ed25519.PublicKeySize)
		case k.kind == keyEd25519Private && len(k.key) != ed25519.SeedSize && len(k.key) != ed25519.PrivateKeySize:
			return nil, bad("ed25519 private key %s is %d bytes, want %d (seed) or %d", k.id, len(k.key), ed25519.SeedSize, ed25519.PrivateKeySize)
		case k.kind == keyHMAC && len(k.key) < minHMACKey:
			return nil, bad("hmac key %s is %d bytes, want at least %d", k.id, len(k.key), minHMACKey)
		case k.kind == keyPayload && len(k.key) != envelope.PayloadKeySize:
			return nil, bad("payload key %s is %d bytes, want %d", k.id, len(k.key), envelope.PayloadKeySize)
		case (k.kind == keyX25519 || k.kind == keyX25519Private) && len(k.key) != 32:
			return nil, bad("%s key %s is %d bytes, want 32", k.kind, k.id, len(k.key))
		}
		out = append(out, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return out, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// loadKeyring reads the trusted keys of a keyring file.
func loadKeyring(path string) (*envelope.Keyring, error) {
	kr := envelope.NewKeyring()
	if err := addKeyringFile(kr, path); err != nil {
		return nil, err
	}
	return kr, nil
}

// loadKeyrings reads keyring files (--keyring, repeatable) into one
// keyring; nil for none.
func loadKeyrings(paths []string) (*envelope.Keyring, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	kr := envelope.NewKeyring()
	for _, p := range paths {
		if err := addKeyringFile(kr, p); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// addKeyringFile adds the keys of a keyring file to kr.
func addKeyringFile(kr *envelope.Keyring, path string) error {
	lines, err := parseKeys(path)
	if err != nil {
		return err
	}
	for _, k := range lines {
		switch k.kind {
		case keyEd25519:
			kr.AddEd25519(k.id, k.service, k.key)
		case keyHMAC:
			kr.AddHMAC(k.id, k.key)
		case keyPayload:
			err = kr.AddPayloadKey(k.id, k.key)
		case keyX25519:
			err = kr.AddX25519Public(k.id, k.service, k.key)
		default:
			public := map[string]string{keyEd25519Private: keyEd25519, keyX25519Private: keyX25519}[k.kind]
			return fmt.Errorf("%s:%d: a keyring holds public keys: put the %q line of 'meshbot keygen' here, not the private key", path, k.line, public)
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %v", path, k.line, err)
		}
	}
	if len(lines) == 0 {
		return fmt.Errorf("keyring %s holds no keys", path)
	}
	return nil
}

// payloadKey is a mesh payload key from --payload-key-file.
type payloadKey struct {
	id  string
	key []byte
}

func loadPayloadKey(path string) (payloadKey, error) {
	k, err := oneKey(path, keyPayload)
	return payloadKey{id: k.id, key: k.key}, err
}

// dhPrivate is a service's X25519 private key from --x25519-key-file.
type dhPrivate struct {
	id, service string
	priv        *ecdh.PrivateKey
}

// loadX25519Keys reads the X25519 private keys of a key file, in file
// order: every one opens DMs (a rotation holds the old and the new), the
// first encrypts them (the old one, until it is removed). They must all
// be of one service.
func loadX25519Keys(path string) ([]dhPrivate, error) {
	lines, err := parseKeys(path)
	if err != nil {
		return nil, err
	}
	var out []dhPrivate
	for _, k := range lines {
		if k.kind != keyX25519Private {
			continue
		}
		priv, err := ecdh.X25519().NewPrivateKey(k.key)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, k.line, err)
		}
		if len(out) > 0 && out[0].service != k.service {
			return nil, fmt.Errorf("%s:%d: key %s is of service %q, the file's first key of %q: one service per file", path, k.line, k.id, k.service, out[0].service)
		}
		out = append(out, dhPrivate{id: k.id, service: k.service, priv: priv})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no %q line (create one with 'meshbot keygen x25519')", path, keyX25519Private)
	}
	return out, nil
}

// oneKey returns the only key of kind in a key file.
func oneKey(path, kind string) (keyLine, error) {
	lines, err := parseKeys(path)
	if err != nil {
		return keyLine{}, err
	}
	var found []keyLine
	for _, k := range lines {
		if k.kind == kind {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		return keyLine{}, fmt.Errorf("%s: want exactly one %q line, found %d (create one with 'meshbot keygen')", path, kind, len(found))
	}
	return found[0], nil
}

func loadHMACKey(path string) (hmacKey, error) {
	k, err := oneKey(path, keyHMAC)
	return hmacKey{id: k.id, key: k.key}, err
}

func loadEd25519Key(path string) (edPrivate, error) {
	k, err := oneKey(path, keyEd25519Private)
	if err != nil {
		return edPrivate{}, err
	}
	// From the seed, also in the 64-byte form, so that the public half
	// always matches it.
	priv := ed25519.NewKeyFromSeed(k.key[:ed25519.SeedSize])
	return edPrivate{id: k.id, service: k.service, priv: priv}, nil
}

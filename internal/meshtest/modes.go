package meshtest

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// Trust modes of a mesh. A guarantee holds in every mode a user runs, so
// tests of delivery, history, replay and claims run as a table over them
// (ForEachMode): unsigned; signed with the mesh HMAC key (a signing node
// requires signatures); signed with an ed25519 key per service, with
// RequireSigned on every node; encrypted
// (the HMAC key with RequireSigned, payloads encrypted with a mesh
// payload key and, for DMs, an X25519 key per service, with
// RequireEncrypted on every node).
const (
	Unsigned        = "unsigned"
	HMAC            = "hmac"
	Ed25519Required = "ed25519-required"
	Encrypted       = "encrypted"
	// HMACRequired is HMAC with RequireSigned on every node: not in
	// ModeNames (the ed25519 mode requires signatures already), for tests
	// of a configuration users run (--hmac-key-file --require-signed).
	HMACRequired = "hmac-required"
)

// Mode is the trust of one test mesh: Apply gives each node's config the
// keys of its service. Safe for concurrent use.
type Mode struct {
	Name string

	mu      sync.Mutex
	keys    *envelope.Keyring
	hmac    []byte
	ed      map[string]ed25519.PrivateKey // by service
	payload []byte                        // the mesh payload key (Encrypted)
	dh      map[string]*ecdh.PrivateKey   // X25519 keys by service (Encrypted)
}

// NewMode returns a fresh mode named name (Unsigned, HMAC or
// Ed25519Required), with new random keys.
func NewMode(name string) *Mode {
	m := &Mode{Name: name, ed: map[string]ed25519.PrivateKey{}, dh: map[string]*ecdh.PrivateKey{}}
	switch name {
	case Unsigned:
	case HMAC, HMACRequired, Encrypted:
		m.keys = envelope.NewKeyring()
		m.hmac = make([]byte, 32)
		_, _ = rand.Read(m.hmac)
		m.keys.AddHMAC("mesh", m.hmac)
		if name == Encrypted {
			m.payload = make([]byte, envelope.PayloadKeySize)
			_, _ = rand.Read(m.payload)
			if err := m.keys.AddPayloadKey(payloadKeyID, m.payload); err != nil {
				panic(err)
			}
		}
	case Ed25519Required:
		m.keys = envelope.NewKeyring()
	default:
		panic("meshtest: unknown mode " + name)
	}
	return m
}

// ModeNames are the modes ForEachMode runs.
var ModeNames = []string{Unsigned, HMAC, Ed25519Required, Encrypted}

// payloadKeyID names the mesh payload key of the Encrypted mode.
const payloadKeyID = "payload"

// ForEachMode runs fn as a subtest per mode, each with fresh keys.
func ForEachMode(t *testing.T, fn func(t *testing.T, m *Mode)) {
	t.Helper()
	for _, name := range ModeNames {
		t.Run(name, func(t *testing.T) { fn(t, NewMode(name)) })
	}
}

// Signed reports whether nodes of the mode sign what they send.
func (m *Mode) Signed() bool { return m.Name != Unsigned }

// RequireSigned reports whether nodes of the mode refuse unsigned
// envelopes (a stranger without the keys is not heard): every signed
// mode, since a node that signs requires signatures by default.
func (m *Mode) RequireSigned() bool { return m.Signed() }

// Encrypted reports whether nodes of the mode encrypt payloads.
func (m *Mode) Encrypted() bool { return m.Name == Encrypted }

// Keys returns the mode's keyring (nil when unsigned): every key of the
// mesh, as a node of it trusts them.
func (m *Mode) Keys() *envelope.Keyring { return m.keys }

// Apply sets cfg's Signer, Keys and RequireSigned for cfg.Service (set
// Service first). In the ed25519 mode the service gets its key pair on
// first use, and every node's keyring trusts it from then on.
func (m *Mode) Apply(cfg *mesh.Config) {
	switch m.Name {
	case Unsigned:
		cfg.Signer, cfg.Keys, cfg.RequireSigned, cfg.AllowUnsigned = nil, nil, false, true
	case HMAC, HMACRequired:
		cfg.Signer, cfg.Keys, cfg.RequireSigned = envelope.NewHMACSigner("mesh", m.hmac), m.keys, m.Name == HMACRequired
	case Encrypted:
		cfg.Signer, cfg.Keys, cfg.RequireSigned = envelope.NewHMACSigner("mesh", m.hmac), m.keys, true
		cfg.Crypter, cfg.RequireEncrypted = m.Crypter(cfg.Service), true
	case Ed25519Required:
		priv := m.serviceKey(cfg.Service)
		cfg.Signer, cfg.Keys, cfg.RequireSigned = envelope.NewEd25519Signer(keyID(cfg.Service), priv), m.keys, true
	}
}

// Config returns cfg with the mode applied (a convenience for tables).
func (m *Mode) Config(cfg mesh.Config) mesh.Config {
	m.Apply(&cfg)
	return cfg
}

func keyID(service string) string { return "k-" + service }

func dhKeyID(service string) string { return "x-" + service }

// Crypter returns a Crypter for service over the mode's keyring (nil
// unless the mode encrypts): the mesh payload key encrypts channels, the
// service's X25519 key (made and trusted on first use) DMs.
func (m *Mode) Crypter(service string) *envelope.Crypter {
	if m.Name != Encrypted {
		return nil
	}
	c := envelope.NewCrypter(service, m.keys)
	if err := c.UseMeshKey(payloadKeyID); err != nil {
		panic(err)
	}
	if err := c.AddX25519(dhKeyID(service), m.serviceDH(service)); err != nil {
		panic(err)
	}
	return c
}

// serviceDH returns the service's X25519 private key, made and trusted
// on first use.
func (m *Mode) serviceDH(service string) *ecdh.PrivateKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.dh[service]; ok {
		return k
	}
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	m.dh[service] = k
	if err := m.keys.AddX25519Public(dhKeyID(service), service, k.PublicKey().Bytes()); err != nil {
		panic(err)
	}
	return k
}

// serviceKey returns the service's ed25519 private key, made and trusted
// on first use.
func (m *Mode) serviceKey(service string) ed25519.PrivateKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.ed[service]; ok {
		return k
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	m.ed[service] = priv
	m.keys.AddEd25519(keyID(service), service, pub)
	return priv
}

// Flags writes the key files a `meshbot` process of service needs in this
// mode into dir and returns its command-line flags: the signing key, the
// keyring of the services named (and of service), and --require-signed
// where the mode requires signatures. Unsigned: no flags.
func (m *Mode) Flags(t testing.TB, dir, service string, services ...string) []string {
	t.Helper()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b64 := base64.StdEncoding.EncodeToString
	switch m.Name {
	case HMAC, HMACRequired:
		f := write("mesh.hmac", fmt.Sprintf("hmac mesh %s\n", b64(m.hmac)))
		flags := []string{"--hmac-key-file", f, "--keyring", f}
		if m.Name == HMACRequired {
			flags = append(flags, "--require-signed")
		}
		return flags
	case Encrypted:
		f := write("mesh.hmac", fmt.Sprintf("hmac mesh %s\n", b64(m.hmac)))
		p := write("mesh.payload", fmt.Sprintf("payload %s %s\n", payloadKeyID, b64(m.payload)))
		own := write(service+".x25519", fmt.Sprintf("x25519-private %s %s %s\n", dhKeyID(service), service, b64(m.serviceDH(service).Bytes())))
		ring := ""
		for _, s := range append([]string{service}, services...) {
			ring += fmt.Sprintf("x25519 %s %s %s\n", dhKeyID(s), s, b64(m.serviceDH(s).PublicKey().Bytes()))
		}
		kr := write(service+".keyring", ring)
		return []string{"--hmac-key-file", f, "--keyring", f, "--keyring", kr, "--payload-key-file", p,
			"--x25519-key-file", own, "--require-signed", "--require-encrypted"}
	case Ed25519Required:
		priv := m.serviceKey(service)
		own := write(service+".key", fmt.Sprintf("ed25519-private %s %s %s\n", keyID(service), service, b64(priv.Seed())))
		ring := ""
		for _, s := range append([]string{service}, services...) {
			pub := m.serviceKey(s).Public().(ed25519.PublicKey)
			ring += fmt.Sprintf("ed25519 %s %s %s\n", keyID(s), s, b64(pub))
		}
		kr := write(service+".keyring", ring)
		return []string{"--ed25519-key-file", own, "--keyring", kr, "--require-signed"}
	}
	return nil
}

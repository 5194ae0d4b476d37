package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// cryptMesh is a test mesh: a keyring with a mesh payload key and the
// X25519 public keys of the services, and a Crypter per service.
type cryptMesh struct {
	ring *Keyring
	c    map[string]*Crypter
}

func newCryptMesh(t testing.TB, services ...string) *cryptMesh {
	t.Helper()
	m := &cryptMesh{ring: NewKeyring(), c: map[string]*Crypter{}}
	m.ring.AddHMAC("mesh", []byte("a mesh key of some length"))
	if err := m.ring.AddPayloadKey("p1", randomKey(t)); err != nil {
		t.Fatal(err)
	}
	for _, s := range services {
		c := NewCrypter(s, m.ring)
		if err := c.UseMeshKey("p1"); err != nil {
			t.Fatal(err)
		}
		m.addDH(t, c, s, s+"-dh1")
		m.c[s] = c
	}
	return m
}

func (m *cryptMesh) addDH(t testing.TB, c *Crypter, service, id string) {
	t.Helper()
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddX25519(id, priv); err != nil {
		t.Fatal(err)
	}
	if err := m.ring.AddX25519Public(id, service, priv.PublicKey().Bytes()); err != nil {
		t.Fatal(err)
	}
}

func randomKey(t testing.TB) []byte {
	k := make([]byte, PayloadKeySize)
	_, _ = rand.Read(k)
	return k
}

func (m *cryptMesh) decoder(service string) *Decoder {
	return NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: m.ring, RequireSigned: true}, BindSender: true,
		Crypter: m.c[service], MustOpen: true, RequireEncrypted: true})
}

// §4.5: a channel payload encrypted with the mesh key and signed after
// encryption opens for every member; headers and errors are hidden too;
// the routing fields stay readable; the summary says encrypted.
func TestEncryptChannelPayload(t *testing.T) {
	m := newCryptMesh(t, "orders", "billing")
	_, hm, _ := testKeys(t)
	e := sampleEnvelope()
	e.Headers.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	wire, err := m.c["orders"].Encrypt(e, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Payload, bytes.Repeat([]byte("x"), 200)) || e.Crypt != nil {
		t.Fatal("Encrypt changed its argument")
	}
	if wire.Crypt == nil || wire.Crypt.Alg != CryptMesh || wire.Crypt.KeyID != "p1" || !wire.Headers.IsZero() ||
		bytes.Contains(wire.Payload, []byte("xxxx")) || wire.ID != e.ID || wire.Topic != e.Topic || wire.Sender != e.Sender {
		t.Fatalf("encrypted envelope %+v", wire)
	}
	sealed, err := Seal(wire, hm)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("application/json")) || bytes.Contains(sealed, []byte("xxxx")) {
		t.Fatal("the sealed bytes hold the clear payload or headers")
	}
	line := lineOf(t, wire, sealed)
	if !strings.HasPrefix(line.Body, BodyMarker+" event+encrypted orders.created "+e.ID.Short()+" ") {
		t.Fatalf("body line %q", line.Body[:60])
	}
	tl, _ := EncodeLines(wire, sealed, CarrierTag, Limits{BodyBytes: 400})
	if !strings.HasPrefix(tl[0].Body, "mesh event+encrypted orders.created ") {
		t.Fatalf("tag line summary %q", tl[0].Body)
	}
	envs, _, err := m.decoder("billing").Decode("orders-a1b2c3", nil, line.Body, t0)
	if err != nil || len(envs) != 1 {
		t.Fatalf("decode: %v", err)
	}
	got := envs[0]
	if !bytes.Equal(got.Payload, e.Payload) || got.Headers != e.Headers || !got.Encrypted() || got.PayloadEncrypted() {
		t.Fatalf("opened %+v", got)
	}
	// A tool without keys gets it still encrypted, and can tell.
	tool := NewDecoder(DecoderConfig{AcceptUnchecked: true})
	tenvs, _, err := tool.Decode("orders-a1b2c3", nil, line.Body, t0)
	if err != nil || len(tenvs) != 1 || !tenvs[0].PayloadEncrypted() || bytes.Equal(tenvs[0].Payload, e.Payload) {
		t.Fatalf("a tool without keys: %v %+v", err, tenvs)
	}
	// A node without keys refuses it: it could not act on it.
	nokeys := NewDecoder(DecoderConfig{MustOpen: true})
	if _, _, err := nokeys.Decode("orders-a1b2c3", nil, line.Body, t0); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a node without keys: %v", err)
	}
}

func TestEncryptResponseError(t *testing.T) {
	m := newCryptMesh(t, "orders", "billing")
	e := New(KindResponse, Sender{Service: "billing", Instance: "b1"}, "bill.get", nil, t0)
	e.Correlation = NewID()
	e.Error = &Error{Code: 7, Message: "card 4111 declined"}
	wire, err := m.c["billing"].Encrypt(e, "orders")
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := Seal(wire, NewHMACSigner("mesh", []byte("a mesh key of some length")))
	if bytes.Contains(sealed, []byte("4111")) || wire.Error != nil || wire.Correlation != e.Correlation {
		t.Fatal("the error travels in clear, or the correlation does not")
	}
	got, err := m.decoder("orders").OpenFrom("billing-b1", nil, sealed, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Error == nil || got.Error.Message != "card 4111 declined" {
		t.Fatalf("error %+v", got.Error)
	}
}

// §4.5: a DM uses the key the two services agree with X25519; a third
// service holding the mesh key cannot open it; the key id names a key of
// the sending service.
func TestEncryptPairwise(t *testing.T) {
	m := newCryptMesh(t, "orders", "billing", "audit")
	e := New(KindRequest, Sender{Service: "orders", Instance: "o1"}, "bill.charge", []byte("secret amount"), t0)
	wire, err := m.c["orders"].Encrypt(e, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if wire.Crypt.Alg != CryptPair || wire.Crypt.KeyID != "orders-dh1" || wire.Crypt.PeerKeyID != "billing-dh1" {
		t.Fatalf("crypt %+v", wire.Crypt)
	}
	sealed, _ := Seal(wire, nil)
	got, err := NewDecoder(DecoderConfig{BindSender: true, Crypter: m.c["billing"], MustOpen: true}).OpenFrom("orders-o1", nil, sealed, t0)
	if err != nil || string(got.Payload) != "secret amount" {
		t.Fatalf("billing: %v", err)
	}
	// audit holds the mesh key, not billing's private key.
	if _, err := NewDecoder(DecoderConfig{Crypter: m.c["audit"], MustOpen: true}).Open(sealed, t0); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("audit: %v, want ErrUnknownKey", err)
	}
	// The sender opens its own DM (the server's echo).
	echo, _ := Unmarshal(sealed, 0)
	if err := m.c["orders"].Decrypt(echo); err != nil || string(echo.Payload) != "secret amount" {
		t.Fatalf("the sender's own DM: %v", err)
	}
	// The answer goes back under the same pair of keys.
	back := New(KindResponse, Sender{Service: "billing", Instance: "b1"}, "bill.charge", []byte("ok"), t0)
	bw, err := m.c["billing"].Encrypt(back, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.c["orders"].Decrypt(bw); err != nil || string(bw.Payload) != "ok" {
		t.Fatalf("answer: %v", err)
	}
	// A DM claiming another sender service with orders's key id fails:
	// the key belongs to orders.
	liar, _ := m.c["orders"].Encrypt(New(KindRequest, Sender{Service: "orders", Instance: "o1"}, "m", []byte("x"), t0), "billing")
	liar.Sender.Service = "audit"
	if err := m.c["billing"].Decrypt(liar); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("key of another service: %v", err)
	}
	// A peer with no X25519 key gets the mesh key.
	mw, err := m.c["orders"].Encrypt(e, "nobody")
	if err != nil || mw.Crypt.Alg != CryptMesh {
		t.Fatalf("to a service without an X25519 key: %v %+v", err, mw.Crypt)
	}
}

// Flipping any bit of the sealed bytes of an encrypted, unsigned envelope
// never yields an accepted envelope with another payload or routing: the
// associated data binds the routing fields.
func TestEncryptTamper(t *testing.T) {
	m := newCryptMesh(t, "orders", "billing")
	e := sampleEnvelope()
	e.Correlation, e.Epoch = NewID(), 3
	wire, _ := m.c["orders"].Encrypt(e, "")
	sealed, _ := Seal(wire, nil)
	d := NewDecoder(DecoderConfig{BindSender: true, Crypter: m.c["billing"], MustOpen: true, RequireEncrypted: true})
	accepted := 0
	for i := range len(sealed) * 8 {
		b := bytes.Clone(sealed)
		b[i/8] ^= 1 << (i % 8)
		got, err := d.OpenFrom("orders-a1b2c3", nil, b, t0)
		if err != nil {
			checkSentinel(t, err)
			continue
		}
		accepted++
		// What still opens must be the same envelope (a bit of the
		// encoding that does not change the value, none here in fact).
		if !bytes.Equal(got.Payload, e.Payload) || got.ID != e.ID || got.Topic != e.Topic || got.Correlation != e.Correlation || got.Epoch != e.Epoch || got.Time != e.Time {
			t.Fatalf("bit %d: accepted a changed envelope %+v", i, got)
		}
	}
	if accepted != 0 {
		t.Fatalf("%d flipped copies accepted", accepted)
	}
	// Changing a routing field and re-encoding (no signature to break)
	// fails to open.
	for name, change := range map[string]func(*Envelope){
		"topic":       func(x *Envelope) { x.Topic = "orders.deleted" },
		"kind":        func(x *Envelope) { x.Kind = KindRequest },
		"epoch":       func(x *Envelope) { x.Epoch++ },
		"time":        func(x *Envelope) { x.Time++ },
		"instance":    func(x *Envelope) { x.Sender.Instance = "zzz" },
		"correlation": func(x *Envelope) { x.Correlation = NewID() },
		"key id":      func(x *Envelope) { c := *x.Crypt; c.KeyID = "p2"; x.Crypt = &c },
	} {
		x := *wire
		change(&x)
		enc, _ := Marshal(&x)
		if _, err := NewDecoder(DecoderConfig{Crypter: m.c["billing"], MustOpen: true}).Open(enc, t0); err == nil {
			t.Errorf("%s changed: still opens", name)
		}
	}
	// An unencrypted event where encryption is required.
	plain, _ := Seal(sampleEnvelope(), nil)
	if _, err := d.OpenFrom("orders-a1b2c3", nil, plain, t0); !errors.Is(err, ErrUnencrypted) || Reason(err) != "unencrypted" {
		t.Fatalf("clear payload: %v", err)
	}
	// Heartbeats and claims stay readable: not required to be encrypted.
	hb, _ := Seal(New(KindHeartbeat, Sender{Service: "orders", Instance: "a1b2c3"}, "orders", []byte{0xa0}, t0), nil)
	if _, err := d.OpenFrom("orders-a1b2c3", nil, hb, t0); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
}

// Rotation: during a rollover both the old and the new mesh key open;
// once the old one is removed, what it encrypted is refused.
func TestMeshKeyRotation(t *testing.T) {
	m := newCryptMesh(t, "orders", "billing")
	old, _ := m.c["orders"].Encrypt(sampleEnvelope(), "")
	if err := m.ring.AddPayloadKey("p2", randomKey(t)); err != nil {
		t.Fatal(err)
	}
	if err := m.c["orders"].UseMeshKey("p2"); err != nil {
		t.Fatal(err)
	}
	if err := m.c["orders"].UseMeshKey("nope"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	cur, _ := m.c["orders"].Encrypt(sampleEnvelope(), "")
	if cur.Crypt.KeyID != "p2" {
		t.Fatalf("encrypts with %q", cur.Crypt.KeyID)
	}
	for _, w := range []*Envelope{old, cur} {
		x := *w
		if err := m.c["billing"].Decrypt(&x); err != nil {
			t.Fatalf("key %s during the rollover: %v", w.Crypt.KeyID, err)
		}
	}
	m.ring.Remove("p1")
	x := *old
	if err := m.c["billing"].Decrypt(&x); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old key after removal: %v", err)
	}
	// X25519 rotation: billing adds a new key pair; orders encrypts to
	// the newest; billing opens both while it holds both.
	before, _ := m.c["orders"].Encrypt(New(KindRequest, Sender{Service: "orders", Instance: "o"}, "m", []byte("1"), t0), "billing")
	m.addDH(t, m.c["billing"], "billing", "billing-dh2")
	after, _ := m.c["orders"].Encrypt(New(KindRequest, Sender{Service: "orders", Instance: "o"}, "m", []byte("2"), t0), "billing")
	if before.Crypt.PeerKeyID != "billing-dh1" || after.Crypt.PeerKeyID != "billing-dh2" {
		t.Fatalf("peer keys %s %s", before.Crypt.PeerKeyID, after.Crypt.PeerKeyID)
	}
	for _, w := range []*Envelope{before, after} {
		if err := m.c["billing"].Decrypt(w); err != nil {
			t.Fatalf("%s: %v", w.Crypt.PeerKeyID, err)
		}
	}
	// billing still answers with its first key until it switches.
	sendKey := func() string {
		w, err := m.c["billing"].Encrypt(New(KindResponse, Sender{Service: "billing", Instance: "b"}, "m", []byte("r"), t0), "orders")
		if err != nil {
			t.Fatal(err)
		}
		return w.Crypt.KeyID
	}
	if k := sendKey(); k != "billing-dh1" {
		t.Fatalf("billing encrypts with %s before switching", k)
	}
	if err := m.c["billing"].UseX25519("billing-dh2"); err != nil || sendKey() != "billing-dh2" {
		t.Fatalf("UseX25519: %v", err)
	}
	if err := m.c["billing"].UseX25519("nope"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("UseX25519 of an unknown key: %v", err)
	}
	m.c["billing"].RemoveX25519("billing-dh1")
	if k := sendKey(); k != "billing-dh2" {
		t.Fatalf("billing encrypts with %s after dh1 is removed", k)
	}
	again, _ := m.c["orders"].Encrypt(New(KindRequest, Sender{Service: "orders", Instance: "o"}, "m", []byte("1"), t0), "billing")
	m.ring.Remove("billing-dh2")
	if _, err := m.c["orders"].Encrypt(New(KindRequest, Sender{Service: "orders", Instance: "o"}, "m", []byte("1"), t0), "billing"); err != nil {
		t.Fatalf("falls back to the mesh key: %v", err)
	}
	if err := m.c["billing"].Decrypt(again); err != nil {
		t.Fatalf("with dh1 removed, dh2 still opens: %v", err)
	}
}

func TestCrypterErrors(t *testing.T) {
	c := NewCrypter("orders", nil)
	if _, err := c.Encrypt(sampleEnvelope(), ""); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("no key: %v", err)
	}
	if err := c.Keys().AddPayloadKey("short", []byte("short")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short key: %v", err)
	}
	if err := c.Keys().AddX25519Public("bad", "x", []byte("short")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad public key: %v", err)
	}
	p256, _ := ecdh.P256().GenerateKey(rand.Reader)
	if err := c.AddX25519("p", p256); err == nil {
		t.Fatal("a P-256 key accepted")
	}
	e := sampleEnvelope()
	e.Crypt = &Crypt{Alg: 9, KeyID: "k", Nonce: make([]byte, 24)}
	if err := c.Decrypt(e); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown algorithm: %v", err)
	}
	e.Crypt = &Crypt{Alg: CryptMesh, KeyID: "k", Nonce: make([]byte, 3)}
	if err := c.Decrypt(e); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short nonce: %v", err)
	}
}

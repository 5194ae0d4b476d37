package envelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// BenchmarkSealOpen is the per-envelope cost of each trust scheme on a
// 200-byte event (docs/performance.md, "Closed mesh"): seal (encrypt,
// then sign) on the sending side, open (bind to the nick, verify, decrypt)
// on the receiving side, with the decoder a node uses.
func BenchmarkSealOpen(b *testing.B) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ring := NewKeyring()
	ring.AddEd25519("k-orders", "orders", edPriv.Public().(ed25519.PublicKey))
	hkey := make([]byte, 32)
	ring.AddHMAC("mesh", hkey)
	if err := ring.AddPayloadKey("p1", make([]byte, PayloadKeySize)); err != nil {
		b.Fatal(err)
	}
	sender := NewCrypter("orders", ring)
	receiver := NewCrypter("billing", ring)
	_ = sender.UseMeshKey("p1")
	_ = receiver.UseMeshKey("p1")
	for svc, c := range map[string]*Crypter{"orders": sender, "billing": receiver} {
		k, _ := ecdh.X25519().GenerateKey(rand.Reader)
		_ = c.AddX25519(svc+"-x", k)
		_ = ring.AddX25519Public(svc+"-x", svc, k.PublicKey().Bytes())
	}
	hm := NewHMACSigner("mesh", hkey)
	ed := NewEd25519Signer("k-orders", edPriv)
	cases := []struct {
		name   string
		signer Signer
		peer   string // "": channel, else DM to the peer service
		crypt  bool
	}{
		{"none", nil, "", false},
		{"hmac", hm, "", false},
		{"ed25519", ed, "", false},
		{"aead", nil, "", true},
		{"hmac+aead", hm, "", true},
		{"ed25519+aead", ed, "", true},
		{"hmac+aead-dm", hm, "billing", true},
	}
	for _, c := range cases {
		seal := func(e *Envelope) []byte {
			if c.crypt {
				var err error
				if e, err = sender.Encrypt(e, c.peer); err != nil {
					b.Fatal(err)
				}
			}
			s, err := Seal(e, c.signer)
			if err != nil {
				b.Fatal(err)
			}
			return s
		}
		b.Run("seal/"+c.name, func(b *testing.B) {
			e := benchEnvelope()
			b.ReportAllocs()
			for b.Loop() {
				seal(e)
			}
		})
		b.Run("open/"+c.name, func(b *testing.B) {
			sealed := seal(benchEnvelope())
			d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring, RequireSigned: c.signer != nil}, BindSender: true,
				Crypter: receiver, MustOpen: true, RequireEncrypted: c.crypt})
			b.ReportAllocs()
			b.SetBytes(int64(len(sealed)))
			for b.Loop() {
				if _, err := d.OpenFrom("orders-a1b2c3", nil, sealed, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package envelope

import (
	"bytes"
	"testing"
)

// FuzzOpenFrom feeds arbitrary sealed bytes and nicks to a decoder that
// binds senders, verifies, opens payloads and requires encryption, as a
// node's: no panic, every error wraps a sentinel, and what it accepts came
// from its own nick and opened (clear payload, Encrypted, no ciphertext
// left).
func FuzzOpenFrom(f *testing.F) {
	m := newCryptMesh(f, "orders", "billing")
	hm := NewHMACSigner("mesh", []byte("a mesh key of some length"))
	for _, peer := range []string{"", "billing"} {
		w, err := m.c["orders"].Encrypt(sampleEnvelope(), peer)
		if err != nil {
			f.Fatal(err)
		}
		s, _ := Seal(w, hm)
		f.Add("orders-a1b2c3", "", s)
		f.Add("orders-a1b2c3", "orders", s)
		u, _ := Seal(w, nil)
		f.Add("intruder", "", u)
	}
	plain, _ := Seal(sampleEnvelope(), nil)
	f.Add("orders-a1b2c3", "", plain)
	f.Fuzz(func(t *testing.T, nick, account string, b []byte) {
		var tags map[string]string
		if account != "" {
			tags = map[string]string{TagAccount: account}
		}
		for _, d := range []*Decoder{
			NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: m.ring}, BindSender: true, Crypter: m.c["billing"], MustOpen: true, RequireEncrypted: true}),
			NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: m.ring}, BindSender: true, Accounts: &AccountBinding{SameName: true}, Crypter: m.c["billing"]}),
		} {
			env, err := d.OpenFrom(nick, tags, b, t0)
			checkSentinel(t, err)
			if err != nil {
				continue
			}
			if !NickMatches(nick, env.Sender) {
				t.Fatalf("accepted %s/%s from %q", env.Sender.Service, env.Sender.Instance, nick)
			}
			if env.PayloadEncrypted() && d.cfg.MustOpen {
				t.Fatal("accepted a payload it did not open")
			}
			if env.Encrypted() && !env.PayloadEncrypted() && bytes.Contains(b, env.Payload) && len(env.Payload) > 16 {
				t.Fatal("an opened payload was in the sealed bytes in clear")
			}
		}
	})
}

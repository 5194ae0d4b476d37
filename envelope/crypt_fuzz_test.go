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

// FuzzDecodeBody: the plaintext of an encrypted payload, as a key holder
// opens it. No input panics; the fast path and the general decoder agree
// on what both accept, and what decodes writes back to the same bytes
// when it is in the form appendBody writes.
func FuzzDecodeBody(f *testing.F) {
	for _, e := range []*Envelope{sampleEnvelope(), {Payload: nil}, {Payload: []byte("x"), Error: &Error{Code: 3, Message: "m"}}} {
		b, err := appendBody(nil, e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := decodeBody(b)
		if err != nil {
			return
		}
		var general cryptBody
		if gerr := bodyDecMode.Unmarshal(b, &general); gerr == nil && !bytes.Equal(general.Payload, body.Payload) {
			t.Fatalf("payloads differ: %x and %x", body.Payload, general.Payload)
		}
		again, err := appendBody(nil, &Envelope{Payload: body.Payload, Headers: body.Headers, Error: body.Error})
		if err != nil {
			t.Fatalf("a decoded body does not encode: %v", err)
		}
		round, err := decodeBody(again)
		if err != nil || !bytes.Equal(round.Payload, body.Payload) || round.Headers != body.Headers {
			t.Fatalf("re-encoded body: %v", err)
		}
	})
}

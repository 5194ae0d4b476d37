package envelope

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func testKeys(t testing.TB) (Signer, Signer, *Keyring) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ring := NewKeyring()
	ring.AddEd25519("orders-1", "orders", pub)
	ring.AddHMAC("mesh", []byte("a mesh key of some length"))
	return NewEd25519Signer("orders-1", priv), NewHMACSigner("mesh", []byte("a mesh key of some length")), ring
}

func TestSignVerify(t *testing.T) {
	ed, hm, ring := testKeys(t)
	v := &Verifier{Keys: ring, RequireSigned: true}
	for _, s := range []Signer{ed, hm} {
		t.Run(s.Auth().Alg.String(), func(t *testing.T) {
			e := sampleEnvelope()
			sealed, err := Seal(e, s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(sealed, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(sealed, got); err != nil {
				t.Fatalf("valid signature rejected: %v", err)
			}
			// Flip one byte of the payload: forged.
			bad := append([]byte(nil), sealed...)
			i := bytes.Index(bad, []byte("xxxx"))
			bad[i] ^= 1
			got2, err := Unmarshal(bad, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(bad, got2); !errors.Is(err, ErrForged) {
				t.Fatalf("tampered payload: want ErrForged, got %v", err)
			}
			// Change the claimed sender: forged (ed25519: wrong service).
			got.Sender.Service = "billing"
			reenc, _ := Marshal(got)
			if err := v.Verify(reenc, got); err == nil {
				t.Fatal("re-attributed envelope verified")
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	ed, _, ring := testKeys(t)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	strict := &Verifier{Keys: ring, RequireSigned: true}
	lax := &Verifier{Keys: ring}

	open := func(v *Verifier, s Signer, mutate func(*Envelope)) error {
		e := sampleEnvelope()
		if mutate != nil {
			mutate(e)
		}
		sealed, err := Seal(e, s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(sealed, 0)
		if err != nil {
			return err
		}
		return v.Verify(sealed, got)
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"unsigned when required", open(strict, nil, nil), ErrUnsigned},
		{"unsigned allowed", open(lax, nil, nil), nil},
		{"unknown key id", open(strict, NewEd25519Signer("nobody", otherPriv), nil), ErrUnknownKey},
		{"known id, wrong private key", open(strict, NewEd25519Signer("orders-1", otherPriv), nil), ErrForged},
		{"key of another service", open(strict, ed, func(e *Envelope) { e.Sender.Service = "billing" }), ErrUnknownKey},
		{"wrong mesh key", open(strict, NewHMACSigner("mesh", []byte("guess")), nil), ErrForged},
		{"signed, no keyring", open(&Verifier{}, ed, nil), ErrUnknownKey},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) || (c.want == nil && c.err != nil) {
			t.Errorf("%s: want %v, got %v", c.name, c.want, c.err)
		}
	}
}

func TestSignatureNotLastRejected(t *testing.T) {
	ed, _, ring := testKeys(t)
	e := sampleEnvelope()
	sealed, _ := Seal(e, ed)
	got, _ := Unmarshal(sealed, 0)
	// Pretend the signature were longer than the one on the wire.
	got.Signature = append(got.Signature, 0)
	if err := (&Verifier{Keys: ring}).Verify(sealed, got); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
		t.Fatalf("want rejection, got %v", err)
	}
}

func TestGuard(t *testing.T) {
	g := NewGuard(4, time.Minute)
	envs := make([]*Envelope, 6)
	for i := range envs {
		envs[i] = sampleEnvelope()
	}
	if err := g.Check(envs[0], t0); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(envs[0], t0); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("replay: want ErrDuplicate, got %v", err)
	}
	if err := g.Check(envs[1], t0.Add(2*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("old: want ErrExpired, got %v", err)
	}
	if err := g.Check(envs[1], t0.Add(-2*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("future: want ErrExpired, got %v", err)
	}
	for _, e := range envs[1:] {
		if err := g.Check(e, t0); err != nil {
			t.Fatal(err)
		}
	}
	if g.Len() != 4 {
		t.Fatalf("guard holds %d ids, capacity 4", g.Len())
	}
	// The oldest were evicted; the newest are still refused.
	if err := g.Check(envs[5], t0); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("want ErrDuplicate, got %v", err)
	}
	if !g.Add(envs[0].ID) || !g.Add(envs[1].ID) || g.Add(envs[5].ID) || g.Len() != 4 {
		t.Fatalf("after eviction: the oldest ids must be new again, the newest still known (%d held)", g.Len())
	}
}

package envelope

import (
	"crypto/ed25519"
	"reflect"
	"testing"
	"time"
)

// fastSeeds are envelopes of every shape the package writes.
func fastSeeds(t testing.TB) [][]byte {
	m := newCryptMesh(t, "orders", "billing")
	_, priv, _ := ed25519.GenerateKey(nil)
	hm := NewHMACSigner("mesh", []byte("a mesh key of some length"))
	full := sampleEnvelope()
	full.Correlation, full.Epoch, full.LeaseMillis, full.Attempt, full.Deadline = NewID(), 7, 5000, 3, t0.Add(time.Second).UnixNano()
	full.Error = &Error{Code: 500, Message: "boom"}
	full.Headers.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	neg := New(KindAck, Sender{Service: "x", Instance: "y"}, "", nil, time.Unix(-5, 0))
	var out [][]byte
	for _, e := range []*Envelope{sampleEnvelope(), full, neg, New(KindHeartbeat, Sender{Service: "orders"}, "orders", []byte{}, t0)} {
		for _, s := range []Signer{nil, hm, NewEd25519Signer("k", priv)} {
			c := *e
			b, err := Seal(&c, s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
			for _, peer := range []string{"", "billing"} {
				w, err := m.c["orders"].Encrypt(e, peer)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := Seal(w, s)
				out = append(out, b)
			}
		}
	}
	return out
}

// TestFastUnmarshal: the envelopes this package writes take the fast
// path, and it decodes them as the general decoder does.
func TestFastUnmarshal(t *testing.T) {
	for i, b := range fastSeeds(t) {
		var fast Envelope
		if !fastUnmarshal(b, &fast, nil) {
			t.Fatalf("seed %d not taken by the fast decoder", i)
		}
		checkTwin(t, b, &fast)
	}
}

// checkTwin checks that the general decoder gives what the fast one did.
func checkTwin(t *testing.T, b []byte, fast *Envelope) {
	t.Helper()
	var slow Envelope
	if err := decMode.Unmarshal(b, &slow); err != nil {
		t.Fatalf("the fast decoder took what the general one refuses (%v): %x", err, b)
	}
	if !reflect.DeepEqual(*fast, slow) {
		t.Fatalf("fast and general decoders differ on %x:\nfast    %+v\ngeneral %+v", b, *fast, slow)
	}
}

// FuzzFastUnmarshal: whatever the fast decoder takes, the general decoder
// takes too and decodes to the same envelope (the naive twin).
func FuzzFastUnmarshal(f *testing.F) {
	for _, b := range fastSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast Envelope
		if fastUnmarshal(b, &fast, nil) {
			checkTwin(t, b, &fast)
		}
		env, err := Unmarshal(b, 0)
		checkSentinel(t, err)
		if err == nil {
			checkStable(t, env)
		}
	})
}

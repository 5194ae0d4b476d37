package envelope

import (
	"errors"
	"fmt"
	"testing"
)

// §3.9: a batch line carries several envelopes, each verified on its own.
func TestBatchLine(t *testing.T) {
	_, hm, ring := testKeys(t)
	var envs []*Envelope
	var sealed [][]byte
	var sizes []int
	for i := range 10 {
		e := sampleEnvelope()
		e.Payload = []byte(fmt.Sprintf("event-%d", i))
		signer := hm
		if i == 4 {
			signer = NewHMACSigner("mesh", []byte("wrong key")) // forged
		}
		s, err := Seal(e, signer)
		if err != nil {
			t.Fatal(err)
		}
		envs, sealed, sizes = append(envs, e), append(sealed, s), append(sizes, len(s))
	}
	lim := Limits{BodyBytes: 400}
	if !BatchFits(sizes, lim) {
		t.Fatal("10 small envelopes should fit one line")
	}
	l, err := EncodeBatchLine(envs, sealed, lim)
	if err != nil {
		t.Fatal(err)
	}
	if want := "mesh event orders.created " + envs[0].ID.Short() + " +9 more"; len(l.Body) < len(want) || l.Body[:len(want)] != want {
		t.Errorf("summary %q", l.Body)
	}
	d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring, RequireSigned: true}})
	got, mesh, err := d.Decode("orders-a1", l.Tags, l.Body, t0)
	if !mesh || len(got) != 9 {
		t.Fatalf("mesh=%v, %d envelopes, want 9", mesh, len(got))
	}
	if errs := Errors(err); len(errs) != 1 || !errors.Is(errs[0], ErrForged) {
		t.Fatalf("want one forged error, got %v", err)
	}
	for i, e := range got {
		want := i
		if i >= 4 {
			want++
		}
		if string(e.Payload) != fmt.Sprintf("event-%d", want) {
			t.Fatalf("envelope %d is %q", i, e.Payload)
		}
	}
	// Too many to fit.
	big := make([]int, 40)
	for i := range big {
		big[i] = 270
	}
	if BatchFits(big, lim) {
		t.Error("40 envelopes of 270 bytes cannot fit a 4 KB tag")
	}
}

func TestSplitBatchRejects(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":            {},
		"not a container":  {0x01},
		"empty batch":      {0x80},
		"element not bstr": {0x81, 0x01},
		"short element":    {0x81, 0x45, 1, 2},
		"trailing":         {0x81, 0x41, 1, 0xff},
		"indefinite":       {0x9f, 0x41, 1, 0xff},
	} {
		if _, err := SplitBatch(data); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: %v wraps no sentinel", name, err)
		}
	}
}

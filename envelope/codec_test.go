package envelope

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func sampleEnvelope() *Envelope {
	e := New(KindEvent, Sender{Service: "orders", Instance: "a1b2c3", Incarnation: 7}, "orders.created", bytes.Repeat([]byte("x"), 200), t0)
	e.Headers.ContentType = "application/json"
	return e
}

func TestRoundTrip(t *testing.T) {
	e := sampleEnvelope()
	e.Correlation = NewID()
	e.Epoch, e.LeaseMillis, e.Attempt, e.Deadline = 3, 5000, 2, t0.Add(time.Second).UnixNano()
	e.Error = &Error{Code: 404, Message: "no such order"}
	e.Headers.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	enc, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(enc, 0)
	if err != nil {
		t.Fatal(err)
	}
	enc2, _ := Marshal(got)
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("re-encoding differs:\n%x\n%x", enc, enc2)
	}
	if got.ID != e.ID || got.Correlation != e.Correlation || got.Error.Message != "no such order" || got.Sender != e.Sender || got.Headers != e.Headers {
		t.Fatalf("fields lost: %+v", got)
	}
}

func TestDeterministic(t *testing.T) {
	e := sampleEnvelope()
	a, _ := Marshal(e)
	for range 10 {
		b, _ := Marshal(e)
		if !bytes.Equal(a, b) {
			t.Fatal("encoding not deterministic")
		}
	}
}

// rawMap encodes a map of int keys, for crafting hostile or future envelopes.
func rawMap(t *testing.T, m map[int]any) []byte {
	t.Helper()
	b, err := cbor.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func validMap() map[int]any {
	id := NewID()
	return map[int]any{1: 1, 2: 1, 3: id[:], 5: []any{"svc", "i1", 1}}
}

func TestUnknownKeysIgnored(t *testing.T) {
	m := validMap()
	m[40] = "from the future"
	m[41] = map[int]any{1: 2}
	e, err := Unmarshal(rawMap(t, m), 0)
	if err != nil {
		t.Fatalf("unknown keys must be ignored: %v", err)
	}
	if e.Sender.Service != "svc" {
		t.Fatalf("got %+v", e)
	}
}

func TestNewerVersionRefused(t *testing.T) {
	m := validMap()
	m[1] = MaxVersion + 1
	_, err := Unmarshal(rawMap(t, m), 0)
	var ve *VersionError
	if !errors.As(err, &ve) || !errors.Is(err, ErrVersion) || ve.Got != MaxVersion+1 {
		t.Fatalf("want VersionError, got %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := rawMap(t, validMap())
	deep := any("x")
	for range 10 {
		deep = []any{deep}
	}
	noSender := validMap()
	delete(noSender, 5)
	wide := validMap()
	for i := 100; i < 200; i++ {
		wide[i] = i
	}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"truncated", good[:len(good)-3], ErrTruncated},
		{"not a map", []byte{0x01}, ErrMalformed},
		{"trailing bytes", append(append([]byte{}, good...), 0x01), ErrMalformed},
		{"duplicate key", []byte{0xa2, 0x01, 0x01, 0x01, 0x01}, ErrMalformed},
		{"too deep", rawMap(t, map[int]any{1: 1, 40: deep}), ErrMalformed},
		{"too many pairs", rawMap(t, wide), ErrMalformed},
		{"no sender", rawMap(t, noSender), ErrMalformed},
		{"indefinite length", []byte{0xbf, 0x01, 0x01, 0xff}, ErrMalformed},
		{"tag", []byte{0xc1, 0x01}, ErrMalformed},
		{"too large", make([]byte, DefaultMaxEnvelope+1), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Unmarshal(c.data, 0)
			if !errors.Is(err, c.want) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
		})
	}
}

func TestKindNames(t *testing.T) {
	for k := KindEvent; k <= KindDeadLetter; k++ {
		got, ok := ParseKind(k.String())
		if !ok || got != k {
			t.Errorf("kind %d: %q does not parse back", k, k.String())
		}
	}
	if Kind(200).String() != "k200" {
		t.Errorf("unknown kind shows as %q", Kind(200).String())
	}
}

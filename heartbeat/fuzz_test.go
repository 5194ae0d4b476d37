package heartbeat

import (
	"bytes"
	"math"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/quick"
)

// sampleBeats are the beats the seed corpus under
// testdata/fuzz/FuzzDecodeBeat was made from (their encodings, plus a few
// hand-made malformed payloads).
func sampleBeats() []*Beat {
	return []*Beat{
		{Service: "s", Instance: "i", IntervalMillis: 1},
		{Service: "web", Instance: "web-7f9c", Incarnation: 1732341234567, Seq: 42, IntervalMillis: 1000},
		{
			Service: "billing", Instance: "b1", Incarnation: 3, Seq: 1, IntervalMillis: 250,
			Subs:         []Sub{{Topic: "orders.created"}, {Topic: "orders.paid", Group: "billing"}},
			Load:         0.375,
			StateVersion: 9,
			Depends:      []string{"users", "auth"},
		},
		{Service: "ünïcode", Instance: "ℹ", Incarnation: math.MaxUint64, Seq: math.MaxUint64, IntervalMillis: math.MaxUint32, Load: math.MaxFloat32},
	}
}

// sameBeat compares decoded beats: nil and empty slices alike, and floats
// by value (NaN equal to NaN).
func sameBeat(a, b *Beat) bool {
	fa, fb := a.Load, b.Load
	if !(fa == fb || fa != fa && fb != fb) {
		return false
	}
	x, y := *a, *b
	x.Load, y.Load = 0, 0
	if len(x.Subs) == 0 && len(y.Subs) == 0 {
		x.Subs, y.Subs = nil, nil
	}
	if len(x.Depends) == 0 && len(y.Depends) == 0 {
		x.Depends, y.Depends = nil, nil
	}
	if len(x.Methods) == 0 && len(y.Methods) == 0 {
		x.Methods, y.Methods = nil, nil
	}
	if len(x.Kicked) == 0 && len(y.Kicked) == 0 {
		x.Kicked, y.Kicked = nil, nil
	}
	if len(x.Domains) == 0 && len(y.Domains) == 0 {
		x.Domains, y.Domains = nil, nil
	}
	if len(x.DomainDepends) == 0 && len(y.DomainDepends) == 0 {
		x.DomainDepends, y.DomainDepends = nil, nil
	}
	return reflect.DeepEqual(x, y)
}

// FuzzDecodeBeat: Decode never panics; what it accepts has the required
// fields, re-encodes, decodes to the same beat, and encodes to the same
// bytes again (the encoding is deterministic).
func FuzzDecodeBeat(f *testing.F) {
	for _, b := range sampleBeats() {
		data, err := Encode(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err != nil {
			if b != nil {
				t.Fatalf("error %v with a beat %+v", err, b)
			}
			if !strings.HasPrefix(err.Error(), "heartbeat: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		if b.Service == "" || b.Instance == "" || b.IntervalMillis == 0 {
			t.Fatalf("accepted a beat without service, instance or interval: %+v", b)
		}
		enc, err := Encode(b)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", b, err)
		}
		b2, err := Decode(enc)
		if err != nil {
			t.Fatalf("%+v re-encoded as %x does not decode: %v", b, enc, err)
		}
		if !sameBeat(b, b2) {
			t.Fatalf("round trip changed the beat:\n%+v\n%+v", b, b2)
		}
		enc2, err := Encode(b2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %x, then %x (%v)", enc, enc2, err)
		}
	})
}

func TestDecodeBeat(t *testing.T) {
	full := sampleBeats()[2]
	data, err := Encode(full)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil || !reflect.DeepEqual(got, full) {
		t.Fatalf("Decode(Encode(b)) = %+v, %v; want %+v", got, err, full)
	}
	cases := []struct {
		name string
		hex  []byte
		ok   bool
	}{
		// {1: "s", 2: "i", 5: 1}
		{"minimal", []byte{0xa3, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05, 0x01}, true},
		// Unknown keys are ignored: {1: "s", 2: "i", 5: 1, 99: 0}
		{"an unknown key", []byte{0xa4, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05, 0x01, 0x18, 0x63, 0x00}, true},
		{"no interval", []byte{0xa2, 0x01, 0x61, 's', 0x02, 0x61, 'i'}, false},
		{"no service", []byte{0xa2, 0x02, 0x61, 'i', 0x05, 0x01}, false},
		{"interval 0", []byte{0xa3, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05, 0x00}, false},
		{"a duplicate key", []byte{0xa4, 0x01, 0x61, 's', 0x01, 0x61, 't', 0x02, 0x61, 'i', 0x05, 0x01}, false},
		{"truncated", []byte{0xa3, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05}, false},
		{"trailing bytes", []byte{0xa3, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05, 0x01, 0x00}, false},
		{"an indefinite-length map", []byte{0xbf, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05, 0x01, 0xff}, false},
		{"a tag", []byte{0xc0, 0xa3, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05, 0x01}, false},
		{"an interval above 32 bits", []byte{0xa3, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05, 0x1b, 0, 0, 0, 1, 0, 0, 0, 0}, false},
		{"a negative incarnation", []byte{0xa4, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x03, 0x20, 0x05, 0x01}, false},
		{"a sub of the wrong shape", []byte{0xa4, 0x01, 0x61, 's', 0x02, 0x61, 'i', 0x05, 0x01, 0x06, 0x81, 0x81, 0x61, 't'}, false},
		{"not a map", []byte{0x83, 0x01, 0x02, 0x03}, false},
		{"empty", nil, false},
		{"null", []byte{0xf6}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Decode(c.hex)
			if (err == nil) != c.ok {
				t.Fatalf("Decode(%x) = %+v, %v; want ok %v", c.hex, b, err, c.ok)
			}
		})
	}
}

// A beat of more subscriptions than the decoder allows is refused, not
// truncated.
func TestDecodeBeatLimits(t *testing.T) {
	b := &Beat{Service: "s", Instance: "i", IntervalMillis: 1}
	for range 1025 {
		b.Depends = append(b.Depends, "d")
	}
	data, err := Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); err == nil {
		t.Error("a beat of 1025 dependencies decoded")
	}
	b.Depends = b.Depends[:1024]
	data, _ = Encode(b)
	if got, err := Decode(data); err != nil || len(got.Depends) != 1024 {
		t.Errorf("1024 dependencies: %v", err)
	}
}

// beatGen makes random beats for testing/quick.
type beatGen struct{ *Beat }

func (beatGen) Generate(r *rand.Rand, size int) reflect.Value {
	str := func() string {
		n := 1 + r.Intn(12)
		b := make([]rune, n)
		for i := range b {
			b[i] = rune(32 + r.Intn(0x3000))
		}
		return string(b)
	}
	b := &Beat{Service: str(), Instance: str(), Incarnation: r.Uint64(), Seq: r.Uint64() >> r.Intn(64), IntervalMillis: 1 + uint32(r.Int63n(math.MaxUint32))}
	for range r.Intn(4) {
		s := Sub{Topic: str()}
		if r.Intn(2) == 0 {
			s.Group = str()
		}
		b.Subs = append(b.Subs, s)
	}
	for range r.Intn(4) {
		b.Depends = append(b.Depends, str())
	}
	for range r.Intn(3) {
		b.Methods = append(b.Methods, str())
	}
	for range r.Intn(2) {
		b.Kicked = append(b.Kicked, Sub{Topic: str(), Group: str()})
	}
	switch r.Intn(4) {
	case 0:
		b.Load = r.Float32()
	case 1:
		b.Load = float32(math.Abs(r.NormFloat64() * 1e6))
	}
	b.StateVersion = r.Uint64() >> r.Intn(64)
	return reflect.ValueOf(beatGen{b})
}

// Every valid beat survives Encode then Decode unchanged.
func TestBeatRoundTrip(t *testing.T) {
	f := func(g beatGen) bool {
		data, err := Encode(g.Beat)
		if err != nil {
			t.Logf("Encode(%+v): %v", g.Beat, err)
			return false
		}
		got, err := Decode(data)
		if err != nil || !sameBeat(got, g.Beat) {
			t.Logf("Decode(Encode(%+v)) = %+v, %v", g.Beat, got, err)
			return false
		}
		return slices.Equal(got.Depends, g.Depends)
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}

// A load that is not a finite, non-negative number would win every
// least-loaded pick (NaN compares false): such beats are refused.
func TestDecodeRejectsBadLoad(t *testing.T) {
	for _, load := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), -1} {
		b := &Beat{Service: "s", Instance: "i", IntervalMillis: 1000, Load: load}
		enc, err := Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(enc); err == nil {
			t.Errorf("load %v accepted", load)
		}
	}
}

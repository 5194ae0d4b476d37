package claims

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

func wireItems(n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Event: testID(uint64(i + 1)), Epoch: uint64(i + 1), Attempt: uint32(i % 6)}
	}
	return items
}

func TestItemsRoundTrip(t *testing.T) {
	cases := [][]Item{
		wireItems(1),
		wireItems(7),
		wireItems(MaxItems),
		{{Event: testID(1), Epoch: math.MaxUint64, Attempt: math.MaxUint32}},
		{{Event: envelope.ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, Epoch: 1}},
	}
	for _, items := range cases {
		b, err := EncodeItems(items)
		if err != nil {
			t.Fatalf("%d items: %v", len(items), err)
		}
		got, err := DecodeItems(b)
		if err != nil {
			t.Fatalf("%d items: decode: %v", len(items), err)
		}
		if !slices.Equal(got, items) {
			t.Fatalf("%d items: round trip\n got %v\nwant %v", len(items), got, items)
		}
		// Deterministic: the same items, the same bytes.
		b2, _ := EncodeItems(got)
		if !bytes.Equal(b, b2) {
			t.Fatalf("%d items: re-encoding differs", len(items))
		}
	}
}

// EncodeItems writes by hand what the deterministic CBOR encoder writes.
func TestEncodeItemsAsCBOR(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		items := make([]Item, 1+rng.IntN(MaxItems))
		for i := range items {
			for j := range items[i].Event {
				items[i].Event[j] = byte(rng.IntN(256))
			}
			// Every head length: 0-23, 1, 2, 4 and 8 bytes.
			items[i].Epoch = rng.Uint64() >> (rng.IntN(64))
			items[i].Attempt = uint32(rng.Uint64() >> (32 + rng.IntN(32)))
		}
		got, err := EncodeItems(items)
		if err != nil {
			t.Fatal(err)
		}
		want, err := encMode.Marshal(items)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d items:\n got %x\nwant %x", len(items), got, want)
		}
	}
}

func TestItemsSize(t *testing.T) {
	// wire.go sizes MaxItems at about 26 base64 bytes an item: so it is
	// for the usual small epochs and attempts (one CBOR byte each).
	items := make([]Item, MaxItems)
	for i := range items {
		items[i] = Item{Event: testID(uint64(i + 1)), Epoch: uint64(1 + i%5), Attempt: uint32(1 + i%5)}
	}
	b, err := EncodeItems(items)
	if err != nil {
		t.Fatal(err)
	}
	if per := float64(len(b)) * 4 / 3 / MaxItems; per > 27 {
		t.Fatalf("%.1f base64 bytes an item", per)
	}
}

func TestEncodeItemsBounds(t *testing.T) {
	for _, n := range []int{0, MaxItems + 1} {
		if b, err := EncodeItems(wireItems(n)); err == nil {
			t.Fatalf("%d items encoded: %x", n, b)
		}
	}
	if _, err := EncodeItems(nil); err == nil {
		t.Fatal("nil items encoded")
	}
}

func TestDecodeItemsMalformed(t *testing.T) {
	mustMarshal := func(v any) []byte {
		t.Helper()
		b, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"empty input":     nil,
		"garbage":         []byte("hello, world"),
		"truncated":       mustMarshal(wireItems(3))[:20],
		"no items":        mustMarshal([]Item{}),
		"too many items":  mustMarshal(wireItems(MaxItems + 1)),
		"zero event":      mustMarshal([]Item{{Event: envelope.ID{}, Epoch: 1}}),
		"zero epoch":      mustMarshal([]Item{{Event: testID(1), Epoch: 0, Attempt: 1}}),
		"one bad of many": mustMarshal(append(wireItems(4), Item{Event: testID(9)})),
		"a map":           mustMarshal(map[int]int{1: 2}),
		"not an array":    mustMarshal("claims"),
		"item of 2":       mustMarshal([][]any{{testID(1), 1}}),
		"item of 4":       mustMarshal([][]any{{testID(1), 1, 1, 1}}),
		"epoch negative":  mustMarshal([][]any{{testID(1), -1, 1}}),
		"attempt too big": mustMarshal([][]any{{testID(1), 1, uint64(math.MaxUint32) + 1}}),
		"trailing bytes":  append(mustMarshal(wireItems(1)), 0x00),
		"indefinite":      {0x9f, 0x83, 0x50, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x01, 0x01, 0xff},
		"tagged":          append([]byte{0xc1}, mustMarshal(wireItems(1))...),
		"short id":        mustMarshal([][]any{{[]byte{1}, 1, 1}}),
		"long id":         mustMarshal([][]any{{make([]byte, 17), 1, 1}}),
		"id of integers":  mustMarshal([][]any{{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1, 1}}),
	}
	for name, b := range cases {
		items, err := DecodeItems(b)
		if err == nil {
			t.Errorf("%s: decoded %v", name, items)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v does not wrap ErrMalformed", name, err)
		}
	}
}

func sampleDead() *DeadLetter {
	ev := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "i1", Incarnation: 3},
		"orders.created", []byte(`{"id":42}`), time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	ev.Headers.ContentType = "application/json"
	ev.Auth = &envelope.Auth{Alg: 1, KeyID: "k1"}
	ev.Signature = bytes.Repeat([]byte{7}, 64)
	return &DeadLetter{Topic: "orders.created", Group: "billing", Event: ev, Attempts: 5,
		Reasons: []string{"svc/a: timeout", "svc/b: boom", "svc/a suspected", "svc/c: 500", "svc/b: boom"}}
}

func TestDeadLetterRoundTrip(t *testing.T) {
	for _, d := range []*DeadLetter{
		sampleDead(),
		{Event: &envelope.Envelope{Version: 1, Kind: envelope.KindEvent, ID: testID(1)}},
	} {
		b, err := EncodeDeadLetter(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeDeadLetter(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, d)
		}
		b2, _ := EncodeDeadLetter(got)
		if !bytes.Equal(b, b2) {
			t.Fatal("re-encoding differs")
		}
	}
}

func TestDecodeDeadLetterMalformed(t *testing.T) {
	noEvent, _ := EncodeDeadLetter(&DeadLetter{Topic: "t", Group: "g", Attempts: 5})
	good, _ := EncodeDeadLetter(sampleDead())
	dup := []byte{0xa2, 0x01, 0x61, 't', 0x01, 0x61, 'u'} // {1: "t", 1: "u"}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"garbage":       []byte("dead"),
		"no event":      noEvent,
		"truncated":     good[:len(good)/2],
		"duplicate key": dup,
		"an array":      {0x80},
	} {
		d, err := DecodeDeadLetter(b)
		if err == nil {
			t.Errorf("%s: decoded %+v", name, d)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v does not wrap ErrMalformed", name, err)
		}
	}
}

func TestWireHelpers(t *testing.T) {
	if got := DeadTopic("orders.created"); got != "orders.created._dead" {
		t.Fatalf("DeadTopic = %q", got)
	}
	id := testID(1)
	if Weight(id, idA) != heartbeat.Weight(id.String(), idA) {
		t.Fatal("Weight is not the rendezvous weight of the id's hex")
	}
	// Tokens grow with (epoch, weight): a higher epoch beats any weight.
	if !(Token(2, 0) > Token(1, math.MaxUint64)) {
		t.Fatal("a higher epoch's token is not higher")
	}
	if !(Token(1, 2<<32) > Token(1, 1<<32)) {
		t.Fatal("a higher weight's token is not higher")
	}
	// The order of claims and of their tokens agree.
	for n := uint64(1); n <= 50; n++ {
		id := testID(n)
		for _, e := range [][2]uint64{{1, 1}, {1, 2}, {2, 1}} {
			a := &claim{who: who(idA), epoch: e[0], weight: Weight(id, idA)}
			b := &claim{who: who(idB), epoch: e[1], weight: Weight(id, idB)}
			ta, tb := Token(a.epoch, a.weight), Token(b.epoch, b.weight)
			if a.less(b) && ta > tb || b.less(a) && tb > ta {
				t.Fatalf("%s e%v: claim order and token order disagree", id.Short(), e)
			}
		}
	}
}

func FuzzDecodeItems(f *testing.F) {
	for _, n := range []int{1, 2, 5, MaxItems} {
		b, _ := EncodeItems(wireItems(n))
		f.Add(b)
	}
	b, _ := encMode.Marshal([]Item{})
	f.Add(b)
	b, _ = encMode.Marshal(wireItems(MaxItems + 1))
	f.Add(b)
	b, _ = encMode.Marshal([]Item{{Event: testID(1)}})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x81, 0x83, 0x41, 0x01, 0x01, 0x01})
	f.Add([]byte{0x81, 0x83, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := DecodeItems(b)
		// The fast path must agree with the general decoder.
		if fast, ok := decodeItemsFast(b); ok {
			slow, serr := decodeItemsSlow(b)
			if serr != nil || !slices.Equal(fast, slow) {
				t.Fatalf("fast path decoded %v, general decoder %v, %v", fast, slow, serr)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(items) == 0 || len(items) > MaxItems {
			t.Fatalf("%d items decoded", len(items))
		}
		for _, it := range items {
			if it.Event.IsZero() || it.Epoch == 0 {
				t.Fatalf("invalid item decoded: %+v", it)
			}
		}
		enc, err := EncodeItems(items)
		if err != nil {
			t.Fatalf("decoded items do not encode: %v", err)
		}
		again, err := DecodeItems(enc)
		if err != nil {
			t.Fatalf("re-encoded items do not decode: %v", err)
		}
		if !slices.Equal(again, items) {
			t.Fatalf("round trip\n got %v\nwant %v", again, items)
		}
		enc2, _ := EncodeItems(again)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
	})
}

func FuzzDecodeDeadLetter(f *testing.F) {
	b, _ := EncodeDeadLetter(sampleDead())
	f.Add(b)
	b, _ = EncodeDeadLetter(&DeadLetter{Event: &envelope.Envelope{Version: 1, Kind: envelope.KindEvent, ID: testID(1)}})
	f.Add(b)
	b, _ = EncodeDeadLetter(&DeadLetter{Topic: "t"})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x03, 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDeadLetter(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if d.Event == nil {
			t.Fatal("decoded a dead letter without its event")
		}
		// Round trip: what decodes encodes, decodes again, and from then on
		// is a fixed point (nil and empty slices may differ once).
		enc, err := EncodeDeadLetter(d)
		if err != nil {
			t.Fatalf("decoded dead letter does not encode: %v", err)
		}
		again, err := DecodeDeadLetter(enc)
		if err != nil {
			t.Fatalf("re-encoded dead letter does not decode: %v", err)
		}
		if again.Topic != d.Topic || again.Group != d.Group || again.Attempts != d.Attempts ||
			!slices.Equal(again.Reasons, d.Reasons) || again.Event.ID != d.Event.ID ||
			again.Event.Kind != d.Event.Kind || !bytes.Equal(again.Event.Payload, d.Event.Payload) ||
			!bytes.Equal(again.Event.Signature, d.Event.Signature) {
			t.Fatalf("round trip\n got %+v\nwant %+v", again, d)
		}
		enc2, err := EncodeDeadLetter(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable (%v):\n%x\n%x", err, enc, enc2)
		}
	})
}

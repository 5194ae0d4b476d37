package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	recs := []Record{
		{Seq: 1, Channel: "#ns.orders", Time: time.Date(2026, 11, 23, 8, 19, 43, 921e6, time.UTC), MsgID: "abc", Nick: "orders-1",
			Tags: map[string]string{"time": "2026-11-23T08:19:43.921Z", "msgid": "abc", "+draft/x": ""}, Body: "~m1 AAAA"},
		{Seq: 1 << 40, Channel: "#x", Time: time.Time{}},
		{Seq: 7, Channel: "#y", Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), Body: strings.Repeat("z", 60000)},
		{Seq: 8, Channel: "#y", Time: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), Tags: map[string]string{}},
	}
	for _, r := range recs {
		b, err := EncodeRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Tags) == 0 {
			r.Tags = nil // an empty map decodes as nil
		}
		if !recordsEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
		b2, _ := EncodeRecord(nil, &got)
		if !bytes.Equal(b, b2) {
			t.Fatal("encoding is not canonical")
		}
		// Every single-byte change and every truncation is detected.
		step := 1 + len(b)/500 // every byte of small records, a sample of large ones
		for i := 0; i < len(b); i += step {
			c := bytes.Clone(b)
			c[i] ^= 0x20
			if _, err := DecodeRecord(c); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flipped byte %d: err %v", i, err)
			}
			if i < 300 || i > len(b)-300 {
				if _, err := DecodeRecord(b[:i]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated to %d: err %v", i, err)
				}
			}
		}
	}
}

func TestRecordBounds(t *testing.T) {
	tags := map[string]string{}
	for i := range MaxTags + 1 {
		tags[string(rune('a'+i%26))+strings.Repeat("x", i)] = "v"
	}
	bad := []Record{
		{Seq: 1},
		{Seq: 1, Channel: "#a", Tags: tags},
		{Seq: 1, Channel: "#a", Body: strings.Repeat("b", MaxRecordSize)},
		{Seq: 1, Channel: "#a", MsgID: strings.Repeat("m", MaxMsgIDLen+1)},
		{Seq: 1, Channel: strings.Repeat("c", MaxChannelLen+1)},
		{Seq: 1, Channel: "#a", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for i, r := range bad {
		if _, err := EncodeRecord(nil, &r); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("record %d: err %v, want ErrInvalidRecord", i, err)
		}
	}
	if _, err := DecodeRecord(make([]byte, MaxRecordSize+1)); !errors.Is(err, ErrCorrupt) {
		t.Error("oversized input accepted")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	seeds := []Record{
		{Seq: 1, Channel: "#a", Time: time.Unix(1, 2), MsgID: "m", Nick: "n", Tags: map[string]string{"k": "v", "time": "t"}, Body: "hello"},
		{Seq: 99, Channel: "#ns.orders", Body: "~m1 " + strings.Repeat("A", 300)},
		{Seq: 1 << 62, Channel: "#z"},
	}
	for _, r := range seeds {
		b, err := EncodeRecord(nil, &r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[1:])
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		b2, err := EncodeRecord(nil, &r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("decode/encode not canonical:\n%x\n%x", b, b2)
		}
	})
}

func recordsEqual(a, b Record) bool {
	if a.Seq != b.Seq || a.Channel != b.Channel || !a.Time.Equal(b.Time) || a.MsgID != b.MsgID ||
		a.Nick != b.Nick || a.Body != b.Body || len(a.Tags) != len(b.Tags) {
		return false
	}
	for k, v := range a.Tags {
		if w, ok := b.Tags[k]; !ok || w != v {
			return false
		}
	}
	return true
}

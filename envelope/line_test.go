package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCarriersDecodeToSameEnvelope(t *testing.T) {
	_, hm, ring := testKeys(t)
	e := sampleEnvelope()
	sealed, err := Seal(e, hm)
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{TagBytes: DefaultTagBytes, BodyBytes: 400}
	var got [2]*Envelope
	for i, c := range []Carrier{CarrierTag, CarrierBody} {
		lines, err := EncodeLines(e, sealed, c, lim)
		if err != nil {
			t.Fatal(err)
		}
		d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring, RequireSigned: true}})
		for _, l := range lines {
			envs, mesh, err := d.Decode("orders-a1!u@h", l.Tags, l.Body, t0)
			if !mesh || err != nil {
				t.Fatalf("%s: mesh=%v err=%v", c, mesh, err)
			}
			if len(envs) == 1 {
				got[i] = envs[0]
			}
		}
		if got[i] == nil {
			t.Fatalf("%s: no envelope after %d lines", c, len(lines))
		}
	}
	a, _ := Marshal(got[0])
	b, _ := Marshal(got[1])
	if !bytes.Equal(a, b) || got[0].ID != e.ID {
		t.Fatal("carriers decode to different envelopes")
	}
}

func TestLinesAreLegible(t *testing.T) {
	e := sampleEnvelope()
	sealed, _ := Seal(e, nil)
	want := "event orders.created " + e.ID.Short()
	for _, c := range []Carrier{CarrierTag, CarrierBody} {
		lines, err := EncodeLines(e, sealed, c, Limits{BodyBytes: 450})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if !strings.Contains(l.Body, want) {
				t.Errorf("%s line does not show %q: %q", c, want, l.Body)
			}
		}
	}
}

func TestHumanLinesAreNotMesh(t *testing.T) {
	for _, body := range []string{
		"", "hello there", "~mike says hi", "~m", "~mX1 a b c d", "mesh event orders 12345678 (3 B)",
		"ACTION waves",
	} {
		_, mesh, err := ParseLine(map[string]string{"+typing": "active"}, body)
		if mesh || err != nil {
			t.Errorf("%q: mesh=%v err=%v, want plain not-mesh", body, mesh, err)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	cases := []struct {
		tags map[string]string
		body string
		want error
	}{
		{nil, "~m3 event t 12345678 AAAA", ErrVersion},
		{nil, "~m1 event t", ErrTruncated},
		{nil, "~m1 event t 12345678 AA*A", ErrMalformed},
		{nil, "~m1 event t 12345678 3/2 AAAA", ErrMalformed},
		{nil, "~m1 event t 12345678 0/2 AAAA", ErrMalformed},
		{nil, "~m1 event t zzzzzzzz 1/2 AAAA", ErrMalformed},
		{map[string]string{TagData: ""}, "x", ErrTruncated},
		{map[string]string{TagData: "AA AA"}, "x", ErrMalformed},
		{map[string]string{TagData: "AAAA", TagFragment: "1234"}, "x", ErrMalformed},
		{map[string]string{TagData: "AAAA", TagFragment: "12345678:x/2"}, "x", ErrMalformed},
	}
	for _, c := range cases {
		_, mesh, err := ParseLine(c.tags, c.body)
		if !mesh || !errors.Is(err, c.want) {
			t.Errorf("%v %q: want mesh and %v, got mesh=%v %v", c.tags, c.body, c.want, mesh, err)
		}
	}
}

// TestFragmentBudgets checks that every line fits the room it was given, for
// both carriers and many sizes, and that the lines reassemble.
func TestFragmentBudgets(t *testing.T) {
	for _, size := range []int{0, 1, 100, 300, 3000, 5000, 64 << 10, 256 << 10} {
		for _, c := range []Carrier{CarrierTag, CarrierBody} {
			t.Run(fmt.Sprintf("%s/%d", c, size), func(t *testing.T) {
				e := sampleEnvelope()
				e.Payload = bytes.Repeat([]byte{0xa5}, size)
				sealed, _ := Seal(e, nil)
				lim := Limits{TagBytes: DefaultTagBytes, TagReserve: 20, BodyBytes: BodyBudget(512, "orders-a1b2c3!~orders@127.0.0.1", "#mesh.orders.created", 10)}
				lines, err := EncodeLines(e, sealed, c, lim)
				if err != nil {
					t.Fatal(err)
				}
				d := NewDecoder(DecoderConfig{})
				var got *Envelope
				for i, l := range lines {
					if len(l.Body) > lim.BodyBytes {
						t.Fatalf("line %d body %d bytes > %d", i, len(l.Body), lim.BodyBytes)
					}
					if tb := tagBytes(l.Tags); tb > lim.TagBytes-lim.TagReserve {
						t.Fatalf("line %d tags %d bytes > %d", i, tb, lim.TagBytes-lim.TagReserve)
					}
					envs, _, err := d.Decode("a", l.Tags, l.Body, t0)
					if err != nil {
						t.Fatal(err)
					}
					if len(envs) > 0 {
						if i != len(lines)-1 {
							t.Fatalf("complete after %d of %d lines", i+1, len(lines))
						}
						got = envs[0]
					}
				}
				if got == nil || !bytes.Equal(got.Payload, e.Payload) {
					t.Fatalf("payload not reassembled from %d lines", len(lines))
				}
			})
		}
	}
}

// tagBytes is the size of the client tag section "@k=v;k=v " as sent.
func tagBytes(tags map[string]string) int {
	if len(tags) == 0 {
		return 0
	}
	n := 1
	for k, v := range tags {
		n += len(k) + 1 + len(v) + 1
	}
	return n
}

func TestBodyBudget(t *testing.T) {
	prefix := "orders-a1!~orders@127.0.0.1"
	target := "#mesh.orders"
	got := BodyBudget(512, prefix, target, 0)
	line := ":" + prefix + " PRIVMSG " + target + " :" + strings.Repeat("x", got) + "\r\n"
	if len(line) != 512 {
		t.Fatalf("budget %d makes a %d-byte line", got, len(line))
	}
	if BodyBudget(0, prefix, target, 0) != got {
		t.Fatal("LINELEN 0 must mean 512")
	}
}

func TestTooSmallBudget(t *testing.T) {
	e := sampleEnvelope()
	sealed, _ := Seal(e, nil)
	if _, err := EncodeLines(e, sealed, CarrierBody, Limits{BodyBytes: 40}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
}

func TestReassemblerLimits(t *testing.T) {
	frag := func(short string, i, n int) Frame {
		return Frame{Carrier: CarrierBody, Short: short, Index: i, Count: n, Data: "AAAA"}
	}
	t.Run("age", func(t *testing.T) {
		r := NewReassembler(ReassemblyLimits{MaxAge: time.Second})
		r.Add("a", frag("00000001", 1, 2), t0)
		if out, err := r.Add("a", frag("00000001", 2, 2), t0.Add(2*time.Second)); out != nil || err != nil {
			t.Fatalf("late fragment completed an expired envelope: %v %v", out, err)
		}
		if s := r.Stats(); s.Evicted[EvictAge] != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("per sender", func(t *testing.T) {
		r := NewReassembler(ReassemblyLimits{MaxPerSender: 2})
		for i := range 5 {
			r.Add("a", frag(fmt.Sprintf("%08x", i), 1, 2), t0)
		}
		r.Add("b", frag("00000001", 1, 2), t0)
		if s := r.Stats(); s.Pending != 3 || s.Evicted[EvictSender] != 3 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("memory", func(t *testing.T) {
		r := NewReassembler(ReassemblyLimits{MaxPendingBytes: 1000})
		for i := range 100 {
			r.Add(fmt.Sprint(i), frag("00000001", 1, 2), t0)
		}
		if s := r.Stats(); s.Bytes > 1000 || s.Evicted[EvictMemory] == 0 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("too many fragments", func(t *testing.T) {
		r := NewReassembler(ReassemblyLimits{MaxFragments: 10})
		if _, err := r.Add("a", frag("00000001", 1, 11), t0); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("want ErrTooLarge, got %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		r := NewReassembler(ReassemblyLimits{MaxEnvelope: 10})
		f := frag("00000001", 1, 3)
		f.Data = strings.Repeat("A", 12)
		r.Add("a", f, t0)
		f.Index = 2
		if _, err := r.Add("a", f, t0); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("want ErrTooLarge, got %v", err)
		}
		if s := r.Stats(); s.Pending != 0 || s.Evicted[EvictTooLarge] != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		r := NewReassembler(ReassemblyLimits{})
		r.Add("a", frag("00000001", 1, 3), t0)
		if _, err := r.Add("a", frag("00000001", 2, 4), t0); !errors.Is(err, ErrFragment) {
			t.Fatalf("want ErrFragment, got %v", err)
		}
		r.Add("a", frag("00000002", 1, 3), t0)
		if _, err := r.Add("a", frag("00000002", 1, 3), t0); !errors.Is(err, ErrFragment) {
			t.Fatalf("duplicate fragment: want ErrFragment, got %v", err)
		}
		if s := r.Stats(); s.Pending != 0 || s.Evicted[EvictMismatch] != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("forget", func(t *testing.T) {
		r := NewReassembler(ReassemblyLimits{})
		r.Add("a", frag("00000001", 1, 3), t0)
		r.Add("b", frag("00000001", 1, 3), t0)
		r.Forget("a")
		if s := r.Stats(); s.Pending != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestDecoderCountsRejections(t *testing.T) {
	ed, _, ring := testKeys(t)
	d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring, RequireSigned: true}, Guard: NewGuard(0, 0)})
	e := sampleEnvelope()
	sealed, _ := Seal(e, ed)
	lines, _ := EncodeLines(e, sealed, CarrierTag, Limits{})
	unsignedEnv := sampleEnvelope()
	unsigned, _ := Seal(unsignedEnv, nil)
	ulines, _ := EncodeLines(unsignedEnv, unsigned, CarrierTag, Limits{})

	d.Decode("x", nil, "hello humans", t0)
	if envs, _, err := d.Decode("x", lines[0].Tags, lines[0].Body, t0); len(envs) != 1 || err != nil {
		t.Fatalf("valid line: %v", err)
	}
	if _, _, err := d.Decode("x", lines[0].Tags, lines[0].Body, t0); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("replayed line: %v", err)
	}
	if _, _, err := d.Decode("x", ulines[0].Tags, ulines[0].Body, t0); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned line: %v", err)
	}
	trunc := map[string]string{TagData: lines[0].Tags[TagData][:40]}
	if _, _, err := d.Decode("x", trunc, "x", t0); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated line: %v", err)
	}
	s, _ := d.Stats()
	if s.NotMesh != 1 || s.Accepted != 1 || s.Rejected.Duplicate != 1 || s.Rejected.Unsigned != 1 || s.Rejected.Truncated != 1 || s.Rejected.Total() != 3 {
		t.Fatalf("stats %+v", s)
	}
}

package envelope

import (
	"encoding/binary"
	"testing"
	"time"
)

// BenchmarkDecodeNode is the receive path as a node runs it: the decoder
// of a node (sender binding, replay guard: every line a new id), lines
// decoded with AppendDecode into a slice reused from line to line, one
// 200-byte event per tag-carrier line, unsigned and HMAC-signed. Each
// iteration decodes a distinct line (its id and time differ).
func BenchmarkDecodeNode(b *testing.B) {
	_, hm, ring := testKeys(b)
	for _, c := range []struct {
		name string
		s    Signer
	}{{"unsigned", nil}, {"hmac", hm}} {
		b.Run(c.name, func(b *testing.B) {
			const n = 4096
			lines := make([]Line, n)
			for i := range lines {
				e := benchEnvelope()
				binary.BigEndian.PutUint64(e.ID[8:], uint64(i))
				e.Time = t0.Add(time.Duration(i) * time.Microsecond).UnixNano()
				sealed, err := Seal(e, c.s)
				if err != nil {
					b.Fatal(err)
				}
				ls, err := EncodeLines(e, sealed, CarrierTag, Limits{})
				if err != nil || len(ls) != 1 {
					b.Fatal(len(ls), err)
				}
				lines[i] = ls[0]
			}
			// A guard one id short of the lines: each line's id is
			// forgotten by the time it comes again.
			d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring, RequireSigned: c.s != nil},
				BindSender: true, Guard: NewGuard(n-1, 0)})
			var envs []*Envelope
			i := 0
			b.ReportAllocs()
			cpuPerOp(b)
			for b.Loop() {
				l := lines[i%n]
				i++
				var err error
				envs, _, err = d.AppendDecode(envs[:0], "orders-a1b2c3", l.Tags, l.Body, t0)
				if len(envs) != 1 || err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

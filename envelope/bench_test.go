package envelope

import (
	"syscall"
	"testing"
	"time"
)

// cpuPerOp reports the process's CPU time per iteration (cpu-ns/op) from
// the call until b's loop ends: on a shared machine it moves less than
// the wall time when other processes take the cores. Call it right before
// the loop; it reports at the benchmark's cleanup.
func cpuPerOp(b *testing.B) {
	start := cpuTime()
	b.Cleanup(func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	})
}

// cpuTime is the user and system time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchEnvelope is a typical small event: 200 payload bytes, a service and
// instance name of realistic length, no headers.
func benchEnvelope() *Envelope {
	e := New(KindEvent, Sender{Service: "orders", Instance: "a1b2c3", Incarnation: 1 << 40}, "orders", make([]byte, 200), t0)
	return e
}

func BenchmarkMarshal(b *testing.B) {
	e := benchEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	enc, _ := Marshal(benchEnvelope())
	b.ReportAllocs()
	cpuPerOp(b)
	for b.Loop() {
		if _, err := Unmarshal(enc, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTrip is the envelope codec alone: encode and decode of a
// 200-byte event, the figure the design targets (< 2 µs, ≤ 8 allocs).
func BenchmarkRoundTrip(b *testing.B) {
	e := benchEnvelope()
	var size int
	b.ReportAllocs()
	for b.Loop() {
		enc, err := Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Unmarshal(enc, 0); err != nil {
			b.Fatal(err)
		}
		size = len(enc)
	}
	b.ReportMetric(float64(size)/200, "cbor/payload")
	b.ReportMetric(float64(b64.EncodedLen(size))/200, "wire/payload")
}

// BenchmarkEncodeDecode is the full path of an unsigned 200-byte event:
// seal, base64 into a tag-carrier line, parse the line, decode. It reports
// the bytes on the wire (the tag value) per payload byte.
func BenchmarkEncodeDecode(b *testing.B) {
	e := benchEnvelope()
	d := NewDecoder(DecoderConfig{})
	var wire int
	b.ReportAllocs()
	for b.Loop() {
		sealed, err := Seal(e, nil)
		if err != nil {
			b.Fatal(err)
		}
		lines, err := EncodeLines(e, sealed, CarrierTag, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		wire = len(lines[0].Tags[TagData])
		if envs, _, err := d.Decode("orders-a1", lines[0].Tags, lines[0].Body, t0); len(envs) != 1 || err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(wire)/200, "wire/payload")
}

func benchSign(b *testing.B, s Signer) {
	e := benchEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(e, s); err != nil {
			b.Fatal(err)
		}
	}
}

func benchVerify(b *testing.B, s Signer, ring *Keyring) {
	e := benchEnvelope()
	sealed, _ := Seal(e, s)
	v := &Verifier{Keys: ring, RequireSigned: true}
	b.ReportAllocs()
	for b.Loop() {
		env, err := Unmarshal(sealed, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.Verify(sealed, env); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b64.EncodedLen(len(sealed)))/200, "wire/payload")
}

func BenchmarkSealEd25519(b *testing.B) {
	ed, _, _ := testKeys(b)
	benchSign(b, ed)
}

func BenchmarkSealHMAC(b *testing.B) {
	_, hm, _ := testKeys(b)
	benchSign(b, hm)
}

func BenchmarkOpenEd25519(b *testing.B) {
	ed, _, ring := testKeys(b)
	benchVerify(b, ed, ring)
}

func BenchmarkOpenHMAC(b *testing.B) {
	_, hm, ring := testKeys(b)
	benchVerify(b, hm, ring)
}

// benchLine is a tag-carrier line holding one HMAC-signed 200-byte event,
// and the keyring that verifies it.
func benchLine(b *testing.B) (Line, *Keyring) {
	_, hm, ring := testKeys(b)
	e := benchEnvelope()
	sealed, err := Seal(e, hm)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := EncodeLines(e, sealed, CarrierTag, Limits{})
	if err != nil || len(lines) != 1 {
		b.Fatal(len(lines), err)
	}
	return lines[0], ring
}

// BenchmarkDecode is the receive path of the runtime alone: one signed
// tag-carrier line through Decoder.Decode (parse, base64, decode, verify).
func BenchmarkDecode(b *testing.B) {
	l, ring := benchLine(b)
	d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring, RequireSigned: true}})
	b.ReportAllocs()
	cpuPerOp(b)
	for b.Loop() {
		if envs, _, err := d.Decode("orders-a1", l.Tags, l.Body, t0); len(envs) != 1 || err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeLine is BenchmarkDecode through DecodeLine, the tools'
// entry point: what reporting every step costs on top of Decode.
func BenchmarkDecodeLine(b *testing.B) {
	l, ring := benchLine(b)
	d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring, RequireSigned: true}})
	b.ReportAllocs()
	for b.Loop() {
		if got := d.DecodeLine("orders-a1", l.Tags, l.Body, t0); len(got.Envelopes) != 1 || got.Envelopes[0].Err != nil {
			b.Fatal(got)
		}
	}
}

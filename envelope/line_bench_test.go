package envelope

import (
	"strings"
	"testing"
)

// BenchmarkEncodeLines is the send path's line building for a 200-byte
// JSON event on a line of a real budget (400 bytes of text): the base64
// text and the legible summary, preview included (§3.2, §3.3).
func BenchmarkEncodeLines(b *testing.B) {
	payload := []byte(`{"order":12345,"item":"coffee","qty":2,"total":"8.40","note":"` + strings.Repeat("x", 60) + `"}`)
	e := New(KindEvent, Sender{Service: "orders", Instance: "a1b2c3", Incarnation: 1 << 40}, "orders.created", payload, t0)
	e.Headers.ContentType = "application/json"
	sealed, err := Seal(e, nil)
	if err != nil {
		b.Fatal(err)
	}
	lim := Limits{TagBytes: DefaultTagBytes, BodyBytes: 400}
	// "summary" is the same line without the payload's preview (a secret
	// payload): the difference is what the preview costs.
	for _, c := range []Carrier{CarrierTag, CarrierBody} {
		for _, secret := range []bool{false, true} {
			name := c.String() + "/preview"
			if secret {
				name = c.String() + "/summary"
			}
			b.Run(name, func(b *testing.B) {
				e.Secret = secret
				b.ReportAllocs()
				for b.Loop() {
					if _, err := EncodeLines(e, sealed, c, lim); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

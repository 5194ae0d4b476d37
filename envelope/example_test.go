package envelope_test

import (
	"fmt"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Seal an event, carry it in body-carrier lines, and decode it back.
func ExampleEncodeLines() {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	e := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "a1b2c3"}, "orders.created", []byte(`{"id":42}`), now)
	signer := envelope.NewHMACSigner("k1", []byte("mesh key"))
	sealed, _ := envelope.Seal(e, signer)

	lines, _ := envelope.EncodeLines(e, sealed, envelope.CarrierBody, envelope.Limits{BodyBytes: 400})
	fmt.Println(len(lines), "line starting", lines[0].Body[:3])

	keys := envelope.NewKeyring()
	keys.AddHMAC("k1", []byte("mesh key"))
	dec := envelope.NewDecoder(envelope.DecoderConfig{Verifier: &envelope.Verifier{Keys: keys, RequireSigned: true}})
	got, mesh, err := dec.Decode("orders-a1b2c3", lines[0].Tags, lines[0].Body, now)
	fmt.Println(mesh, err, got[0].Kind, got[0].Topic, string(got[0].Payload))
	// Output:
	// 1 line starting ~m1
	// true <nil> event orders.created {"id":42}
}

// People's lines are not mesh lines, and not errors.
func ExampleParseLine() {
	_, mesh, err := envelope.ParseLine(nil, "good morning, bots")
	fmt.Println(mesh, err)
	// Output: false <nil>
}

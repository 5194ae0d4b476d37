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
	// 1 line starting ~m2
	// true <nil> event orders.created {"id":42}
}

// People's lines are not mesh lines, and not errors.
func ExampleParseLine() {
	_, mesh, err := envelope.ParseLine(nil, "good morning, bots")
	fmt.Println(mesh, err)
	// Output: false <nil>
}

// A tool shows each line as it comes: the fragments held, then the
// envelope they make with its signature state. Without a keyring and with
// AcceptUnchecked, a signed envelope is shown, unchecked.
func ExampleDecoder_DecodeLine() {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	e := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "a1b2c3"}, "orders.created", make([]byte, 300), now)
	sealed, _ := envelope.Seal(e, envelope.NewHMACSigner("k1", []byte("mesh key")))
	lines, _ := envelope.EncodeLines(e, sealed, envelope.CarrierBody, envelope.Limits{BodyBytes: 200})

	dec := envelope.NewDecoder(envelope.DecoderConfig{AcceptUnchecked: true})
	for _, l := range lines {
		got := dec.DecodeLine("orders-a1b2c3", l.Tags, l.Body, now)
		if f := got.Fragment; f != nil {
			fmt.Printf("%s carrier: fragment %d/%d held\n", got.Carrier, f.Index, f.Count)
			continue
		}
		for _, de := range got.Envelopes {
			fmt.Printf("%s from %d fragments, %d B sealed, signature %s, err %v\n", de.Envelope.Kind, got.Fragments, len(de.Sealed), de.Signature, de.Err)
		}
	}
	// Output:
	// body carrier: fragment 1/4 held
	// body carrier: fragment 2/4 held
	// body carrier: fragment 3/4 held
	// event from 4 fragments, 413 B sealed, signature unchecked, err <nil>
}

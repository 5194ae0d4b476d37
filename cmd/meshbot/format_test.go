package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// observed returns the observations a node makes of one decoded line, as
// Node.onPrivmsg makes them: one per accepted envelope, Part 0 first and
// carrying the line's errors, or one for the line when none was accepted.
func observed(base mesh.Observation, l envelope.DecodedLine) []mesh.Observation {
	_, isMesh, err := l.Result()
	ob := base
	ob.Mesh, ob.Err, ob.Carrier, ob.Fragment, ob.Fragments = isMesh, err, l.Carrier, l.Fragment, l.Fragments
	var out []mesh.Observation
	for _, e := range l.Envelopes {
		if e.Err != nil {
			continue
		}
		ob.Envelope, ob.Signature, ob.Part = e.Envelope, e.Signature, len(out)
		out = append(out, ob)
		ob.Err = nil
	}
	if len(out) == 0 {
		out = append(out, ob)
	}
	return out
}

// tail shows what the node's decoder learned: the fragments of an
// envelope, the envelope with the count of its lines, the carrier and the
// signature state; it decodes nothing itself.
func TestObservationView(t *testing.T) {
	keys := envelope.NewKeyring()
	keys.AddHMAC("mesh-1", testHMACKey)
	dec := envelope.NewDecoder(envelope.DecoderConfig{Verifier: &envelope.Verifier{Keys: keys}})
	base := mesh.Observation{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Channel: "#mesh.orders", Topic: "orders", From: "audit-a1"}
	view := func(l envelope.Line) []*lineView {
		b := base
		b.Tags, b.Body = l.Tags, l.Body
		var out []*lineView
		for _, ob := range observed(b, dec.DecodeLine(b.From, l.Tags, l.Body, base.Time)) {
			out = append(out, observationView(ob))
		}
		return out
	}

	e, sealed := testEnvelope(t, []byte(strings.Repeat("x", 2500)))
	lines, err := envelope.EncodeLines(e, sealed, envelope.CarrierTag, envelope.Limits{TagBytes: 1200, BodyBytes: 400})
	n := len(lines)
	if err != nil || n < 3 {
		t.Fatalf("%d lines, %v", n, err)
	}
	count := strconv.Itoa(n)
	for i, l := range lines[:n-1] {
		vs := view(l)
		f := vs[0].Fragment
		if len(vs) != 1 || vs[0].Type != typeFragment || vs[0].Carrier != "tag" || f == nil ||
			f.Short != e.ID.Short() || f.Index != i+1 || f.Count != n || f.Bytes != len(l.Tags[envelope.TagData]) {
			t.Fatalf("fragment %d: %+v %+v", i+1, vs[0], f)
		}
		want := "frag   " + e.ID.Short() + "  fragment " + strconv.Itoa(i+1) + "/" + count + " (" + strconv.Itoa(f.Bytes) + " B)  [mesh claim workers "
		if !strings.Contains(vs[0].text(), want) {
			t.Errorf("fragment %d: %q lacks %q", i+1, vs[0].text(), want)
		}
	}
	vs := view(lines[n-1])
	if len(vs) != 1 || vs[0].Type != typeMesh || vs[0].Fragments != n || vs[0].Signature != "verified" || vs[0].Carrier != "tag" ||
		!strings.HasSuffix(vs[0].text(), "  ("+count+" lines)") {
		t.Fatalf("last fragment: %+v %q", vs[0], vs[0].text())
	}
	b, _ := json.Marshal(vs[0])
	if !strings.Contains(string(b), `"carrier":"tag","fragments":`+count+`,`) || !strings.Contains(string(b), `"signature":"verified"`) {
		t.Errorf("JSON: %s", b)
	}

	// A batch line of a signed and an unsigned envelope, on one line.
	plain := envelope.New(envelope.KindEvent, envelope.Sender{Service: "audit", Instance: "a1"}, "orders", []byte("plain"), base.Time)
	unsigned, _ := envelope.Seal(plain, nil)
	small, smallSealed := testEnvelope(t, []byte("signed"))
	batch, err := envelope.EncodeBatchLine([]*envelope.Envelope{small, plain}, [][]byte{smallSealed, unsigned}, envelope.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	vs = view(batch)
	if len(vs) != 2 || vs[0].Signature != "verified" || vs[1].Signature != "unsigned" || vs[1].Envelope.ID != plain.ID.String() ||
		vs[0].Fragments != 0 || vs[1].Carrier != "tag" {
		t.Fatalf("batch: %+v", vs)
	}

	// The body carrier.
	body, err := envelope.EncodeLines(plain, unsigned, envelope.CarrierBody, envelope.Limits{BodyBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	if vs = view(body[0]); vs[0].Carrier != "body" || vs[0].Type != typeMesh || vs[0].Signature != "unsigned" {
		t.Fatalf("body carrier: %+v", vs[0])
	}
}

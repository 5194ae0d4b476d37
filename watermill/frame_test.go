package meshwatermill

import (
	"bytes"
	"maps"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

func event(payload []byte, ct string) *mesh.Message {
	return &mesh.Message{ID: envelope.NewID(), Payload: payload, Headers: envelope.Headers{ContentType: ct}}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, msg := range []*message.Message{
		message.NewMessage("u1", []byte("payload")),
		message.NewMessage("", nil),
		func() *message.Message {
			m := message.NewMessage("u2", []byte{0, 0xff})
			m.Metadata.Set("k", "v")
			m.Metadata.Set("empty", "")
			return m
		}(),
	} {
		b, err := marshalFrame(msg)
		if err != nil {
			t.Fatal(err)
		}
		r := decodeEvent(event(b, ContentType))
		got := r.message()
		if got.UUID != msg.UUID || !bytes.Equal(got.Payload, msg.Payload) || !maps.Equal(got.Metadata, msg.Metadata) {
			t.Errorf("round trip of %+v gave %+v", msg, got)
		}
		// Each delivery gets its own metadata map.
		got.Metadata.Set("changed", "1")
		if _, ok := r.message().Metadata["changed"]; ok {
			t.Error("metadata shared between deliveries")
		}
	}
}

func TestForeignEvents(t *testing.T) {
	ev := event([]byte("raw"), "text/plain")
	ev.Headers.Traceparent = "00-tp"
	m := decodeEvent(ev).message()
	if m.UUID != ev.ID.String() || string(m.Payload) != "raw" ||
		m.Metadata[MetadataContentType] != "text/plain" || m.Metadata[MetadataTraceparent] != "00-tp" || len(m.Metadata) != 2 {
		t.Errorf("foreign event: %+v", m)
	}
	bad := event([]byte{0xa1, 0x01}, ContentType) // a map cut short
	m = decodeEvent(bad).message()
	if m.UUID != bad.ID.String() || m.Metadata[MetadataFrameError] == "" || !bytes.Equal(m.Payload, bad.Payload) {
		t.Errorf("bad frame: %+v", m)
	}
}

// FuzzDecodeFrame: any payload marked as a frame decodes without panic,
// to a message, and a frame that decodes encodes back to one that
// decodes to the same message.
func FuzzDecodeFrame(f *testing.F) {
	for _, msg := range []*message.Message{message.NewMessage("u", []byte("p")), message.NewMessage("", nil)} {
		msg.Metadata.Set("a", "b")
		b, _ := marshalFrame(msg)
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x04, 0x01}) // an unknown key
	f.Add([]byte{0xbf})             // an indefinite map
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := unmarshalFrame(b)
		r := decodeEvent(event(b, ContentType))
		if err != nil {
			if r.metadata[MetadataFrameError] == "" {
				t.Fatal("a bad frame is not marked")
			}
			return
		}
		m := r.message()
		again, err := marshalFrame(m)
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := unmarshalFrame(again)
		if err != nil {
			t.Fatal(err)
		}
		if fr2.UUID != fr.UUID || !bytes.Equal(fr2.Payload, fr.Payload) || len(fr2.Metadata) != len(fr.Metadata) {
			t.Fatalf("re-encoded frame differs: %+v vs %+v", fr2, fr)
		}
	})
}

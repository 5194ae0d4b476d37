package meshwatermill

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// ContentType marks an event whose payload is a Watermill message framed
// by this package: a CBOR map {1: uuid, 2: metadata, 3: payload} (keys are
// small integers; empty fields are left out). meshbot envelopes carry
// only a content type and a traceparent as headers, so Watermill's
// metadata travels inside the payload.
const ContentType = "application/vnd.meshbot.watermill+cbor"

// Metadata keys set on messages made from events that are not framed by
// this package (published by plain meshbot services): their envelope
// headers. Such a message's UUID is the envelope id and its payload the
// event's payload, unchanged.
const (
	MetadataContentType = "meshbot_content_type"
	MetadataTraceparent = "traceparent"
	// MetadataFrameError is set, with the decoding error, on a message
	// whose event claims ContentType but does not decode; its payload is
	// the event's payload as received.
	MetadataFrameError = "meshbot_frame_error"
)

// maxFrameMetadata bounds the metadata pairs of a received frame.
const maxFrameMetadata = 1024

// frame is the payload of an event published by Publisher.
type frame struct {
	UUID     string            `cbor:"1,keyasint,omitempty"`
	Metadata map[string]string `cbor:"2,keyasint,omitempty"`
	Payload  []byte            `cbor:"3,keyasint,omitempty"`
}

// The frame is encoded like every meshbot payload (core deterministic
// CBOR) and decoded strictly: no duplicate keys, indefinite lengths or
// tags, bounded nesting and metadata.
var decMode = envelope.StrictDecMode(4, 16, maxFrameMetadata+3)

// errFrame wraps every frame decoding error.
var errFrame = errors.New("meshwatermill: malformed frame")

// marshalFrame encodes msg's UUID, metadata and payload.
func marshalFrame(msg *message.Message) ([]byte, error) {
	f := frame{UUID: msg.UUID, Payload: msg.Payload}
	if len(msg.Metadata) > 0 {
		f.Metadata = msg.Metadata
	}
	return envelope.EncMode().Marshal(f)
}

// unmarshalFrame decodes a frame.
func unmarshalFrame(b []byte) (frame, error) {
	var f frame
	if err := decMode.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("%w: %w", errFrame, err)
	}
	return f, nil
}

// received is a received event as a Watermill message, decoded once; each
// delivery attempt gets a fresh *message.Message made from it.
type received struct {
	uuid     string
	metadata map[string]string
	payload  []byte
	m        *mesh.Message
}

// decodeEvent makes the Watermill message of a received event: the framed
// message when the event carries ContentType, else the event itself (see
// MetadataContentType). Unknown frame keys are ignored.
func decodeEvent(m *mesh.Message) received {
	r := received{uuid: m.ID.String(), payload: m.Payload, metadata: map[string]string{}, m: m}
	if m.Headers.ContentType == ContentType {
		f, err := unmarshalFrame(m.Payload)
		if err != nil {
			r.metadata[MetadataFrameError] = err.Error()
			return r
		}
		r.uuid, r.payload = f.UUID, f.Payload
		for k, v := range f.Metadata {
			r.metadata[k] = v
		}
		return r
	}
	if ct := m.Headers.ContentType; ct != "" {
		r.metadata[MetadataContentType] = ct
	}
	if tp := m.Headers.Traceparent; tp != "" {
		r.metadata[MetadataTraceparent] = tp
	}
	return r
}

// message returns a new Watermill message of r, its metadata a copy.
func (r received) message() *message.Message {
	msg := message.NewMessage(r.uuid, r.payload)
	for k, v := range r.metadata {
		msg.Metadata[k] = v
	}
	return msg
}

package history

import (
	"context"
	"fmt"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// Stored publishes (docs/PROTOCOL.md §7.9). Recorders find topics in the
// members' heartbeats and the server's channel list every few seconds, so
// an event published to a topic nobody subscribes to could be gone before
// any recorder is in its channel. A publisher with a history source asks a
// recorder to record a topic (MethodTrack) before its first publish there,
// and may ask for the confirmation that a recorder has journaled a given
// line (MethodStored), like a JetStream PubAck.

// MethodTrack makes a recorder record a topic from now on (TrackRequest →
// StoredAnswer, once the recorder is in the topic's channel); MethodStored
// answers once the recorder has journaled (appended and committed) the
// line that carries an envelope (StoredRequest → StoredAnswer).
const (
	MethodTrack  = "history.track"
	MethodStored = "history.stored"
)

// TrackRequest names the topic to record.
type TrackRequest struct {
	Topic string `cbor:"1,keyasint"`
}

// StoredRequest names a published envelope: its topic, its id, and the
// server's msgid of its (last) line when the server gave one.
type StoredRequest struct {
	Topic string      `cbor:"1,keyasint"`
	ID    envelope.ID `cbor:"2,keyasint"`
	MsgID string      `cbor:"3,keyasint,omitempty"`
}

// StoredAnswer is a recorder's answer to a TrackRequest or StoredRequest:
// the recorder, and for a StoredRequest the sequence number of the line
// in its store.
type StoredAnswer struct {
	Recorder string `cbor:"1,keyasint"`
	Seq      uint64 `cbor:"2,keyasint,omitempty"`
}

// Encode returns the request's wire form.
func (r *TrackRequest) Encode() ([]byte, error) { return wireEnc.Marshal(r) }

// Encode returns the request's wire form.
func (r *StoredRequest) Encode() ([]byte, error) { return wireEnc.Marshal(r) }

// Encode returns the answer's wire form.
func (a *StoredAnswer) Encode() ([]byte, error) { return wireEnc.Marshal(a) }

// DecodeTrackRequest reads a TrackRequest, as a recorder receives it.
func DecodeTrackRequest(b []byte) (TrackRequest, error) {
	var r TrackRequest
	err := decode("track request", b, &r)
	return r, err
}

// DecodeStoredRequest reads a StoredRequest, as a recorder receives it.
func DecodeStoredRequest(b []byte) (StoredRequest, error) {
	var r StoredRequest
	if err := decode("stored request", b, &r); err != nil {
		return r, err
	}
	if r.ID.IsZero() {
		return r, fmt.Errorf("%w: stored request without an envelope id", ErrMalformedPage)
	}
	return r, nil
}

// DecodeStoredAnswer reads a StoredAnswer, as a publisher receives it.
func DecodeStoredAnswer(b []byte) (*StoredAnswer, error) {
	var a StoredAnswer
	if err := decode("stored answer", b, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Track implements mesh.HistoryStore: a recorder records topic from now
// on; it returns once the recorder is in the topic's channel. With no
// live recorder it fails at once with mesh.ErrNoResponders.
func (*Source) Track(ctx context.Context, n *mesh.Node, topic string) error {
	if len(n.Members(Service)) == 0 {
		return fmt.Errorf("history: recording %s: %w: no recorder (%s) is live", topic, mesh.ErrNoResponders, Service)
	}
	body, err := (&TrackRequest{Topic: topic}).Encode()
	if err != nil {
		return err
	}
	out, err := n.Request(ctx, Service, MethodTrack, body, mesh.WithKey(topic))
	if err != nil {
		return fmt.Errorf("history: recording %s: %w", topic, explain(err))
	}
	_, err = DecodeStoredAnswer(out)
	return err
}

// Stored implements mesh.HistoryStore: it returns once a recorder has
// journaled the publish ack names (the recorder that Track asked, while
// membership holds), or fails when ctx ends first or no recorder is live.
func (*Source) Stored(ctx context.Context, n *mesh.Node, topic string, ack mesh.PubAck) (string, error) {
	if len(n.Members(Service)) == 0 {
		return "", fmt.Errorf("history: confirming %s: %w: no recorder (%s) is live", topic, mesh.ErrNoResponders, Service)
	}
	body, err := (&StoredRequest{Topic: topic, ID: ack.ID, MsgID: ack.MsgID}).Encode()
	if err != nil {
		return "", err
	}
	out, err := n.Request(ctx, Service, MethodStored, body, mesh.WithKey(topic))
	if err != nil {
		return "", fmt.Errorf("history: confirming %s: %w", topic, explain(err))
	}
	a, err := DecodeStoredAnswer(out)
	if err != nil {
		return "", err
	}
	return a.Recorder, nil
}

var _ mesh.HistoryStore = (*Source)(nil)

// ValidRecordTopic reports whether a recorder records and serves topic:
// a user topic, the heartbeat channel's, or a domain's channel.
func ValidRecordTopic(ns, topic string) error {
	if topic == "_hb" {
		return nil
	}
	if _, ok := state.DomainOfTopic(topic); ok {
		return nil
	}
	return mesh.ValidateTopic(ns, topic, 0)
}

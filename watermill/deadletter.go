package meshwatermill

import (
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/mesh"
)

// Dead letters: a consumer group gives a message up after MaxAttempts
// Nacks and publishes it, with why, on the dead-letter topic of its
// meshbot topic, <topic>._dead (mesh.SubscribeAnycast). Watermill topics
// ending in "._dead" that are valid meshbot topics are used as they are,
// by every TopicMapper, so a Subscriber reads them like any topic.

// DeadLetter is a message a consumer group gave up, as published on the
// dead-letter topic.
type DeadLetter struct {
	// Message is the message as it was published (UUID, metadata,
	// payload).
	Message *message.Message
	// Topic is the meshbot topic and Group the group that gave it up.
	Topic, Group string
	// Attempts counts the failed attempts; Reasons says why each failed
	// (a Nack reads "meshwatermill: message nacked: <uuid>").
	Attempts uint32
	Reasons  []string
}

// DeadLetterTopic returns the topic to subscribe to for the messages a
// consumer group of this Subscriber's kind gives up on topic.
func (s *Subscriber) DeadLetterTopic(topic string) (string, error) {
	t, err := mapTopic(s.cfg.TopicMapper, s.n.Namespace(), topic)
	if err != nil {
		return "", err
	}
	return mesh.DeadLetterTopic(t), nil
}

// DecodeDeadLetter reads a message received from a dead-letter topic.
func DecodeDeadLetter(msg *message.Message) (*DeadLetter, error) {
	d, err := claims.DecodeDeadLetter(msg.Payload)
	if err != nil {
		return nil, fmt.Errorf("meshwatermill: not a dead letter: %w", err)
	}
	ev := d.Event
	r := decodeEvent(&mesh.Message{Topic: ev.Topic, ID: ev.ID, Payload: ev.Payload, Headers: ev.Headers, Sender: ev.Sender, Envelope: ev})
	return &DeadLetter{Message: r.message(), Topic: d.Topic, Group: d.Group, Attempts: d.Attempts, Reasons: d.Reasons}, nil
}

// isDeadLetterTopic reports whether t names a dead-letter topic, which
// mappers leave as it is.
func isDeadLetterTopic(ns, t string) bool {
	return strings.HasSuffix(t, "._dead") && mesh.ValidateTopic(ns, t, 0) == nil
}

package mesh

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stored publishes (docs/PROTOCOL.md §7.9). With a history recorder
// running, what is published is in the record whether or not anything
// subscribes: before the first publish to a topic, the node asks a
// recorder to record it (history.MethodTrack), so that the recorder is in
// the channel before the line is. PublishStored and the Stored write
// option go further: they return only once a recorder has journaled the
// line (a JetStream PubAck), and fail with ErrNotStored when no recorder
// is there to do it.

// ErrNotStored is returned by PublishStored (and writes with Stored) when
// no recorder confirmed the line: none is live, the history source cannot
// store (Config.History unset), or the confirmation did not come before
// the context ended. With no recorder live, nothing is published.
var ErrNotStored = errors.New("mesh: not stored")

// HistoryStore is a HistorySource whose recorders can be asked to record
// a topic and to confirm a line journaled (history.Source).
type HistoryStore interface {
	// Track makes a recorder record topic from now on; it returns once the
	// recorder is in the topic's channel, and fails at once (wrapping
	// ErrNoResponders) when no recorder is live.
	Track(ctx context.Context, n *Node, topic string) error
	// Stored returns, with the answering recorder's name, once a recorder
	// has journaled the envelope ack names on topic.
	Stored(ctx context.Context, n *Node, topic string, ack PubAck) (recorder string, err error)
}

// trackTimeout bounds asking a recorder to record a topic before a plain
// publish: a recorder that is slow to answer must not hold publishes up.
const trackTimeout = 2 * time.Second

// trackTopic asks a recorder, once per topic, to record it (nothing
// without a history source that stores). After a failure (no recorder
// live) it asks again only a heartbeat interval later, so that publishes
// to a mesh without recorders do not pay for it. It returns the
// recorder's error for the stored publishes that need it; publish and
// mirror ignore it.
//
// A stored publish asks again at once (retry) when the last attempt failed.
func (n *Node) trackTopic(ctx context.Context, topic string, retry bool) error {
	hs, ok := n.cfg.History.(HistoryStore)
	if !ok {
		return fmt.Errorf("%w: the node's history source (Config.History) does not store publishes", ErrNotStored)
	}
	tracked := &n.domains.tracked
	if v, ok := tracked.Load(topic); ok {
		if at, failed := v.(time.Time); !failed || (!retry && time.Since(at) < n.cfg.HeartbeatInterval) {
			if failed {
				return fmt.Errorf("%w: no history recorder is live", ErrNotStored)
			}
			return nil
		}
	}
	tctx, cancel := context.WithTimeout(ctx, trackTimeout)
	defer cancel()
	if err := hs.Track(tctx, n, topic); err != nil {
		tracked.Store(topic, time.Now())
		return fmt.Errorf("%w: %w", ErrNotStored, err)
	}
	tracked.Store(topic, true)
	return nil
}

// StoredAck confirms a stored publish: the server's PubAck, and the
// recorder that journaled the line.
type StoredAck struct {
	PubAck
	Recorder string
}

// PublishStored publishes like Publish and returns once a history
// recorder has journaled the event (appended and committed to its store),
// naming the recorder. With no recorder live (or no
// Config.History that stores), it fails with ErrNotStored and publishes
// nothing; if the confirmation does not come before ctx ends, the error
// wraps ErrNotStored and the event may or may not be recorded (it was
// published: the ack's ID is set).
func (n *Node) PublishStored(ctx context.Context, topic string, payload []byte, opts ...PublishOption) (StoredAck, error) {
	if err := n.trackTopic(ctx, topic, true); err != nil {
		return StoredAck{}, fmt.Errorf("mesh: publishing %s: %w", topic, err)
	}
	ack, err := n.Publish(ctx, topic, payload, opts...)
	if err != nil {
		return StoredAck{PubAck: ack}, err
	}
	recorder, err := n.cfg.History.(HistoryStore).Stored(ctx, n, topic, ack)
	if err != nil {
		return StoredAck{PubAck: ack}, fmt.Errorf("mesh: publishing %s: %w: %w", topic, ErrNotStored, err)
	}
	return StoredAck{PubAck: ack, Recorder: recorder}, nil
}

package mesh

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// PubAck confirms a publish: the server accepted every line of it.
type PubAck struct {
	// ID is the envelope id; receivers de-duplicate by it.
	ID envelope.ID
	// MsgID is the server's msgid of the (last) line, when the server
	// echoes messages (echo-message and msgid); "" otherwise.
	MsgID string
	// Lines is how many lines the envelope took.
	Lines int
	// Batch is how many events shared the envelope's line: 1 when it had
	// its line (or fragments) to itself; more when small events published
	// together went out in one batch line (docs/PROTOCOL.md §3.9), which
	// then carries them all (Lines is 1, and MsgID is the line's).
	Batch int
}

// PublishOption sets optional fields of a published envelope.
type PublishOption func(*envelope.Envelope)

// WithContentType sets the payload's content type header.
func WithContentType(ct string) PublishOption {
	return func(e *envelope.Envelope) { e.Headers.ContentType = ct }
}

// WithTraceparent sets the W3C traceparent header.
func WithTraceparent(tp string) PublishOption {
	return func(e *envelope.Envelope) { e.Headers.Traceparent = tp }
}

// Publish sends payload as an event on topic and returns once the server
// has accepted every line of it (a publish confirm, like an MQTT PUBACK).
// While the connection is down, Publish waits for it to come back and sends
// then; lines the server may not have seen are sent again with the same
// envelope id, which receivers de-duplicate. If ctx ends first, the error
// wraps ErrNotConfirmed and the event may or may not have been delivered.
func (n *Node) Publish(ctx context.Context, topic string, payload []byte, opts ...PublishOption) (PubAck, error) {
	f, err := n.PublishAsync(ctx, topic, payload, opts...)
	if err != nil {
		return PubAck{}, err
	}
	return f.Wait(ctx)
}

// PubFuture is a publish in flight.
type PubFuture struct{ j *job }

// Done is closed when the publish is confirmed or has failed.
func (f *PubFuture) Done() <-chan struct{} { return f.j.done }

// Wait returns the outcome once known, or an ErrNotConfirmed error when
// ctx ends first (the publish itself goes on until its own context ends).
func (f *PubFuture) Wait(ctx context.Context) (PubAck, error) {
	select {
	case <-f.j.done:
		return f.j.ack, f.j.err
	case <-ctx.Done():
		return PubAck{}, fmt.Errorf("%w: %w", ErrNotConfirmed, context.Cause(ctx))
	}
}

// PublishAsync queues an event and returns without waiting for the server;
// the returned future tells the outcome. It blocks only while the outgoing
// queue is full (flow control), until ctx ends. ctx also bounds the publish
// itself: once it ends, the event is no longer (re)sent.
func (n *Node) PublishAsync(ctx context.Context, topic string, payload []byte, opts ...PublishOption) (*PubFuture, error) {
	if n.sealed.Load() {
		return nil, ErrClosed
	}
	st := n.current()
	chanLen := 0
	if st != nil {
		chanLen = st.chanLen
	}
	if err := ValidateTopic(n.cfg.Namespace, topic, chanLen); err != nil {
		return nil, err
	}
	env := envelope.New(envelope.KindEvent, n.sender(), topic, payload, time.Now())
	for _, o := range opts {
		o(env)
	}
	channel := Channel(n.cfg.Namespace, topic)
	// With a history recorder live, it records the topic before the first
	// line is there, subscribed or not (stored.go, docs/PROTOCOL.md §7.9).
	_ = n.trackTopic(ctx, topic, false)
	if err := n.checkKicked(channel); err != nil { // modes.go
		return nil, err
	}
	if err := n.joinToPublish(ctx, channel); err != nil {
		return nil, err
	}
	if err := n.checkPaused(ctx, channel); err != nil { // modes.go: +m
		return nil, err
	}
	j, err := n.send(ctx, channel, env)
	if err != nil {
		return nil, err
	}
	return &PubFuture{j: j}, nil
}

// send seals env and queues it for target.
func (n *Node) send(ctx context.Context, target string, env *envelope.Envelope) (*job, error) {
	// legible.go: what people read of its line. Written only when there is
	// a note: a request is sent again (another instance, a reconnect) while
	// the writer may still encode its previous line, and has none.
	if env.Human == "" && !env.Secret {
		if note := humanNote(env); note != "" {
			env.Human = note
		}
	}
	env, plain, err := n.wireEnvelope(target, env) // crypt.go: encrypted with Config.Crypter
	if err != nil {
		return nil, err
	}
	sealed, err := envelope.Seal(env, n.cfg.Signer)
	if err != nil {
		return nil, err
	}
	if len(sealed) > n.cfg.MaxEnvelope {
		return nil, fmt.Errorf("%w: %d bytes, limit %d (Config.MaxEnvelope)", envelope.ErrTooLarge, len(sealed), n.cfg.MaxEnvelope)
	}
	// DMs (requests, responses) need no window confirm: the answer, or the
	// requester's retry after a reconnect, is theirs.
	// Heartbeats jump the queue and are not confirmed either: a late beat
	// is worse than a lost one, and the next one follows.
	prio := env.Kind == envelope.KindHeartbeat
	j := &job{ctx: ctx, target: target, env: env, plain: plain, sealed: sealed, done: make(chan struct{}),
		direct: prio || !strings.HasPrefix(target, "#"), prio: prio}
	if err := n.writer.submit(j); err != nil {
		return nil, err
	}
	return j, nil
}

// limits is the room of one line to target on connection st.
func (n *Node) limits(st *connState, target string) envelope.Limits {
	body := envelope.BodyBudget(st.lineLen, st.prefix, target, bodyMargin)
	return envelope.Limits{TagBytes: envelope.DefaultTagBytes, BodyBytes: body}
}

// joinToPublish makes sure the node is in channel before it publishes
// there: channels are +n (no messages from outside) on every supported
// server. The first publish to a topic waits for the join; the node then
// stays in the channel, across reconnects.
func (n *Node) joinToPublish(ctx context.Context, channel string) error {
	key := strings.ToLower(channel)
	n.mu.Lock()
	ready, known := n.pubChans[key]
	_, sub := n.subs[key]
	if !known {
		ready = make(chan struct{})
		n.pubChans[key] = ready
		if sub {
			close(ready)
		}
	}
	n.mu.Unlock()
	if sub {
		return nil
	}
	if !known {
		if err := n.join(ctx, channel); err != nil {
			n.mu.Lock()
			delete(n.pubChans, key)
			n.mu.Unlock()
			close(ready)
			return err
		}
		close(ready)
		return nil
	}
	select {
	case <-ready:
		n.mu.Lock()
		_, ok := n.pubChans[key]
		n.mu.Unlock()
		if !ok {
			return n.joinToPublish(ctx, channel) // the first join failed; try ourselves
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mesh: joining %s: %w", channel, context.Cause(ctx))
	}
}

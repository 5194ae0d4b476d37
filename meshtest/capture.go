package meshtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// The capture turns what the node wrote (its PRIVMSGs, decoded) and what
// it logged (handler errors) into entries of the output.

type capture struct {
	o     *options
	ns    string
	start time.Time // the log's start: entries are timed from it

	dec *envelope.Decoder // the serve goroutine's (one connection at a time)

	mu      sync.Mutex
	seg     int // recorded lines delivered so far
	entries []Entry
	beats   int
}

// newCapture returns the capture of a node of namespace ns; crypter (the
// node's Config.Crypter, or nil) opens the payloads it encrypts, so that
// the output shows them in clear.
func newCapture(o *options, ns string, start time.Time, crypter *envelope.Crypter) *capture {
	dec := envelope.NewDecoder(envelope.DecoderConfig{AcceptUnchecked: true, Crypter: crypter})
	return &capture{o: o, ns: ns, start: start, dec: dec}
}

// delivered marks that one more recorded line reached the node: entries
// from now on come after it.
func (c *capture) delivered() {
	c.mu.Lock()
	c.seg++
	c.mu.Unlock()
}

func (c *capture) add(e Entry) {
	c.mu.Lock()
	e.At = time.Now().Sub(c.start)
	e.seg = c.seg
	c.entries = append(c.entries, e)
	c.mu.Unlock()
}

// answer is a stubbed service's response to send the node.
type answer struct {
	from, service string
	lines         []envelope.Line
}

// sent takes one PRIVMSG the node wrote and returns the answers of
// stubbed services to it.
func (c *capture) sent(nick, target string, tags map[string]string, text string, now time.Time) []answer {
	envs, _, err := c.dec.Decode(nick, tags, text, now)
	if err != nil {
		c.add(Entry{Kind: KindInvalid, Topic: target, Err: err.Error()})
	}
	var out []answer
	for _, env := range envs {
		if strings.HasPrefix(target, "#") {
			c.channel(nick, target, env)
			continue
		}
		if a, ok := c.direct(target, env, now); ok {
			out = append(out, a)
		}
	}
	return out
}

// channel takes an envelope the node sent to a channel.
func (c *capture) channel(nick, target string, env *envelope.Envelope) {
	topic, ok := mesh.TopicOf(c.ns, target)
	if !ok {
		topic = target
	}
	switch {
	case env.Kind == envelope.KindHeartbeat:
		c.mu.Lock()
		c.beats++
		c.mu.Unlock()
	case env.Kind == envelope.KindState:
		service, _, _ := mesh.ParseNick(nick)
		u, err := state.DecodeUpdate(env, nick, service, nil)
		if err != nil {
			c.add(Entry{Kind: KindInvalid, Topic: topic, Err: err.Error()})
			return
		}
		for _, p := range u.Puts {
			c.add(Entry{Kind: KindStatePut, Topic: u.Domain, Key: p.Key, Version: u.Version, Payload: p.Value})
		}
		for _, d := range u.Deletes {
			c.add(Entry{Kind: KindStateDelete, Topic: u.Domain, Key: d.Key, Version: u.Version})
		}
	case env.Kind == envelope.KindEvent && strings.HasSuffix(topic, claims.DeadTopic("")):
		d, err := claims.DecodeDeadLetter(env.Payload)
		if err != nil {
			c.add(Entry{Kind: KindInvalid, Topic: topic, Err: err.Error()})
			return
		}
		last := ""
		if len(d.Reasons) > 0 {
			last = d.Reasons[len(d.Reasons)-1]
		}
		c.add(Entry{Kind: KindDeadLetter, Topic: d.Topic, Ref: d.Event.ID.Short(), Attempts: int(d.Attempts), Err: last, Payload: d.Event.Payload})
	case env.Kind == envelope.KindEvent:
		c.add(Entry{Kind: KindPublish, Topic: topic, Payload: env.Payload})
	case c.o.protocol:
		for _, e := range protocolEntries(topic, env) {
			c.add(e)
		}
	}
}

// protocolEntries describe a claims line (ShowProtocol): one entry per
// event it is about, so that how the writer batched them does not show.
func protocolEntries(topic string, env *envelope.Envelope) []Entry {
	one := func(text string) Entry { return Entry{Kind: KindProtocol, Topic: topic, Err: text} }
	kind := env.Kind.String()
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck:
		items, err := claims.DecodeItems(env.Payload)
		if err != nil {
			return []Entry{one(fmt.Sprintf("%s (malformed: %v)", kind, err))}
		}
		out := make([]Entry, len(items))
		for i, it := range items {
			out[i] = one(fmt.Sprintf("%s %s@%d", kind, it.Event.Short(), it.Epoch))
		}
		return out
	case envelope.KindNack:
		text := fmt.Sprintf("%s %s@%d", kind, env.Correlation.Short(), env.Epoch)
		if env.Error != nil {
			if env.Error.Code == claims.CodeReleased {
				text += " released"
			} else {
				text += fmt.Sprintf(" retry %dms: %s", env.LeaseMillis, env.Error.Message)
			}
		}
		return []Entry{one(text)}
	case envelope.KindDeadLetter:
		return []Entry{one(fmt.Sprintf("%s %s", kind, env.Correlation.Short()))}
	}
	return []Entry{one(kind)}
}

// direct takes an envelope the node sent by private message: a response
// to a recorded request, or a request of its own (answered when stubbed).
func (c *capture) direct(target string, env *envelope.Envelope, now time.Time) (answer, bool) {
	switch env.Kind {
	case envelope.KindResponse:
		e := Entry{Kind: KindRespond, Topic: env.Topic, To: target, Ref: env.Correlation.Short(), Payload: env.Payload}
		if env.Error != nil {
			e.Code, e.Err = env.Error.Code, env.Error.Message
		}
		c.add(e)
	case envelope.KindRequest:
		service, instance, _ := mesh.ParseNick(target)
		c.add(Entry{Kind: KindRequest, Topic: service + "." + env.Topic, To: target, Payload: env.Payload})
		h := c.o.stubs[service+"."+env.Topic]
		if h == nil {
			return answer{}, false
		}
		return c.stub(h, target, service, instance, env, now), true
	}
	return answer{}, false
}

// stub runs a stubbed method and returns its response's lines.
func (c *capture) stub(h mesh.RequestHandler, nick, service, instance string, req *envelope.Envelope, now time.Time) answer {
	ctx := context.Background()
	if req.Deadline != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, req.Deadline))
		defer cancel()
	}
	r := &mesh.Request{Method: req.Topic, ID: req.ID, Payload: req.Payload, Headers: req.Headers,
		Sender: req.Sender, Deadline: time.Unix(0, req.Deadline)}
	out, err := callStub(ctx, h, r)
	resp := envelope.New(envelope.KindResponse, envelope.Sender{Service: service, Instance: instance, Incarnation: 1}, req.Topic, out, now)
	resp.Correlation = req.ID
	if err != nil {
		resp.Payload = nil
		resp.Error = &envelope.Error{Code: mesh.CodeInternal, Message: err.Error()}
		var re *mesh.RemoteError
		if errors.As(err, &re) {
			resp.Error = &envelope.Error{Code: re.Code, Message: re.Message}
		}
	}
	a := answer{from: nick, service: service}
	sealed, err := envelope.Seal(resp, nil)
	if err == nil {
		a.lines, err = envelope.EncodeLines(resp, sealed, envelope.CarrierTag, envelope.Limits{TagBytes: envelope.DefaultTagBytes, BodyBytes: 400})
	}
	if err != nil {
		c.add(Entry{Kind: KindInvalid, Topic: service + "." + req.Topic, Err: "stub answer: " + err.Error()})
	}
	return a
}

func callStub(ctx context.Context, h mesh.RequestHandler, r *mesh.Request) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("stub panicked: %v", p)
		}
	}()
	return h(ctx, r)
}

package claims

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshbot/meshbot/envelope"
)

// What a Group asks of its driver, and how it builds it.

// Ready is what a Group asks its driver to do.
type Ready struct {
	// Send are the envelopes to post in the topic's channel, in this
	// order, sealed (signed) by the driver: CLAIMs and ACKs (their items
	// batched, at most MaxItems an envelope), NACKs (and releases), votes
	// on HistoryClaims, and the member's own HistoryClaim.
	Send []*envelope.Envelope
	// DeadLetters are events given up on (§6.9): publish each Letter on
	// DeadTopic(topic), then, once the server has taken it, send its
	// Marker. A letter that could not be published is not marked: the
	// next owner tries again.
	DeadLetters []DeadLetterOut
	// Cancel are handlers to cancel, Start handlers to run, in that
	// order. A Cancel names the epoch of the start it ends.
	Cancel []CancelHandler
	Start  []StartHandler
	// Malformed are lines of the group that did not decode; they changed
	// nothing (Stats counts them too).
	Malformed []Malformed
	// Next is when Tick has work, or the zero time.
	Next time.Time
}

// Empty reports whether rd asks for nothing (Next aside).
func (rd *Ready) Empty() bool {
	return len(rd.Send)+len(rd.DeadLetters)+len(rd.Cancel)+len(rd.Start)+len(rd.Malformed) == 0
}

// StartHandler asks the driver to run the handler for an event this member
// won.
type StartHandler struct {
	// Event is the event as it was received.
	Event   Received
	Epoch   uint64
	Attempt uint32
	// Token is the claim's fencing token (§6.4).
	Token uint64
}

// CancelHandler asks the driver to cancel the handler started for Event at
// Epoch; a result it still reports is dropped.
type CancelHandler struct {
	Event  envelope.ID
	Epoch  uint64
	Reason string
}

// DeadLetterOut is a dead letter to publish, then its marker to send.
type DeadLetterOut struct {
	Letter DeadLetter
	Marker *envelope.Envelope
}

// Malformed is a line of the group whose payload or fields did not decode.
type Malformed struct {
	From string
	Kind envelope.Kind
	Err  error
}

// vote queues a HistoryAck (ok) or HistoryReject of the claim.
func (g *Group) vote(claim envelope.ID, off envelope.Offset, ok bool) {
	payload, err := EncodeOffset(off)
	if err != nil {
		return
	}
	kind := envelope.KindHistoryReject
	if ok {
		kind = envelope.KindHistoryAck
	}
	env := g.envelope(kind, payload)
	env.Correlation = claim
	g.sendOut = append(g.sendOut, env)
}

func (g *Group) envelope(kind envelope.Kind, payload []byte) *envelope.Envelope {
	return &envelope.Envelope{Version: envelope.Version, Kind: kind, ID: g.cfg.NewID(), Time: g.last.UnixNano(),
		Sender: g.cfg.Sender, Topic: g.cfg.Group, Payload: payload}
}

// apply turns the core's actions into outputs.
func (g *Group) apply(acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case SendClaim:
			g.claimsOut = append(g.claimsOut, Item{Event: a.Event, Epoch: a.Epoch, Attempt: a.Attempt})
		case SendAck:
			g.acksOut = append(g.acksOut, Item{Event: a.Event, Epoch: a.Epoch})
		case SendNack:
			env := g.envelope(envelope.KindNack, nil)
			env.Correlation, env.Epoch = a.Event, a.Epoch
			env.LeaseMillis = uint32(min(a.Lease, maxLease) / time.Millisecond)
			env.Error = &envelope.Error{Message: clipReason(a.Reason)}
			if a.Release {
				env.Error.Code = CodeReleased
			}
			g.sendOut = append(g.sendOut, env)
		case SendDead:
			if a.Resend {
				// The dead letter was published: only its marker again.
				g.sendOut = append(g.sendOut, g.deadMarker(a))
				continue
			}
			r, ok := g.events[a.Event]
			if !ok {
				continue // cannot happen: the core dead-letters only events it saw
			}
			marker := g.deadMarker(a)
			g.out.DeadLetters = append(g.out.DeadLetters, DeadLetterOut{
				Letter: DeadLetter{Topic: g.cfg.Topic, Group: g.cfg.Group, Event: r.Envelope, Attempts: a.Attempt, Reasons: a.Reasons},
				Marker: marker,
			})
		case Start:
			r, ok := g.events[a.Event]
			if !ok {
				continue // cannot happen: the core starts only events it saw
			}
			g.out.Start = append(g.out.Start, StartHandler{Event: r, Epoch: a.Epoch, Attempt: a.Attempt, Token: a.Token})
		case Cancel:
			// A start not taken yet is withdrawn instead.
			if i := slices.IndexFunc(g.out.Start, func(s StartHandler) bool {
				return s.Event.Envelope.ID == a.Event && s.Epoch == a.Epoch
			}); i >= 0 {
				g.out.Start = slices.Delete(g.out.Start, i, i+1)
				continue
			}
			g.out.Cancel = append(g.out.Cancel, CancelHandler{Event: a.Event, Epoch: a.Epoch, Reason: a.Reason})
		}
	}
}

// Handlers takes the outputs that must not wait: handlers to cancel and
// start, and the malformed lines. Envelopes to send keep gathering (a
// driver with a batch in flight sends them in the next, fuller one).
func (g *Group) Handlers() Ready {
	rd := Ready{Cancel: g.out.Cancel, Start: g.out.Start, Malformed: g.out.Malformed, Next: g.Next()}
	g.out.Cancel, g.out.Start, g.out.Malformed = nil, nil, nil
	return rd
}

// Ready takes every output gathered since the last call: Handlers', the
// envelopes to send — claims and acks as items, as few envelopes as fit —
// and the dead letters.
func (g *Group) Ready() Ready {
	rd := g.Handlers()
	rd.DeadLetters, g.out.DeadLetters = g.out.DeadLetters, nil
	g.batch(&rd.Send, envelope.KindClaim, g.claimsOut)
	g.batch(&rd.Send, envelope.KindAck, g.acksOut)
	g.claimsOut, g.acksOut = g.claimsOut[:0], g.acksOut[:0]
	rd.Send = append(rd.Send, g.sendOut...)
	g.sendOut = nil
	return rd
}

func (g *Group) batch(out *[]*envelope.Envelope, kind envelope.Kind, items []Item) {
	for len(items) > 0 {
		k := min(len(items), MaxItems)
		payload, err := EncodeItems(items[:k])
		items = items[k:]
		if err != nil {
			continue // cannot happen: 1 to MaxItems items
		}
		env := g.envelope(kind, payload)
		if kind == envelope.KindClaim {
			env.LeaseMillis = uint32(g.cfg.Lease / time.Millisecond)
		}
		*out = append(*out, env)
	}
}

// clipReason bounds a reason's text, cut on a character boundary.
func clipReason(s string) string {
	if len(s) <= maxReason {
		return s
	}
	i := maxReason
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// deadMarker is the DEAD marker of a SendDead.
func (g *Group) deadMarker(a Action) *envelope.Envelope {
	marker := g.envelope(envelope.KindDeadLetter, nil)
	marker.Correlation, marker.Epoch, marker.Attempt = a.Event, a.Epoch, a.Attempt
	marker.Error = &envelope.Error{Message: clipReason(strings.Join(a.Reasons, "; "))}
	return marker
}

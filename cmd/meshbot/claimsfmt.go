package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
)

// How the lines of anycast delivery (claims, acks, nacks, dead markers) and
// the events of a dead-letter topic are shown by tail and decode.

// maxShownItems bounds the events of a claim or ack listed on one line.
const maxShownItems = 6

// itemView is one event of a claim or ack.
type itemView struct {
	Event   string `json:"event"`
	Short   string `json:"short"`
	Epoch   uint64 `json:"epoch"`
	Attempt uint32 `json:"attempt,omitempty"`
}

// deadLetterView is the payload of an event on a dead-letter topic.
type deadLetterView struct {
	Topic    string   `json:"topic"`
	Group    string   `json:"group"`
	Attempts uint32   `json:"attempts"`
	Reasons  []string `json:"reasons,omitempty"`
	// Event is the event given up on, as it was received.
	Event *envView `json:"event"`
}

// isDeadTopic reports whether topic is a dead-letter topic, <topic>._dead.
func isDeadTopic(topic string) bool {
	suffix := claims.DeadTopic("")
	return len(topic) > len(suffix) && strings.HasSuffix(topic, suffix)
}

// decodeAnycast decodes the payload of a claim or ack (its items) and of an
// event on a dead-letter topic. A payload that does not decode is
// reported in PayloadError; nothing here may panic on what the network
// sends.
func (v *envView) decodeAnycast(e *envelope.Envelope) {
	defer func() {
		if r := recover(); r != nil {
			v.Items, v.DeadLetter = nil, nil
			v.PayloadError = fmt.Sprintf("decoding the payload failed: %v", r)
		}
	}()
	switch {
	case e.Kind == envelope.KindClaim || e.Kind == envelope.KindAck:
		items, err := claims.DecodeItems(e.Payload)
		if err != nil {
			v.PayloadError = err.Error()
			return
		}
		v.Items = make([]itemView, len(items))
		for i, it := range items {
			v.Items[i] = itemView{Event: it.Event.String(), Short: it.Event.Short(), Epoch: it.Epoch, Attempt: it.Attempt}
		}
	case e.Kind == envelope.KindEvent && isDeadTopic(e.Topic):
		d, err := claims.DecodeDeadLetter(e.Payload)
		if err != nil {
			v.PayloadError = err.Error()
			return
		}
		v.DeadLetter = &deadLetterView{Topic: d.Topic, Group: d.Group, Attempts: d.Attempts, Reasons: d.Reasons, Event: newEnvView(d.Event)}
	}
}

// anycastKind reports whether e is a line of anycast delivery, whose topic
// is the group.
func (e *envView) anycastKind() bool {
	switch e.Kind {
	case envelope.KindClaim.String(), envelope.KindAck.String(), envelope.KindNack.String(), envelope.KindDeadLetter.String():
		return true
	}
	return false
}

// takeovers counts the events of a claim at an epoch above 1: taken over
// from a member that failed (or that did not claim in time).
func (e *envView) takeovers() int {
	if e.Kind != envelope.KindClaim.String() {
		return 0
	}
	n := 0
	for _, it := range e.Items {
		if it.Epoch > 1 {
			n++
		}
	}
	return n
}

// summary is what a one-line view shows in the payload's place: the events
// of a claim or ack, the event of a nack or dead marker, the dead letter of
// an event on a dead-letter topic; the payload (at most max runes) else.
//
//	group=workers events=3 4776bf3e@1 7c7828ce@2(attempt 2) 0a1b2c3d@1
//	group=workers event=4776bf3e@2
//	DEAD LETTER event=4776bf3e topic=orders.created group=workers attempts=5 reasons="…" payload={"order":1}
func (e *envView) summary(max int) string {
	var b strings.Builder
	switch {
	case e.Kind == envelope.KindClaim.String() || e.Kind == envelope.KindAck.String():
		b.WriteString("group=" + token(e.Topic))
		if e.PayloadError != "" {
			fmt.Fprintf(&b, " MALFORMED payload (%d B): %s", e.PayloadLen, clip(e.PayloadError, 120))
			break
		}
		fmt.Fprintf(&b, " events=%d", len(e.Items))
		for i, it := range e.Items {
			if i == maxShownItems {
				fmt.Fprintf(&b, " +%d more", len(e.Items)-i)
				break
			}
			fmt.Fprintf(&b, " %s@%d", it.Short, it.Epoch)
			if it.Attempt > 1 {
				fmt.Fprintf(&b, "(attempt %d)", it.Attempt)
			}
		}
	case e.Kind == envelope.KindNack.String() || e.Kind == envelope.KindDeadLetter.String():
		b.WriteString("group=" + token(e.Topic))
		event := "-"
		if e.Correlation != "" {
			event = e.Correlation[:8]
		}
		fmt.Fprintf(&b, " event=%s@%d", event, e.Epoch)
		if e.Kind == envelope.KindDeadLetter.String() {
			fmt.Fprintf(&b, " attempts=%d", e.Attempt)
		}
		if e.PayloadLen > 0 {
			b.WriteString(" payload=" + payloadShort(e, 60))
		}
	case e.DeadLetter != nil:
		d := e.DeadLetter
		fmt.Fprintf(&b, "DEAD LETTER event=%s topic=%s group=%s attempts=%d", d.Event.Short, token(d.Topic), token(d.Group), d.Attempts)
		if len(d.Reasons) > 0 {
			fmt.Fprintf(&b, " reasons=%q", clip(strings.Join(d.Reasons, "; "), 160))
		}
		b.WriteString(" payload=" + payloadShort(d.Event, 60))
	case e.PayloadError != "":
		fmt.Fprintf(&b, "MALFORMED dead letter (%d B): %s", e.PayloadLen, clip(e.PayloadError, 120))
	default:
		return payloadShort(e, max)
	}
	return b.String()
}

// anycastFields are the lines decode adds after the payload: each event of
// a claim or ack, the dead letter of an event on a dead-letter topic.
func (e *envView) anycastFields() [][2]string {
	var out [][2]string
	switch {
	case e.Kind == envelope.KindClaim.String() || e.Kind == envelope.KindAck.String():
		if e.PayloadError != "" {
			return [][2]string{{"items", "MALFORMED: " + e.PayloadError}}
		}
		out = append(out, [2]string{"items", fmt.Sprintf("%d %s (group %s)", len(e.Items), plural(len(e.Items), "event", "events"), token(e.Topic))})
		for _, it := range e.Items {
			s := fmt.Sprintf("  %s  epoch %d", it.Event, it.Epoch)
			if it.Attempt > 0 {
				s += fmt.Sprintf(", attempt %d", it.Attempt)
			}
			if e.Kind == envelope.KindClaim.String() && it.Epoch > 1 {
				s += ", takeover"
			}
			out = append(out, [2]string{"", s})
		}
	case e.DeadLetter != nil:
		d := e.DeadLetter
		out = append(out, [2]string{"dead letter", fmt.Sprintf("event %s of topic %s, group %s, given up after %d %s",
			d.Event.ID, token(d.Topic), token(d.Group), d.Attempts, plural(int(d.Attempts), "attempt", "attempts"))})
		reasons := "-"
		if len(d.Reasons) > 0 {
			q := make([]string, len(d.Reasons))
			for i, r := range d.Reasons {
				q[i] = strconv.Quote(r)
			}
			reasons = strings.Join(q, "; ")
		}
		out = append(out, [2]string{"reasons", reasons})
		from := d.Event.Sender.Service
		if d.Event.Sender.Instance != "" {
			from += "/" + d.Event.Sender.Instance
		}
		at := ""
		if d.Event.Time != nil {
			at = ", sent " + d.Event.Time.Format(time.RFC3339Nano)
		}
		out = append(out, [2]string{"original", fmt.Sprintf("%s from %s%s; payload %s", d.Event.Kind, orDash(from), at, payloadFull(d.Event))})
	case e.PayloadError != "":
		out = append(out, [2]string{"dead letter", "MALFORMED: " + e.PayloadError})
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// token makes a name from the wire safe to show as one token: "-" when
// empty, quoted when it holds spaces or control characters.
func token(s string) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == utf8.RuneError }) {
		return strconv.Quote(s)
	}
	return s
}

// clip cuts s to at most n runes.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

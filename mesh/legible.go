package mesh

import (
	"strconv"
	"strings"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/state"
)

// What people read of the node's lines (docs/PROTOCOL.md §3.2): after
// kind, topic, short id and size, an event shows a preview of its payload
// (envelope.Preview); the other kinds a note made here from what their
// payload means — who beats and how loaded it is, which events a claim,
// ack or nack refers to, what a state update writes. Notes are built once
// per envelope sent, from its own fields; they never hold a payload of
// an event, and an encrypted envelope shows nothing (the line builder
// leaves its note out).

// Secret keeps the payload out of the event's line: people in the channel
// see "[secret]" where a preview would be. It hides the payload from eyes
// only, not from anyone who decodes the line: to keep a payload from
// those who can read the channel, encrypt it (Config.Crypter).
func Secret() PublishOption { return func(e *envelope.Envelope) { e.Secret = true } }

// maxNoteIDs is how many event ids a claims note lists before "+N more".
const maxNoteIDs = 3

// humanNote is the note shown in env's lines instead of a payload
// preview, or "" (events: the preview).
func humanNote(env *envelope.Envelope) string {
	switch env.Kind {
	case envelope.KindHeartbeat:
		b, err := heartbeat.Decode(env.Payload)
		if err != nil {
			return ""
		}
		return beatNote(b)
	case envelope.KindClaim, envelope.KindAck:
		items, err := claims.DecodeItems(env.Payload)
		if err != nil {
			return ""
		}
		return itemsNote(env, items)
	case envelope.KindNack:
		return nackNote(env)
	case envelope.KindDeadLetter:
		return "gave up on " + env.Correlation.Short() + " after " + strconv.Itoa(int(env.Attempt)) + " attempts" + reasonNote(env)
	case envelope.KindState:
		return stateNote(env)
	case envelope.KindEvent:
		if strings.HasSuffix(env.Topic, "._dead") {
			return deadLetterNote(env)
		}
	}
	return ""
}

// beatNote: "pricing/x7k2p9 load 0.25, subscribes billing:orders.created, answers quote".
func beatNote(b *heartbeat.Beat) string {
	var s strings.Builder
	s.WriteString(b.Service + "/" + b.Instance + " load " + strconv.FormatFloat(float64(b.Load), 'f', 2, 32))
	if len(b.Subs) > 0 {
		s.WriteString(", subscribes ")
		for i, sub := range b.Subs {
			if i > 0 {
				s.WriteByte(' ')
			}
			if sub.Group != "" {
				s.WriteString(sub.Group + ":")
			}
			s.WriteString(sub.Topic)
		}
	}
	if len(b.Methods) > 0 {
		s.WriteString(", answers " + strings.Join(b.Methods, " "))
	}
	if len(b.Kicked) > 0 {
		s.WriteString(", kicked from")
		for _, k := range b.Kicked {
			s.WriteString(" " + k.Topic)
		}
	}
	return s.String()
}

// itemsNote: "for 7851cd0f (epoch 1, attempt 2, lease 30s)", "done
// 7851cd0f 1a2b3c4d +3 more".
func itemsNote(env *envelope.Envelope, items []claims.Item) string {
	var s strings.Builder
	if env.Kind == envelope.KindClaim {
		s.WriteString("for")
	} else {
		s.WriteString("done")
	}
	for i, it := range items {
		if i == maxNoteIDs {
			s.WriteString(" +" + strconv.Itoa(len(items)-i) + " more")
			break
		}
		s.WriteString(" " + it.Event.Short())
	}
	if env.Kind == envelope.KindClaim && len(items) == 1 {
		s.WriteString(" (epoch " + strconv.FormatUint(items[0].Epoch, 10) + ", attempt " + strconv.Itoa(int(items[0].Attempt)))
		if env.LeaseMillis > 0 {
			s.WriteString(", lease " + (time.Duration(env.LeaseMillis) * time.Millisecond).String())
		}
		s.WriteByte(')')
	}
	return s.String()
}

// nackNote: "failed 7851cd0f (epoch 1), retry in 1s: boom", "released
// 7851cd0f (epoch 2)".
func nackNote(env *envelope.Envelope) string {
	what := "failed "
	if env.Error != nil && env.Error.Code == claims.CodeReleased {
		what = "released "
	}
	s := what + env.Correlation.Short() + " (epoch " + strconv.FormatUint(env.Epoch, 10) + ")"
	if what == "failed " && env.LeaseMillis > 0 {
		s += ", retry in " + (time.Duration(env.LeaseMillis) * time.Millisecond).String()
	}
	return s + reasonNote(env)
}

func reasonNote(env *envelope.Envelope) string {
	if env.Error == nil || env.Error.Message == "" {
		return ""
	}
	return ": " + env.Error.Message
}

// maxStateNote bounds the state payloads a note is made from: a bigger
// update shows its size only.
const maxStateNote = 64 << 10

// stateNote: "v12 put tea coffee +2 more, delete scone".
func stateNote(env *envelope.Envelope) string {
	if len(env.Payload) > maxStateNote {
		return ""
	}
	var u state.Update
	if state.DecodePayload(env.Payload, &u) != nil {
		return ""
	}
	s := "v" + strconv.FormatUint(u.Version, 10)
	if u.Whole {
		s += " whole"
	}
	keys := func(verb string, n int, key func(int) (string, uint64)) {
		if n == 0 {
			return
		}
		s += " " + verb
		for i := range n {
			if i == maxNoteIDs {
				s += " +" + strconv.Itoa(n-i) + " more"
				break
			}
			k, v := key(i)
			s += " " + k + "@" + strconv.FormatUint(v, 10)
		}
	}
	keys("put", len(u.Puts), func(i int) (string, uint64) { return u.Puts[i].Key, u.Puts[i].Version })
	keys("delete", len(u.Deletes), func(i int) (string, uint64) { return u.Deletes[i].Key, u.Deletes[i].Version })
	return s
}

// deadLetterNote: "dead letter of 7851cd0f (orders.created, group
// billing) after 5 attempts: boom". The event's payload is not shown.
func deadLetterNote(env *envelope.Envelope) string {
	d, err := claims.DecodeDeadLetter(env.Payload)
	if err != nil || d.Event == nil {
		return ""
	}
	s := "dead letter of " + d.Event.ID.Short() + " (" + d.Topic + ", group " + d.Group + ") after " + strconv.Itoa(int(d.Attempts)) + " attempts"
	if len(d.Reasons) > 0 {
		s += ": " + d.Reasons[len(d.Reasons)-1]
	}
	return s
}

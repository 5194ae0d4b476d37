package recording

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ergochat/irc-go/ircmsg"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/state"
)

// Rewrite is a payload rewrite for Anonymize: it returns what replaces
// payload, an event's or request's or response's on topic (the method for
// requests and responses), or a state value of domain topic (kind
// envelope.KindState). Returning payload unchanged keeps it.
type Rewrite func(topic string, kind envelope.Kind, payload []byte) []byte

// Anonymize rewrites the payloads of the log's mesh lines with f: events
// (also inside dead letters), requests, responses and the values of state
// updates; heartbeats and claims lines carry no user data and stay as
// they are. Every rewritten envelope keeps its id, sender, time and
// everything but its payload; it is sealed again with signer (nil: sent
// unsigned, its signature dropped — a recorded signature does not cover a
// new payload) and written back in its carrier, its fragments and batch
// lines re-cut as needed, with the original line's prefix and server tags
// (its time; the msgid stays on the line that completes the envelope).
//
// A node replaying an anonymised log trusts it as it would trust its
// lines live: sign with a key of the test's keyring, or leave the test's
// node without RequireSigned. Lines that fail to decode, and encrypted
// payloads (Config.Crypter: nothing in them is readable without the
// mesh's keys), are kept as recorded.
func (l *Log) Anonymize(f Rewrite, signer envelope.Signer) (*Log, error) {
	return l.rewrite(f, signer, false)
}

// Reseal seals every envelope of the log again with signer (nil:
// unsigned), heartbeats and claims lines included, their content
// unchanged: a log recorded in a signed mesh then replays in a test that
// does not hold the mesh's keys (an HMAC key is a secret, and must not be
// committed with the log). Envelopes already sealed as asked are kept as
// they are.
func (l *Log) Reseal(signer envelope.Signer) (*Log, error) { return l.rewrite(nil, signer, true) }

// rewrite rewrites the payloads with f (nil: none) and seals the
// envelopes it changed, or with all every envelope, again with signer.
func (l *Log) rewrite(f Rewrite, signer envelope.Signer, all bool) (*Log, error) {
	lines := l.prepared()
	dec := envelope.NewDecoder(envelope.DecoderConfig{AcceptUnchecked: true})
	drop := make([]bool, len(lines))
	pending := map[string][]int{} // sender/fragment short id → line indexes
	repl := map[int][]Line{}      // line index → the lines replacing it
	for i := range lines {
		line := &lines[i]
		if line.Command() != "PRIVMSG" || len(line.Params()) < 2 {
			continue
		}
		dl := dec.DecodeLine(line.Nick, line.Tags(), line.Text(), line.Time)
		if !dl.Mesh || dl.Err != nil {
			continue
		}
		if dl.Fragment != nil {
			key := line.Nick + "/" + dl.Fragment.Short
			pending[key] = append(pending[key], i)
			continue
		}
		var envs []*envelope.Envelope
		changed := false
		for _, de := range dl.Envelopes {
			if de.Envelope == nil || de.Err != nil {
				envs = nil
				break
			}
			env := *de.Envelope
			if f != nil {
				ch, err := rewriteEnvelope(&env, f)
				if err != nil {
					return nil, fmt.Errorf("recording: line %d: %w", line.N, err)
				}
				changed = changed || ch
			}
			if all && (signer != nil || env.Signature != nil) {
				changed = true
			}
			envs = append(envs, &env)
		}
		if dl.Fragments > 0 && len(dl.Envelopes) == 1 {
			key := line.Nick + "/" + dl.Envelopes[0].Envelope.ID.Short()
			if changed {
				for _, j := range pending[key] {
					drop[j] = true
				}
			}
			delete(pending, key)
		}
		if !changed || envs == nil {
			continue
		}
		r, err := reencode(line, envs, dl.Carrier, signer)
		if err != nil {
			return nil, fmt.Errorf("recording: line %d: %w", line.N, err)
		}
		repl[i] = r
	}
	var result []Line
	for i := range lines {
		switch {
		case drop[i]:
		case repl[i] != nil:
			result = append(result, repl[i]...)
		default:
			result = append(result, lines[i])
		}
	}
	return l.derive(result), nil
}

// rewriteEnvelope applies f to env's payload; it reports whether the
// payload changed.
func rewriteEnvelope(env *envelope.Envelope, f Rewrite) (bool, error) {
	if env.Crypt != nil {
		return false, nil // encrypted: nothing readable to rewrite
	}
	var p []byte
	switch env.Kind {
	case envelope.KindEvent:
		if strings.HasSuffix(env.Topic, claims.DeadTopic("")) {
			d, err := claims.DecodeDeadLetter(env.Payload)
			if err != nil {
				return false, nil // not a dead letter after all: keep it
			}
			ev := *d.Event
			ev.Payload = f(d.Topic, envelope.KindEvent, ev.Payload)
			if bytes.Equal(ev.Payload, d.Event.Payload) {
				return false, nil
			}
			ev.Auth, ev.Signature = nil, nil
			d.Event = &ev
			b, err := claims.EncodeDeadLetter(d)
			if err != nil {
				return false, err
			}
			p = b
			break
		}
		p = f(env.Topic, env.Kind, env.Payload)
	case envelope.KindRequest, envelope.KindResponse:
		p = f(env.Topic, env.Kind, env.Payload)
	case envelope.KindState:
		u, err := state.DecodeUpdate(env, "", "", nil)
		if err != nil {
			return false, nil
		}
		same := true
		for i := range u.Puts {
			v := f(u.Domain, envelope.KindState, u.Puts[i].Value)
			if !bytes.Equal(v, u.Puts[i].Value) {
				u.Puts[i].Value, same = v, false
			}
		}
		if same {
			return false, nil
		}
		b, err := state.EncodePayload(u)
		if err != nil {
			return false, err
		}
		p = b
	default:
		return false, nil
	}
	if bytes.Equal(p, env.Payload) {
		return false, nil
	}
	env.Payload = p
	return true, nil
}

// reencode writes envs back as lines like line: its prefix, target and
// server tags, the carrier c.
func reencode(line *Line, envs []*envelope.Envelope, c envelope.Carrier, signer envelope.Signer) ([]Line, error) {
	sealed := make([][]byte, len(envs))
	for i, env := range envs {
		env.Auth, env.Signature = nil, nil
		s, err := envelope.Seal(env, signer)
		if err != nil {
			return nil, err
		}
		sealed[i] = s
	}
	target := line.Param(0)
	lim := envelope.Limits{TagBytes: envelope.DefaultTagBytes, BodyBytes: envelope.BodyBudget(512, line.Source(), target, 16)}
	var encoded []envelope.Line
	sizes := make([]int, len(sealed))
	for i, s := range sealed {
		sizes[i] = len(s)
	}
	if len(envs) > 1 && c == envelope.CarrierTag && envelope.BatchFits(sizes, lim) {
		bl, err := envelope.EncodeBatchLine(envs, sealed, lim)
		if err != nil {
			return nil, err
		}
		encoded = append(encoded, bl)
	} else {
		for i, env := range envs {
			ls, err := envelope.EncodeLines(env, sealed[i], c, lim)
			if err != nil {
				return nil, err
			}
			encoded = append(encoded, ls...)
		}
	}
	server := map[string]string{}
	for k, v := range line.Tags() {
		if !strings.HasPrefix(k, "+") {
			server[k] = v
		}
	}
	out := make([]Line, len(encoded))
	for i, el := range encoded {
		tags := make(map[string]string, len(server)+len(el.Tags))
		for k, v := range server {
			tags[k] = v
		}
		if id, ok := tags["msgid"]; ok && i < len(encoded)-1 {
			tags["msgid"] = id + "-" + strconv.Itoa(i+1)
		}
		for k, v := range el.Tags {
			tags[k] = v
		}
		params := slices.Clone(line.Params())
		params[len(params)-1] = el.Body
		msg := ircmsg.MakeMessage(tags, line.Source(), line.Command(), params...)
		out[i] = line.withMessage(&msg)
	}
	return out, nil
}

// RedactJSON is a Rewrite for JSON payloads: the values of the named
// fields, at any depth, become "redacted-" and 8 hex digits of their
// SHA-256, so that equal values stay equal (a key a service routes or
// groups by still works) while the values themselves are gone. Payloads
// that are not JSON, and JSON without those fields, are kept. The
// rewritten JSON is compact, its object keys sorted.
func RedactJSON(fields ...string) Rewrite {
	return func(_ string, _ envelope.Kind, p []byte) []byte {
		d := json.NewDecoder(bytes.NewReader(p))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil || d.More() {
			return p
		}
		if !redact(v, fields) {
			return p
		}
		b, err := json.Marshal(v)
		if err != nil {
			return p
		}
		return b
	}
}

// redact replaces the named fields' values in v; it reports whether it
// changed anything.
func redact(v any, fields []string) bool {
	changed := false
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if slices.Contains(fields, k) {
				x[k] = Redacted(fmt.Sprint(val))
				changed = true
				continue
			}
			if redact(val, fields) {
				changed = true
			}
		}
	case []any:
		for _, e := range x {
			if redact(e, fields) {
				changed = true
			}
		}
	}
	return changed
}

// Redacted is the stand-in of a redacted value: "redacted-" and the first
// 8 hex digits of its SHA-256.
func Redacted(value string) string {
	h := sha256.Sum256([]byte(value))
	return "redacted-" + hex.EncodeToString(h[:4])
}

// RedactAll is a Rewrite that replaces every payload by its Redacted
// stand-in: nothing of the data is left, equal payloads stay equal.
func RedactAll() Rewrite {
	return func(_ string, _ envelope.Kind, p []byte) []byte {
		if len(p) == 0 {
			return p
		}
		return []byte(Redacted(string(p)))
	}
}

package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// Line types of lineView.Type.
const (
	typeMesh     = "mesh"     // a complete, accepted envelope
	typeFragment = "fragment" // one fragment of an envelope not complete yet
	typeRejected = "rejected" // a mesh line the decoder refused
	typeHuman    = "human"    // not a mesh line
	typeGap      = "gap"      // the connection dropped: lines may be missing here
)

// lineView is one received line, decoded for people (text) and machines
// (its JSON form, one object per line).
type lineView struct {
	Time      time.Time `json:"time"`
	Channel   string    `json:"channel,omitempty"`
	Topic     string    `json:"topic,omitempty"`
	From      string    `json:"from,omitempty"`
	MsgID     string    `json:"msgid,omitempty"`
	Type      string    `json:"type"`
	Carrier   string    `json:"carrier,omitempty"`
	Text      string    `json:"text,omitempty"`   // human lines: the message
	Reason    string    `json:"reason,omitempty"` // rejected lines: why, in one word
	Error     string    `json:"error,omitempty"`  // rejected lines: the decoder's error
	Fragment  *fragView `json:"fragment,omitempty"`
	Fragments int       `json:"fragments,omitempty"` // lines a reassembled envelope took
	// EnvelopeBytes is the size of the envelope (decode only).
	EnvelopeBytes int      `json:"envelope_bytes,omitempty"`
	Envelope      *envView `json:"envelope,omitempty"`
	Signature     string   `json:"signature,omitempty"` // verified, unsigned, unchecked (decode without keys)
	// Batch is "i/n" for the i-th envelope of a batch line (§3.9).
	Batch string `json:"batch,omitempty"`
}

type fragView struct {
	Short string `json:"short"`
	Index int    `json:"index"`
	Count int    `json:"count"`
	Bytes int    `json:"bytes"` // base64 text in this line
}

type envView struct {
	Version       uint8      `json:"version"`
	Kind          string     `json:"kind"`
	KindNum       uint8      `json:"kind_num"`
	ID            string     `json:"id"`
	Short         string     `json:"short"`
	Time          *time.Time `json:"time,omitempty"`
	Sender        senderView `json:"sender"`
	Topic         string     `json:"topic,omitempty"`
	Correlation   string     `json:"correlation,omitempty"`
	PayloadLen    int        `json:"payload_len"`
	PayloadText   *string    `json:"payload_text,omitempty"`   // when valid UTF-8
	PayloadBase64 string     `json:"payload_base64,omitempty"` // otherwise
	ContentType   string     `json:"content_type,omitempty"`
	Traceparent   string     `json:"traceparent,omitempty"`
	Epoch         uint64     `json:"epoch,omitempty"`
	LeaseMillis   uint32     `json:"lease_ms,omitempty"`
	Attempt       uint32     `json:"attempt,omitempty"`
	Deadline      *time.Time `json:"deadline,omitempty"`
	Error         *errView   `json:"error,omitempty"`
	Auth          *authView  `json:"auth,omitempty"`
	SignatureLen  int        `json:"signature_len,omitempty"`
	// Items are the events of a claim or ack, decoded from the payload.
	Items []itemView `json:"items,omitempty"`
	// DeadLetter is the decoded payload of an event on a <topic>._dead
	// topic.
	DeadLetter *deadLetterView `json:"dead_letter,omitempty"`
	// PayloadError says why the payload of a claim, an ack or a dead
	// letter does not decode.
	PayloadError string `json:"payload_error,omitempty"`
}

type senderView struct {
	Service     string `json:"service"`
	Instance    string `json:"instance,omitempty"`
	Incarnation uint64 `json:"incarnation,omitempty"`
}

type errView struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

type authView struct {
	Alg   string `json:"alg"`
	KeyID string `json:"key_id"`
}

func newEnvView(e *envelope.Envelope) *envView {
	v := &envView{
		Version: e.Version, Kind: e.Kind.String(), KindNum: uint8(e.Kind),
		ID: e.ID.String(), Short: e.ID.Short(),
		Sender:      senderView{e.Sender.Service, e.Sender.Instance, e.Sender.Incarnation},
		Topic:       e.Topic,
		PayloadLen:  len(e.Payload),
		ContentType: e.Headers.ContentType, Traceparent: e.Headers.Traceparent,
		Epoch: e.Epoch, LeaseMillis: e.LeaseMillis, Attempt: e.Attempt,
		SignatureLen: len(e.Signature),
	}
	if e.Time != 0 {
		t := time.Unix(0, e.Time).UTC()
		v.Time = &t
	}
	if !e.Correlation.IsZero() {
		v.Correlation = e.Correlation.String()
	}
	if len(e.Payload) > 0 {
		v.PayloadText, v.PayloadBase64 = splitPayload(e.Payload)
	}
	if e.Deadline != 0 {
		t := time.Unix(0, e.Deadline).UTC()
		v.Deadline = &t
	}
	if e.Error != nil {
		v.Error = &errView{e.Error.Code, e.Error.Message}
	}
	if e.Auth != nil {
		v.Auth = &authView{e.Auth.Alg.String(), e.Auth.KeyID}
	}
	v.decodeAnycast(e)
	return v
}

// observationView shows what Node.Observe reports; the node's decoder did
// the decoding.
func observationView(ob mesh.Observation) *lineView {
	v := &lineView{Time: ob.Time, Channel: ob.Channel, Topic: ob.Topic, From: ob.From, MsgID: ob.MsgID}
	if ob.Gap {
		v.Type = typeGap
		return v
	}
	if ob.Carrier != 0 {
		v.Carrier = ob.Carrier.String()
	}
	switch {
	case !ob.Mesh:
		v.Type, v.Text = typeHuman, ob.Body
	case ob.Err != nil:
		v.Type, v.Reason, v.Error = typeRejected, envelope.Reason(ob.Err), ob.Err.Error()
		v.Text = legible(ob.Body)
	case ob.Envelope == nil:
		v.Type = typeFragment
		if f := ob.Fragment; f != nil {
			v.Fragment = &fragView{Short: f.Short, Index: f.Index, Count: f.Count, Bytes: f.Bytes}
		}
		v.Text = legible(ob.Body)
	default:
		v.Type, v.Envelope, v.Fragments = typeMesh, newEnvView(ob.Envelope), ob.Fragments
		if ob.Signature != envelope.SigUnknown {
			v.Signature = ob.Signature.String()
		}
	}
	return v
}

// text renders v on one line for people:
//
//	15:04:05.000  orders.created  orders-1        event  1a2b3c4d  {"order":1}  ct=application/json
//	15:04:05.000  orders.created  <bob> hello
func (v *lineView) text() string {
	var b strings.Builder
	b.WriteString(v.Time.Local().Format("15:04:05.000"))
	b.WriteString("  ")
	pad(&b, v.Topic, 16)
	switch v.Type {
	case typeHuman:
		fmt.Fprintf(&b, "<%s> %s", v.From, clean(v.Text))
		return b.String()
	case typeGap:
		b.WriteString("-- connection to the server lost: lines may be missing here --")
		return b.String()
	}
	pad(&b, v.From, 16)
	switch v.Type {
	case typeRejected:
		fmt.Fprintf(&b, "REJECTED %s: %s", v.Reason, v.Error)
		if v.Text != "" {
			fmt.Fprintf(&b, "  [%s]", v.Text)
		}
	case typeFragment:
		b.WriteString("frag  ")
		if f := v.Fragment; f != nil {
			fmt.Fprintf(&b, " %s  fragment %d/%d (%d B)", f.Short, f.Index, f.Count, f.Bytes)
		}
		if v.Text != "" {
			fmt.Fprintf(&b, "  [%s]", v.Text)
		}
	case typeMesh:
		e := v.Envelope
		fmt.Fprintf(&b, "%-6s %s  %s", e.Kind, e.Short, e.summary(160))
		for _, x := range e.extras(v.Topic) {
			b.WriteString("  ")
			b.WriteString(x)
		}
		if v.Fragments > 0 {
			fmt.Fprintf(&b, "  (%d lines)", v.Fragments)
		}
	}
	return b.String()
}

// extras are the fields worth a glance besides the payload: claim and ack
// fields, errors, headers, the signature. The fields of a claim, ack, nack
// or dead marker that its summary shows already are left out.
func (e *envView) extras(channelTopic string) []string {
	var out []string
	anycast := e.anycastKind()
	if e.Topic != "" && e.Topic != channelTopic && !anycast {
		out = append(out, "topic="+e.Topic)
	}
	if e.Correlation != "" && !anycast {
		out = append(out, "corr="+e.Correlation[:8])
	}
	if e.Epoch != 0 && !anycast {
		out = append(out, "epoch="+strconv.FormatUint(e.Epoch, 10))
	}
	if e.Attempt != 0 && !anycast {
		out = append(out, "attempt="+strconv.FormatUint(uint64(e.Attempt), 10))
	}
	if e.LeaseMillis != 0 {
		name := "lease="
		if e.Kind == envelope.KindNack.String() {
			name = "retry-in="
		}
		out = append(out, name+(time.Duration(e.LeaseMillis)*time.Millisecond).String())
	}
	if t := e.takeovers(); t == 1 && len(e.Items) == 1 {
		out = append(out, "takeover")
	} else if t > 0 {
		out = append(out, "takeovers="+strconv.Itoa(t))
	}
	if e.Deadline != nil {
		out = append(out, "deadline="+e.Deadline.Local().Format("15:04:05.000"))
	}
	if e.Error != nil {
		switch {
		case e.Kind == envelope.KindNack.String() && e.Error.Code == 0:
			out = append(out, fmt.Sprintf("reason=%q", clip(e.Error.Message, 160)))
		case e.Kind == envelope.KindDeadLetter.String() && e.Error.Code == 0:
			out = append(out, fmt.Sprintf("reasons=%q", clip(e.Error.Message, 160)))
		default:
			out = append(out, fmt.Sprintf("error=%d %q", e.Error.Code, e.Error.Message))
		}
	}
	if e.ContentType != "" {
		out = append(out, "ct="+e.ContentType)
	}
	if e.Auth != nil {
		out = append(out, "signed="+e.Auth.Alg+":"+e.Auth.KeyID)
	}
	return out
}

func pad(b *strings.Builder, s string, w int) {
	b.WriteString(s)
	b.WriteString(strings.Repeat(" ", max(1, w-utf8.RuneCountInString(s))))
	b.WriteString(" ")
}

// payloadShort renders a payload on one line: text when it is printable
// UTF-8 (quoted when it holds line breaks or tabs), else hex with its
// length; at most max runes of text or 32 bytes of hex.
func payloadShort(e *envView, max int) string {
	switch {
	case e.PayloadLen == 0:
		return "(empty)"
	case e.PayloadText != nil && printable(*e.PayloadText, true):
		s := *e.PayloadText
		if !printable(s, false) {
			s = strconv.Quote(s)
		}
		if utf8.RuneCountInString(s) > max {
			r := []rune(s)
			s = string(r[:max]) + fmt.Sprintf("… (%d B)", e.PayloadLen)
		}
		return s
	}
	raw := payloadBytes(e)
	const maxHex = 32
	if len(raw) > maxHex {
		return fmt.Sprintf("hex:%s… (%d B)", hex.EncodeToString(raw[:maxHex]), len(raw))
	}
	return fmt.Sprintf("hex:%s (%d B)", hex.EncodeToString(raw), len(raw))
}

// splitPayload gives a payload for JSON output: as text when it is valid
// UTF-8 (an empty payload is the empty text), otherwise in standard base64.
// Exactly one of the two is set.
func splitPayload(p []byte) (text *string, b64 string) {
	if utf8.Valid(p) {
		s := string(p)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(p)
}

// payloadBytes is the inverse of splitPayload.
func payloadBytes(e *envView) []byte {
	if e.PayloadText != nil {
		return []byte(*e.PayloadText)
	}
	b, _ := base64.StdEncoding.DecodeString(e.PayloadBase64)
	return b
}

// printable reports whether s is text a terminal shows as is; with
// allowSpace, line breaks and tabs are allowed too.
func printable(s string, allowSpace bool) bool {
	for _, r := range s {
		if r == utf8.RuneError || (!unicode.IsPrint(r) && !(allowSpace && (r == '\n' || r == '\r' || r == '\t'))) {
			return false
		}
	}
	return true
}

// clean makes a human line safe for a terminal: IRC formatting codes and
// other control characters are dropped.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// legible returns the part of a mesh line's text a person can read: the tag
// carrier's summary, or the body carrier's header without the base64 data
// (the last field of a format 2 line).
func legible(body string) string {
	if strings.HasPrefix(body, envelope.BodyMarker+" ") {
		if i := strings.LastIndexByte(body, ' '); i > 0 {
			body = body[:i]
		}
	} else if strings.HasPrefix(body, "~m") {
		tok := strings.SplitN(body, " ", 6)
		n := 4 // ~m1 kind topic short
		if len(tok) > 4 && strings.Contains(tok[4], "/") && len(tok) == 6 {
			n = 5 // and i/n
		}
		body = strings.Join(tok[:min(n, len(tok))], " ")
	}
	return clean(body)
}

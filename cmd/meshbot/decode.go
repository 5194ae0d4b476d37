package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/envelope"
)

// More line types, for decode.
const (
	typeOther   = "other"   // an IRC line other than PRIVMSG
	typeInvalid = "invalid" // not an IRC line at all
)

// Signature states of a decoded envelope, as lineView.Signature shows them
// (envelope.SigState's names).
var (
	sigVerified  = envelope.SigVerified.String()
	sigUnchecked = envelope.SigUnchecked.String() // signed, but no keyring to check it
)

// maxDecodeInput bounds what decode reads from stdin.
const maxDecodeInput = 256 << 20

func newDecodeCmd(st *state) *cobra.Command {
	var (
		trust  trustFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "decode [LINE|-]",
		Short: "Decode a recorded IRC line and print its envelope",
		Long: `Decode LINE and print its envelope with every field, or say why it is not
one. LINE is a raw IRC line as received and recorded (with its tags:
"@tags :prefix PRIVMSG target :text"), or just the text of a PRIVMSG
(enough for the body carrier, "~m1 ...").

With "-", or with no LINE and input piped in, every line of stdin is decoded
(for example a log written by 'meshbot tail --raw'); fragments of one
envelope are reassembled across lines, so the envelope is printed with its
last fragment.

The lines of anycast delivery are decoded too: a claim or ack lists each of
its events (id, epoch, attempt, and "takeover" for a claim at an epoch above
1), and an event on a dead-letter topic (TOPIC._dead) shows the event given
up on, its attempts and the reasons. A payload that does not decode is
marked MALFORMED.

Without --keyring a signature is shown but not checked. The exit code is 1
when a line is rejected (malformed, bad signature, ...) or is not an IRC
line; lines that are not mesh lines are reported as such, with exit code 0.`,
		Example: `  meshbot decode '~m1 event orders.created 1a2b3c4d omkBAQIBA1Ag...'
  meshbot decode '@+meshbot/e=omkBAQIB...;msgid=x :orders-1!o@h PRIVMSG #mesh.orders.created :mesh event orders.created 1a2b3c4d (87 B)'
  meshbot tail orders.created --raw > orders.log; meshbot decode - < orders.log --keyring mesh.keyring
  meshbot decode - --json < orders.log | jq .envelope.kind`,
		Args: nargs(0, 1, "[LINE|-]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			_, keys, _, err := trust.load()
			if err != nil {
				return err
			}
			var lines []string
			switch {
			case len(a) == 1 && a[0] != "-":
				lines = []string{a[0]}
			case len(a) == 0 && isTerminal(st.env.stdin):
				return usagef("decode: no LINE: give it as an argument, or pipe lines in")
			default:
				if lines, err = readLines(st.env.stdin); err != nil {
					return err
				}
			}
			d := newLineDecoder(keys, trust.requireSigned)
			failed := 0
			for i, line := range lines {
				for _, v := range d.decode(line, time.Now()) {
					if v.Type == typeRejected || v.Type == typeInvalid {
						failed++
					}
					if asJSON {
						b, _ := json.Marshal(v)
						fmt.Fprintln(st.env.stdout, string(b))
						continue
					}
					if len(lines) > 1 {
						if i > 0 {
							fmt.Fprintln(st.env.stdout)
						}
						fmt.Fprintf(st.env.stdout, "line %d: ", i+1)
					}
					writeDecoded(st.env.stdout, v)
				}
			}
			if failed > 0 {
				if len(lines) == 1 {
					return errSilent
				}
				return fmt.Errorf("%d of %d lines rejected", failed, len(lines))
			}
			return nil
		},
	}
	f := cmd.Flags()
	trust.add(f, false)
	f.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	return cmd
}

// errSilent fails a command whose output already said why.
var errSilent = errors.New("")

// readLines reads the non-empty lines of r.
func readLines(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(io.LimitReader(r, maxDecodeInput))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if line := strings.TrimRight(sc.Text(), "\r\n"); strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	return out, nil
}

// lineDecoder decodes lines one by one with the library's decoder, which
// reassembles fragments across them. Without keys it shows signed
// envelopes unchecked; with keys it verifies them.
type lineDecoder struct {
	dec *envelope.Decoder
}

func newLineDecoder(keys *envelope.Keyring, requireSigned bool) *lineDecoder {
	return &lineDecoder{dec: envelope.NewDecoder(envelope.DecoderConfig{
		Verifier:        &envelope.Verifier{Keys: keys, RequireSigned: requireSigned},
		AcceptUnchecked: true, // decode shows lines; it acts on none
	})}
}

// decode decodes a raw IRC line, or the bare text of a PRIVMSG, into one
// view, or one view per envelope of a batch line.
func (d *lineDecoder) decode(raw string, now time.Time) []*lineView {
	v := &lineView{}
	tags, text := map[string]string(nil), raw
	if looksLikeIRC(raw) {
		msg, err := ircmsg.ParseLine(raw)
		if err != nil {
			v.Type, v.Error = typeInvalid, fmt.Sprintf("not an IRC line: %v", err)
			return []*lineView{v}
		}
		v.From = msg.Nick()
		if msg.Command != "PRIVMSG" || len(msg.Params) < 2 {
			v.Type, v.Text = typeOther, msg.Command
			return []*lineView{v}
		}
		tags, text = msg.AllTags(), msg.Params[1]
		v.Channel = msg.Params[0]
		_, v.MsgID = msg.GetTag("msgid")
		if _, t := msg.GetTag("time"); t != "" {
			if st, err := time.Parse(time.RFC3339Nano, t); err == nil {
				v.Time, now = st, st // reassemble on the recorded clock
			}
		}
	}
	sender := v.From
	if sender == "" {
		sender = "-"
	}
	return decodedViews(v, d.dec.DecodeLine(sender, tags, text, now), text)
}

// decodedViews fills v, which holds the line's IRC context, from what the
// decoder made of the line's text: one view, or one per envelope of a
// batch line.
func decodedViews(v *lineView, l envelope.DecodedLine, text string) []*lineView {
	if l.Carrier != 0 {
		v.Carrier = l.Carrier.String()
	}
	v.Fragments = l.Fragments
	switch {
	case !l.Mesh:
		v.Type, v.Text = typeHuman, text
		return []*lineView{v}
	case l.Err != nil:
		return []*lineView{rejected(v, l.Err, legible(text))}
	case l.Fragment != nil:
		f := l.Fragment
		v.Type = typeFragment
		v.Fragment = &fragView{Short: f.Short, Index: f.Index, Count: f.Count, Bytes: f.Bytes}
		v.Text = legible(text)
		return []*lineView{v}
	}
	out := make([]*lineView, 0, len(l.Envelopes))
	for i, de := range l.Envelopes {
		e := *v
		if len(l.Envelopes) > 1 {
			e.Batch = fmt.Sprintf("%d/%d", i+1, len(l.Envelopes))
		}
		out = append(out, envelopeView(&e, de))
	}
	return out
}

// envelopeView fills v with one envelope of a line: shown whenever it
// decodes, also when it was rejected.
func envelopeView(v *lineView, de envelope.DecodedEnvelope) *lineView {
	if de.Envelope != nil {
		v.Envelope = newEnvView(de.Envelope)
		v.EnvelopeBytes = len(de.Sealed)
	}
	if de.Err != nil {
		return rejected(v, de.Err, "")
	}
	v.Type, v.Signature = typeMesh, de.Signature.String()
	return v
}

func rejected(v *lineView, err error, text string) *lineView {
	v.Type, v.Reason, v.Error, v.Text = typeRejected, envelope.Reason(err), err.Error(), text
	return v
}

// looksLikeIRC tells a raw IRC line from the bare text of a PRIVMSG.
func looksLikeIRC(s string) bool {
	if strings.HasPrefix(s, "@") || strings.HasPrefix(s, ":") {
		return true
	}
	cmd, _, _ := strings.Cut(s, " ")
	return strings.EqualFold(cmd, "PRIVMSG") || strings.EqualFold(cmd, "NOTICE")
}

// writeDecoded prints a decoded line for people.
func writeDecoded(w io.Writer, v *lineView) {
	where := ""
	if v.From != "" {
		where += " from " + v.From
	}
	if v.Channel != "" {
		where += " to " + v.Channel
	}
	if v.MsgID != "" {
		where += " (msgid " + v.MsgID + ")"
	}
	switch v.Type {
	case typeInvalid:
		fmt.Fprintln(w, v.Error)
	case typeOther:
		fmt.Fprintf(w, "not a mesh line: a %s, not a PRIVMSG%s\n", v.Text, where)
	case typeHuman:
		fmt.Fprintf(w, "not a mesh line%s: %q\n", where, v.Text)
	case typeFragment:
		fmt.Fprintf(w, "fragment %d/%d of envelope %s (%s carrier, %d B of base64)%s; the envelope is not complete yet\n",
			v.Fragment.Index, v.Fragment.Count, v.Fragment.Short, v.Carrier, v.Fragment.Bytes, where)
	case typeRejected:
		fmt.Fprintf(w, "rejected mesh line (%s)%s: %s\n", v.Reason, where, v.Error)
		if v.Envelope != nil {
			writeEnvelope(w, v)
		} else if v.Text != "" {
			fmt.Fprintf(w, "  it reads: %s\n", v.Text)
		}
	case typeMesh:
		from := ""
		if v.Fragments > 0 {
			from = fmt.Sprintf(", reassembled from %d fragments", v.Fragments)
		}
		if v.Batch != "" {
			from += ", envelope " + v.Batch + " of a batch"
		}
		fmt.Fprintf(w, "mesh line (%s carrier)%s: envelope of %d B%s\n", v.Carrier, where, v.EnvelopeBytes, from)
		writeEnvelope(w, v)
	}
}

// writeEnvelope prints every field of the envelope, "-" for those unset.
func writeEnvelope(w io.Writer, v *lineView) {
	e := v.Envelope
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	num := func(n uint64) string {
		if n == 0 {
			return "-"
		}
		return strconv.FormatUint(n, 10)
	}
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339Nano)
	}
	field := func(name, value string) { fmt.Fprintf(w, "  %-13s %s\n", name, value) }
	field("version", strconv.Itoa(int(e.Version)))
	field("kind", fmt.Sprintf("%s (%d)", e.Kind, e.KindNum))
	field("id", e.ID+" (short "+e.Short+")")
	field("time", at(e.Time))
	field("sender", fmt.Sprintf("service %s, instance %s, incarnation %s", dash(e.Sender.Service), dash(e.Sender.Instance), num(e.Sender.Incarnation)))
	topic := dash(e.Topic)
	if e.anycastKind() && e.Topic != "" {
		topic += " (the anycast group)"
	}
	field("topic", topic)
	field("correlation", dash(e.Correlation))
	field("payload", payloadFull(e))
	for _, f := range e.anycastFields() {
		field(f[0], f[1])
	}
	field("content-type", dash(e.ContentType))
	field("traceparent", dash(e.Traceparent))
	field("epoch", num(e.Epoch))
	lease := "-"
	if e.LeaseMillis != 0 {
		lease = (time.Duration(e.LeaseMillis) * time.Millisecond).String()
	}
	if e.Kind == envelope.KindNack.String() {
		field("retry-in", lease)
	} else {
		field("lease", lease)
	}
	field("attempt", num(uint64(e.Attempt)))
	field("deadline", at(e.Deadline))
	errText := "-"
	if e.Error != nil {
		errText = fmt.Sprintf("%d %q", e.Error.Code, e.Error.Message)
	}
	field("error", errText)
	auth := "-"
	if e.Auth != nil {
		auth = fmt.Sprintf("%s, key %q", e.Auth.Alg, e.Auth.KeyID)
	}
	field("auth", auth)
	sig := "none"
	if e.SignatureLen > 0 {
		sig = fmt.Sprintf("%d B", e.SignatureLen)
	}
	switch {
	case v.Type == typeRejected:
		sig += ", REJECTED: " + v.Error
	case v.Signature == sigVerified:
		sig += ", verified with the keyring"
	case v.Signature == sigUnchecked:
		sig += ", not checked (no --keyring)"
	}
	field("signature", sig)
}

// payloadFull renders a whole payload: text when printable (quoted when it
// holds line breaks), else hex (the first 512 bytes).
func payloadFull(e *envView) string {
	if e.PayloadLen == 0 {
		return "-"
	}
	if e.PayloadText != nil && printable(*e.PayloadText, true) {
		s := *e.PayloadText
		if !printable(s, false) {
			s = strconv.Quote(s)
		}
		return fmt.Sprintf("%d B, text: %s", e.PayloadLen, s)
	}
	raw := payloadBytes(e)
	const maxHex = 512
	if len(raw) > maxHex {
		return fmt.Sprintf("%d B, hex: %s…", len(raw), hex.EncodeToString(raw[:maxHex]))
	}
	return fmt.Sprintf("%d B, hex: %s", len(raw), hex.EncodeToString(raw))
}

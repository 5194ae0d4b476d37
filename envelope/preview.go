package envelope

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The human part of a mesh line (docs/PROTOCOL.md §3.2–3.4): after kind,
// topic, short id and size, a line shows people what the envelope says —
// a printable preview of an event's payload, or the note its sender set
// (Envelope.Human: a heartbeat's service and load, the events a claim
// refers to). Nothing of an encrypted envelope is shown beyond its
// routing fields, and nothing of a payload its sender marked Secret.
// Receivers never read this text: it is for people only, and building it
// is the only cost it adds (a bounded scan of the payload's start).

// MaxPreview bounds the human text of one line, in bytes, whatever room
// the line has left.
const MaxPreview = 200

// previewScan bounds the bytes of a payload Preview examines: a long
// payload costs no more than a short one.
const previewScan = 1024

// SecretMark stands for the payload of an envelope whose sender marked it
// Secret.
const SecretMark = "[secret]"

// Preview renders payload for people in at most max bytes: text (UTF-8)
// on one line, with IRC formatting codes (bold, colours, ...), explicit
// bidirectional controls and invisible format characters removed, other
// control characters and line breaks as single spaces, cut on a character
// boundary with "…" when longer; or, for a payload that is not text,
// "[binary CONTENT-TYPE]". A payload is text when it is valid UTF-8 with
// few control characters and its content type, if any, is a text type; a
// text content type lets invalid bytes through as U+FFFD. An empty payload,
// or max under 8, gives "".
func Preview(payload []byte, contentType string, max int) string {
	if len(payload) == 0 || max < 8 {
		return ""
	}
	p := payload
	if len(p) > previewScan {
		p = p[:previewScan]
	}
	textType, typed := textContentType(contentType)
	if typed && !textType {
		return binaryNote(contentType, max)
	}
	if len(payload) <= max && plainASCII(payload) && payload[0] != ' ' && payload[len(payload)-1] != ' ' {
		return string(payload) // the common case: short plain text, shown as is
	}
	if !looksText(p, len(p) < len(payload), textType) {
		return binaryNote(contentType, max)
	}
	return clean(p, max, len(p) < len(payload))
}

// Legible makes s (a note, a reason, a name) safe to show in a line, as
// Preview shows text: one line, no formatting or control characters, at
// most max bytes.
func Legible(s string, max int) string {
	if max <= 0 || s == "" {
		return ""
	}
	if len(s) > previewScan {
		s = s[:previewScan]
		return clean([]byte(s), max, true)
	}
	if plainASCII(s) && len(s) <= max {
		return strings.TrimSpace(s)
	}
	return clean([]byte(s), max, false)
}

// plainASCII reports whether s holds printable ASCII only, without two
// spaces in a row.
func plainASCII[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' || s[i] == ' ' && i > 0 && s[i-1] == ' ' {
			return false
		}
	}
	return true
}

// textContentType reports whether ct names a text type; typed is false
// when ct is empty (then the payload's bytes decide).
func textContentType(ct string) (text, typed bool) {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	if ct == "" {
		return false, false
	}
	if strings.HasPrefix(ct, "text/") || strings.HasSuffix(ct, "+json") || strings.HasSuffix(ct, "+xml") {
		return true, true
	}
	switch ct {
	case "application/json", "application/xml", "application/yaml", "application/x-yaml",
		"application/x-ndjson", "application/javascript", "application/x-www-form-urlencoded":
		return true, true
	}
	return false, true
}

// looksText reports whether p reads as text: valid UTF-8 (a character cut
// at the end of a cut payload aside; any invalid bytes when lenient) and at
// most one control character in 4 characters, IRC formatting codes and
// whitespace aside. A NUL byte makes it binary.
func looksText(p []byte, cut, lenient bool) bool {
	runes, controls := 0, 0
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			runes++
			switch {
			case c == 0:
				return false
			case c < ' ' && !isFormatting(c) && c != '\t' && c != '\n' && c != '\r', c == 0x7f:
				controls++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			if cut && !utf8.FullRune(p[i:]) {
				break // a character cut by the scan's bound
			}
			if !lenient {
				return false
			}
		}
		runes++
		if r >= 0x80 && r < 0xa0 {
			controls++
		}
		i += size
	}
	return controls*4 <= runes
}

// isFormatting reports whether c is an IRC formatting code: bold, colour,
// hex colour, reset, monospace, reverse, italics, strikethrough, underline.
func isFormatting(c byte) bool {
	switch c {
	case 0x02, 0x03, 0x04, 0x0f, 0x11, 0x16, 0x1d, 0x1e, 0x1f:
		return true
	}
	return false
}

// clean writes the text of p on one line, in at most limit bytes (see
// Preview). more says p is the start of a longer text.
func clean(p []byte, limit int, more bool) string {
	var b strings.Builder
	b.Grow(min(len(p), limit))
	space := false // a space is due before the next character
	cut := false
	for i := 0; i < len(p); {
		c := p[i]
		if c > ' ' && c < 0x7f {
			// A run of printable ASCII, written at once.
			j := i + 1
			for j < len(p) && p[j] > ' ' && p[j] < 0x7f {
				j++
			}
			if space && b.Len()+1 < limit {
				b.WriteByte(' ')
				space = false
			}
			if room := limit - b.Len(); space || j-i > room {
				if !space {
					b.Write(p[i : i+room])
				}
				cut = true
				break
			}
			b.Write(p[i:j])
			i = j
			continue
		}
		var r rune
		size := 1
		if c < utf8.RuneSelf {
			r = rune(c)
			switch {
			case c == 0x03: // colour: \x03[fg[,bg]], one or two digits each
				i = skipColour(p, i+1, isDigit, 2)
				continue
			case c == 0x04: // hex colour: \x04[rrggbb[,rrggbb]]
				i = skipColour(p, i+1, isHex, 6)
				continue
			case isFormatting(c):
				i++
				continue
			case c < ' ' || c == 0x7f:
				space = b.Len() > 0
				i++
				continue
			case c == ' ':
				space = b.Len() > 0
				i++
				continue
			}
		} else {
			r, size = utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size == 1 && more && !utf8.FullRune(p[i:]) {
				break // the scan cut this character
			}
			switch {
			case r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029, unicode.IsSpace(r):
				space = b.Len() > 0
				i += size
				continue
			case unicode.Is(unicode.Cf, r) && r != 0x200c && r != 0x200d:
				// Bidirectional controls (which could reorder the rest
				// of the line), zero-width and other invisible format
				// characters; the joiners stay (emoji, Persian).
				i += size
				continue
			}
		}
		need := size
		if r == utf8.RuneError && size == 1 {
			need = len(string(utf8.RuneError))
		}
		if space {
			need++
		}
		if b.Len()+need > limit {
			cut = true
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError) // an invalid byte, shown as such
		} else {
			b.Write(p[i : i+size])
		}
		i += size
	}
	if !cut && !more {
		return b.String()
	}
	// Make room for the ellipsis on a character boundary.
	s := b.String()
	const ellipsis = "…"
	if limit < len(ellipsis) {
		return ""
	}
	for len(s)+len(ellipsis) > limit {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return strings.TrimRight(s, " ") + ellipsis
}

// skipColour skips the parameters of a colour code from i: up to n digits
// (ok), then optionally a comma and up to n more. It returns the index
// after them.
func skipColour(p []byte, i int, ok func(byte) bool, n int) int {
	j := i
	for j < len(p) && j-i < n && ok(p[j]) {
		j++
	}
	if j > i && j+1 < len(p) && p[j] == ',' && ok(p[j+1]) {
		k := j + 1
		for k < len(p) && k-(j+1) < n && ok(p[k]) {
			k++
		}
		return k
	}
	return j
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// binaryNote shows a payload that is not text: its content type (printable
// characters only, cut to 64 bytes).
func binaryNote(contentType string, max int) string {
	ct := strings.Map(func(r rune) rune {
		if r > ' ' && r < 0x7f {
			return r
		}
		return -1
	}, contentType)
	if len(ct) > 64 {
		ct = ct[:64]
	}
	s := "[binary]"
	if ct != "" {
		s = "[binary " + ct + "]"
	}
	if len(s) > max {
		return "[binary]"[:min(len("[binary]"), max)]
	}
	return s
}

// humanText is the human part of env's lines after the size, in at most
// max bytes (MaxPreview at most): nothing for an encrypted envelope;
// SecretMark for a secret one; the sender's note; or, for an event, the
// payload's preview.
func (e *Envelope) humanText(max int) string {
	max = min(max, MaxPreview)
	switch {
	case max < 8 || e.Encrypted():
		return ""
	case e.Secret:
		return SecretMark
	case e.Human != "":
		return Legible(e.Human, max)
	case e.Kind == KindEvent:
		return Preview(e.Payload, e.Headers.ContentType, max)
	}
	return ""
}

package envelope

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Carrier is how envelope bytes travel in an IRC line.
type Carrier uint8

const (
	// CarrierTag puts base64 CBOR in the client-only tag +meshbot/e and a
	// short human summary in the PRIVMSG text. Needs the message-tags
	// capability; roomy (about 4 KB per line) and legible.
	CarrierTag Carrier = 1
	// CarrierBody puts base64 CBOR at the end of the PRIVMSG text, behind
	// the marker and the legible summary "~m2 kind topic shortid (n B)
	// text". The fallback for servers without message-tags (ngIRCd).
	CarrierBody Carrier = 2
)

func (c Carrier) String() string {
	switch c {
	case CarrierTag:
		return "tag"
	case CarrierBody:
		return "body"
	}
	return "carrier" + strconv.Itoa(int(c))
}

// Wire names of the line format (docs/PROTOCOL.md §3).
const (
	// TagData holds base64 CBOR (a whole envelope or one fragment of it).
	TagData = "+meshbot/e"
	// TagFragment holds "shortid:index/count" on fragment lines.
	TagFragment = "+meshbot/f"
	// BodyMarker starts every body-carrier line this build writes; the
	// digit is the line format version. Format 2 adds the size and the
	// human text before the data (docs/PROTOCOL.md §3.3).
	BodyMarker = "~m2"
	// BodyMarkerV1 is the first body format, without the human text;
	// still read.
	BodyMarkerV1 = "~m1"
	// SummaryPrefix starts the human summary of a tag-carrier line.
	SummaryPrefix = "mesh"
)

// b64 is the text encoding of envelope bytes: URL alphabet, no padding, so
// that data never contains characters that need escaping in a tag value or
// that could be mistaken for a token separator ('/', ' ').
var b64 = base64.RawURLEncoding

// Line is one IRC message to send: client-only tags (nil for the body
// carrier) and the PRIVMSG text.
type Line struct {
	Tags map[string]string
	Body string
}

// Frame is the mesh part of one received line.
type Frame struct {
	Carrier Carrier
	// Short is the envelope's short id (fragments only; "" otherwise).
	Short string
	// Index (from 1) and Count of this fragment; Count is 1 for a whole
	// envelope.
	Index, Count int
	// Data is base64 text: the whole envelope or this fragment's slice.
	Data string
}

// ParseLine looks at a received PRIVMSG's tags and text. mesh is false (and
// err nil) for lines that are not meshbot lines, such as human chatter. A
// line that claims to be a mesh line but is not well formed is an error
// wrapping ErrMalformed or ErrVersion.
func ParseLine(tags map[string]string, body string) (f Frame, mesh bool, err error) {
	f, mesh, err = parseLine(tags, body)
	if err == nil && mesh && f.Count <= 1 {
		err = checkData(f.Data)
	}
	return f, mesh, err
}

// parseLine is ParseLine that leaves the data of a whole envelope
// unchecked: the decoder checks it as it decodes it (appendData). The
// data of a fragment is checked.
func parseLine(tags map[string]string, body string) (f Frame, mesh bool, err error) {
	if data, ok := tags[TagData]; ok {
		f = Frame{Carrier: CarrierTag, Index: 1, Count: 1, Data: data}
		if fr, ok := tags[TagFragment]; ok {
			short, rest, ok := strings.Cut(fr, ":")
			if !ok || !validShort(short) {
				return Frame{}, true, fmt.Errorf("%w: fragment tag %q", ErrMalformed, fr)
			}
			if f.Index, f.Count, err = parseIndex(rest); err != nil {
				return Frame{}, true, err
			}
			f.Short = short
		}
		return f, true, checkFrame(f)
	}
	marker, rest, _ := strings.Cut(body, " ")
	if !isMarker(marker) {
		return Frame{}, false, nil
	}
	switch marker {
	case BodyMarker:
		f, err = parseBody2(rest)
	case BodyMarkerV1:
		f, err = parseBody1(rest)
	default:
		return Frame{}, true, fmt.Errorf("%w: line format %q (this build speaks %q and %q)", ErrVersion, marker, BodyMarkerV1, BodyMarker)
	}
	if err != nil {
		return Frame{}, true, err
	}
	return f, true, checkFrame(f)
}

// checkFrame checks the data of a fragment (its envelope is decoded only
// once every fragment is in), and that a whole envelope's line has data.
func checkFrame(f Frame) error {
	if f.Count > 1 || f.Data == "" {
		return checkData(f.Data)
	}
	return nil
}

// parseBody1 reads the fields of a format 1 body line after its marker:
// "kind topic short [i/n] data".
func parseBody1(rest string) (f Frame, err error) {
	tok := strings.SplitN(rest, " ", 5)
	f = Frame{Carrier: CarrierBody, Index: 1, Count: 1}
	switch len(tok) {
	case 4:
		f.Data = tok[3]
	case 5:
		if f.Index, f.Count, err = parseIndex(tok[3]); err != nil {
			return Frame{}, err
		}
		f.Short, f.Data = tok[2], tok[4]
		if !validShort(f.Short) {
			return Frame{}, fmt.Errorf("%w: short id %q", ErrMalformed, f.Short)
		}
	default:
		return Frame{}, fmt.Errorf("%w: %d fields after the marker, want 4 or 5", ErrTruncated, len(tok))
	}
	return f, nil
}

// parseBody2 reads the fields of a format 2 body line after its marker:
// "kind topic short [i/n] (size B) [text] data". The data is the last
// field (base64 holds no space); the text before it is for people only.
func parseBody2(rest string) (f Frame, err error) {
	tok := strings.SplitN(rest, " ", 4)
	if len(tok) < 4 {
		return Frame{}, fmt.Errorf("%w: %d fields after the marker, want at least 4", ErrTruncated, len(tok))
	}
	f = Frame{Carrier: CarrierBody, Index: 1, Count: 1}
	tail := tok[3]
	cut := strings.LastIndexByte(tail, ' ')
	f.Data = tail[cut+1:]
	if cut < 0 {
		return f, nil
	}
	first, _, _ := strings.Cut(tail[:cut], " ")
	if first == "" || first[0] == '(' {
		return f, nil // no fragment index
	}
	if f.Index, f.Count, err = parseIndex(first); err != nil {
		return Frame{}, err
	}
	f.Short = tok[2]
	if !validShort(f.Short) {
		return Frame{}, fmt.Errorf("%w: short id %q", ErrMalformed, f.Short)
	}
	return f, nil
}

// isMarker reports whether s looks like a body marker of any version:
// "~m" followed by one or more digits.
func isMarker(s string) bool {
	if len(s) < 3 || s[0] != '~' || s[1] != 'm' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validShort(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func parseIndex(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || n < 1 || i < 1 || i > n {
		return 0, 0, fmt.Errorf("%w: fragment index %q", ErrMalformed, s)
	}
	return i, n, nil
}

func checkData(s string) error {
	if s == "" {
		return fmt.Errorf("%w: no data", ErrTruncated)
	}
	// Without a branch per byte: the data of encrypted payloads is random,
	// and a branch per byte on random bytes mispredicts.
	var bad byte
	for i := 0; i < len(s); i++ {
		bad |= notBase64URL[s[i]]
	}
	if bad == 0 {
		return nil
	}
	for i := 0; i < len(s); i++ {
		if notBase64URL[s[i]] != 0 {
			return fmt.Errorf("%w: byte %q at %d is not base64url", ErrMalformed, s[i], i)
		}
	}
	return nil
}

// notBase64URL is 1 for every byte outside the base64url alphabet.
var notBase64URL = func() (t [256]byte) {
	for c := range t {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			t[c] = 1
		}
	}
	return t
}()

// Limits are the room one line offers, as measured on the connection.
type Limits struct {
	// TagBytes is the most client tag data the server accepts in one line,
	// counting the leading '@' and the trailing space (4094 on ergo and
	// InspIRCd). Used by CarrierTag.
	TagBytes int
	// TagReserve is tag room kept for other tags the sender adds (a label
	// for labeled-response, say), counting their ';' separators.
	TagReserve int
	// BodyBytes is the most PRIVMSG text that reaches receivers intact;
	// see BodyBudget.
	BodyBytes int
}

// DefaultTagBytes is the client-only tag budget of ergo and InspIRCd.
const DefaultTagBytes = 4094

// BodyBudget returns how many bytes of PRIVMSG text arrive intact: the
// server's LINELEN (512 when it announces none) minus CRLF, minus the source
// prefix and command as the receivers see them (":"+prefix+" PRIVMSG
// "+target+" :"), minus a safety margin for what the sender cannot see (an
// ident "~" added, a longer host on another server).
func BodyBudget(lineLen int, prefix, target string, margin int) int {
	if lineLen <= 0 {
		lineLen = 512
	}
	return lineLen - 2 - len(":"+prefix+" PRIVMSG "+target+" :") - margin
}

// minChunk is the least data a line must carry for splitting to make sense.
const minChunk = 16

// EncodeLines splits a sealed envelope (the bytes from Seal) into the lines
// that carry it with carrier c within lim. e must be the envelope that was
// sealed; it supplies the legible summary.
func EncodeLines(e *Envelope, sealed []byte, c Carrier, lim Limits) ([]Line, error) {
	data := b64.EncodeToString(sealed)
	switch c {
	case CarrierTag:
		return tagLines(e, data, lim)
	case CarrierBody:
		return bodyLines(e, data, lim)
	}
	return nil, fmt.Errorf("envelope: unknown carrier %d", c)
}

func tagLines(e *Envelope, data string, lim Limits) ([]Line, error) {
	// "@" + TagData "=" data [";" TagFragment "=" short ":" i "/" n] " "
	room := tagRoom(lim)
	summary := SummaryPrefix + " " + e.Summary()
	size := " (" + strconv.Itoa(len(e.Payload)) + " B)"
	if len(data) <= room {
		body := withHuman(summary+size, e, lim.BodyBytes)
		return []Line{{Tags: map[string]string{TagData: data}, Body: clip(body, lim.BodyBytes)}}, nil
	}
	chunk, n, err := split(len(data), func(digits int) int {
		return room - len(";"+TagFragment+"=12345678:/") - 2*digits
	})
	if err != nil {
		return nil, err
	}
	short := e.ID.Short()
	lines := make([]Line, 0, n)
	for i := 0; i < n; i++ {
		idx := strconv.Itoa(i+1) + "/" + strconv.Itoa(n)
		body := summary + " [" + idx + "]" + size
		if i == 0 {
			body = withHuman(body, e, lim.BodyBytes) // once, on the first fragment
		}
		lines = append(lines, Line{
			Tags: map[string]string{TagData: data[i*chunk : min((i+1)*chunk, len(data))], TagFragment: short + ":" + idx},
			Body: clip(body, lim.BodyBytes),
		})
	}
	return lines, nil
}

func bodyLines(e *Envelope, data string, lim Limits) ([]Line, error) {
	head := BodyMarker + " " + e.Summary() + " "
	size := "(" + strconv.Itoa(len(e.Payload)) + " B) "
	if len(head)+len(size)+len(data) <= lim.BodyBytes {
		// The human text takes what room the data leaves.
		text := withHuman(head+size[:len(size)-1], e, lim.BodyBytes-len(data)-1)
		return []Line{{Body: text + " " + data}}, nil
	}
	room := func(digits int) int { return lim.BodyBytes - len(head) - len(size) - len("/ ") - 2*digits }
	// The first fragment shows the human text before its data, in room
	// taken from its data (the text of a tag line's first fragment is its
	// own): split as if the text were data at the front.
	text := ""
	if r := room(2); r > 2*minChunk {
		if h := e.humanText(min(fragmentText, r-minChunk-1)); h != "" {
			text = h + " "
		}
	}
	chunk, n, err := split(len(text)+len(data), room)
	if err != nil || chunk-len(text) < minChunk {
		text = ""
		if chunk, n, err = split(len(data), room); err != nil {
			return nil, err
		}
	}
	lines := make([]Line, 0, n)
	for i := 0; i < n; i++ {
		idx := strconv.Itoa(i+1) + "/" + strconv.Itoa(n)
		from, to := max(i*chunk-len(text), 0), min((i+1)*chunk-len(text), len(data))
		body := head + idx + " " + size
		if i == 0 {
			body += text
		}
		lines = append(lines, Line{Body: body + data[from:to]})
	}
	return lines, nil
}

// fragmentText bounds the human text on the first body fragment: the
// preview a whole line would show.
const fragmentText = MaxPreview

// withHuman appends e's human text to the summary s, in what room is left
// of max bytes.
func withHuman(s string, e *Envelope, max int) string {
	if h := e.humanText(max - len(s) - 1); h != "" {
		return s + " " + h
	}
	return s
}

// split finds the chunk size and count of fragments for total bytes, where
// room(d) is the data room per line when the fragment numbers have d digits.
func split(total int, room func(digits int) int) (chunk, n int, err error) {
	for d := 1; d <= 7; d++ {
		chunk = room(d)
		if chunk < minChunk {
			return 0, 0, fmt.Errorf("%w: a line has room for %d bytes of data; the target or prefix is too long", ErrTooLarge, chunk)
		}
		n = (total + chunk - 1) / chunk
		if len(strconv.Itoa(n)) <= d {
			return chunk, n, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: %d bytes need too many fragments", ErrTooLarge, total)
}

// clip cuts s to at most n bytes when n > 0, on a rune boundary.
func clip(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

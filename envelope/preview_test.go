package envelope

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// §3.2: what a person reads of a payload.
func TestPreview(t *testing.T) {
	long := strings.Repeat("a", 10_000)
	for _, tc := range []struct {
		name, payload, ct string
		max               int
		want              string
	}{
		{"json", `{"order":7,"item":"tea","qty":2}`, "application/json", 200, `{"order":7,"item":"tea","qty":2}`},
		{"plain text, no content type", "hello world", "", 200, "hello world"},
		{"empty", "", "", 200, ""},
		{"no room", "hello", "", 7, ""},
		{"formatting codes",
			"\x02bold\x02 \x0304,12red\x03 \x04FF0000hex\x0f \x1ditalic\x1d \x1funder\x1f \x16rev\x16 \x1estrike\x1e \x11mono\x11",
			"", 200, "bold red hex italic under rev strike mono"},
		{"colour digits are the code's, the rest is text", "\x0312345 and \x03,5x", "", 200, "345 and ,5x"},
		{"colour with two parameters then digits", "\x0301,02003", "", 200, "003"},
		{"CTCP and controls become spaces", "\x01ACTION waves\x01 then\x07bell", "", 200, "ACTION waves then bell"},
		{"line breaks and tabs", "line one\r\n\tline two\n\n", "", 200, "line one line two"},
		{"unicode line separators", "a\u2028b\u2029c\u0085d", "", 200, "a b c d"},
		{"invalid UTF-8 is binary", "caf\xe9 au lait", "", 200, "[binary]"},
		{"invalid UTF-8 with a text type", "caf\xe9 au lait", "text/plain; charset=latin1", 200, "caf\uFFFD au lait"},
		{"right-to-left text is kept", "שלום עולם", "", 200, "שלום עולם"},
		{"arabic and latin", "order طلب 7", "text/plain", 200, "order طلب 7"},
		{"bidi overrides are removed", "abc\u202edcba\u202c ok \u2067iso\u2069 \u200fmark", "", 200, "abcdcba ok iso mark"},
		{"invisible characters are removed, joiners kept", "a\u200bb\ufeffc\u00add \U0001F469\u200d\U0001F4BB", "", 200, "abcd \U0001F469\u200d\U0001F4BB"},
		{"binary", "\x00\x01\x02\x03", "", 200, "[binary]"},
		{"binary with its type", "\x00\x01\x02\x03", "application/octet-stream", 200, "[binary application/octet-stream]"},
		{"cbor", "\xa2\x65order\x07\x64item\x63tea", "", 200, "[binary]"},
		{"text in a binary type", "looks like text", "application/cbor", 200, "[binary application/cbor]"},
		{"a content type cannot inject", "\x00", "image/png\r\n\x02x", 200, "[binary image/pngx]"},
		{"many controls", "\x05\x06a\x05\x06b\x05\x06c", "", 200, "[binary]"},
		{"cut", "0123456789abcdef", "", 10, "0123456…"},
		{"very long", long, "", 200, strings.Repeat("a", 197) + "…"},
		{"cut between words drops the space", "abcdef ghijk", "", 10, "abcdef…"},
		{"cut inside a character", strings.Repeat("é", 20), "", 11, "éééé…"},
		{"scan bound inside a character", "x" + strings.Repeat("é", previewScan), "", 200, "x" + strings.Repeat("é", 98) + "…"},
	} {
		got := Preview([]byte(tc.payload), tc.ct, tc.max)
		if got != tc.want {
			t.Errorf("%s: Preview(%q, %q, %d) = %q, want %q", tc.name, clipTest(tc.payload), tc.ct, tc.max, got, tc.want)
		}
		if len(got) > tc.max {
			t.Errorf("%s: %d bytes, over %d", tc.name, len(got), tc.max)
		}
	}
}

func clipTest(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func TestLegible(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"pricing/x7k2p9 load 0.12", "pricing/x7k2p9 load 0.12"},
		{"boom:\n\x02stack\x02 trace", "boom: stack trace"},
		{"  padded  ", "padded"},
	} {
		if got := Legible(tc.in, 100); got != tc.want {
			t.Errorf("Legible(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Legible(strings.Repeat("ab ", 1000), 50); len(got) > 50 || !strings.HasSuffix(got, "…") {
		t.Errorf("a long note: %q", got)
	}
}

// §3.2: nothing of an encrypted or secret payload is ever shown.
func TestHumanText(t *testing.T) {
	e := New(KindEvent, Sender{Service: "s", Instance: "i"}, "t", []byte(`{"card":"4111"}`), time.Unix(1700000000, 0))
	if got := e.humanText(300); got != `{"card":"4111"}` {
		t.Errorf("event: %q", got)
	}
	if got := e.humanText(300); len(got) > MaxPreview {
		t.Errorf("over MaxPreview: %d", len(got))
	}
	e.Secret = true
	if got := e.humanText(300); got != SecretMark {
		t.Errorf("secret: %q", got)
	}
	e.Secret, e.Human = false, "note \x02here"
	if got := e.humanText(300); got != "note here" {
		t.Errorf("note: %q", got)
	}
	e.Crypt = &Crypt{}
	if got := e.humanText(300); got != "" {
		t.Errorf("encrypted: %q", got)
	}
	e.Crypt, e.opened = nil, true
	if got := e.humanText(300); got != "" {
		t.Errorf("opened: %q", got)
	}
	r := New(KindRequest, Sender{Service: "s", Instance: "i"}, "m", []byte("hello"), time.Unix(1700000000, 0))
	if got := r.humanText(300); got != "" {
		t.Errorf("a request's payload is not previewed: %q", got)
	}
}

// FuzzPreview: whatever the payload and content type, a preview fits its
// room, is valid UTF-8 on one line, and holds no control, formatting or
// bidirectional character.
func FuzzPreview(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "application/json", 200)
	f.Add([]byte("\x02b\x03\x0304,5c\u202ed"), "", 30)
	f.Add([]byte("caf\xe9"), "text/plain", 9)
	f.Add([]byte{0xa2, 0x61, 0x61, 0x01}, "", 100)
	f.Add([]byte(strings.Repeat("é", 600)), "", 17)
	f.Fuzz(func(t *testing.T, p []byte, ct string, max int) {
		max = max % 400
		got := Preview(p, ct, max)
		checkLegible(t, got, max)
		checkLegible(t, Legible(string(p), max), max)
	})
}

func checkLegible(t *testing.T, s string, max int) {
	t.Helper()
	if len(s) > max && s != "" {
		t.Fatalf("%q: %d bytes, room %d", s, len(s), max)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("%q: not valid UTF-8", s)
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 ||
			unicode.Is(unicode.Cf, r) && r != 0x200c && r != 0x200d {
			t.Fatalf("%q: holds %U", s, r)
		}
	}
	if strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") || strings.Contains(s, "  ") {
		t.Fatalf("%q: stray spaces", s)
	}
}

package mesh

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/meshbot/meshbot/envelope"
)

func echoID(i uint64) envelope.ID {
	var id envelope.ID
	binary.BigEndian.PutUint64(id[8:], i)
	return id
}

// TestEchoesOutliveManyOthers: the echo of a line whose window is still
// unconfirmed is found at the window's PONG even when many echoes nobody
// confirms (heartbeats, jobs that gave up) came after it; and the
// remembered echoes stay bounded.
func TestEchoesOutliveManyOthers(t *testing.T) {
	w := &writer{echoes: map[envelope.ID]string{}, older: map[envelope.ID]string{}}
	mine := echoID(1 << 40)
	w.echoed(mine, "m1")
	for i := range uint64(maxEchoes + 10) { // enough to fill a generation
		w.echoed(echoID(i), "x")
	}
	if msgid, ok := w.takeEcho(mine); !ok || msgid != "m1" {
		t.Fatalf("the echo was forgotten after %d others: %q, %v", maxEchoes+10, msgid, ok)
	}
	if _, ok := w.takeEcho(mine); ok {
		t.Fatal("an echo was taken twice")
	}
	for i := range uint64(5 * maxEchoes) {
		w.echoed(echoID(i+maxEchoes), "x")
		if n := len(w.echoes) + len(w.older); n > 2*maxEchoes {
			t.Fatalf("%d echoes remembered, bound %d", n, 2*maxEchoes)
		}
	}
	if _, ok := w.takeEcho(echoID(0)); ok {
		t.Fatal("an echo 5 generations old is still remembered")
	}
}

// naivePrivmsg is appendPrivmsg written the simplest way, byte by byte.
func naivePrivmsg(tags map[string]string, target, body string) string {
	var b strings.Builder
	if len(tags) > 0 {
		b.WriteByte('@')
		first := true
		for k, v := range tags {
			if !first {
				b.WriteByte(';')
			}
			first = false
			b.WriteString(k)
			if v != "" {
				b.WriteByte('=')
				for i := 0; i < len(v); i++ {
					switch c := v[i]; c {
					case ';':
						b.WriteString(`\:`)
					case ' ':
						b.WriteString(`\s`)
					case '\\':
						b.WriteString(`\\`)
					case '\r':
						b.WriteString(`\r`)
					case '\n':
						b.WriteString(`\n`)
					case 0:
					default:
						b.WriteByte(c)
					}
				}
			}
		}
		b.WriteByte(' ')
	}
	b.WriteString("PRIVMSG " + target + " :")
	for i := 0; i < len(body); i++ {
		if c := body[i]; c != '\r' && c != '\n' && c != 0 {
			b.WriteByte(c)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestAppendPrivmsgMatchesNaive: the writer's line (which copies text with
// nothing to escape in one go) is the naive one, for text with and without
// bytes to escape or drop.
func TestAppendPrivmsgMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "abcXYZ019-_=+/ ;\\\r\n\x00:@!#"
	text := func() string {
		n := rng.IntN(60)
		b := make([]byte, n)
		plain := rng.IntN(2) == 0 // half with nothing to escape
		for i := range b {
			if plain {
				b[i] = alphabet[rng.IntN(14)]
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		return string(b)
	}
	for range 2000 {
		var tags map[string]string
		if rng.IntN(3) > 0 {
			tags = map[string]string{"+meshbot/e": text()} // one tag: a fixed order
		}
		body := text()
		got := string(appendPrivmsg(nil, tags, "#t.x", body))
		if want := naivePrivmsg(tags, "#t.x", body); got != want {
			t.Fatalf("tags %q body %q:\n got %q\nwant %q", tags, body, got, want)
		}
	}
}

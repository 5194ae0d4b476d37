package mesh

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/ergochat/irc-go/ircmsg"
)

// checkParseLine checks parseLine against its naive twin: ircmsg's
// ParseLine and AllTags.
func checkParseLine(t *testing.T, raw string) {
	t.Helper()
	got, tags, err := parseLine(raw)
	want, werr := ircmsg.ParseLine(raw)
	if (err == nil) != (werr == nil) || err != nil && !errors.Is(err, werr) {
		t.Fatalf("parseLine(%q): error %v, ircmsg's %v", raw, err, werr)
	}
	if err != nil {
		return
	}
	if got.Source != want.Source || got.Command != want.Command || !slices.Equal(got.Params, want.Params) {
		t.Fatalf("parseLine(%q) = %q %q %q, ircmsg's %q %q %q", raw, got.Source, got.Command, got.Params, want.Source, want.Command, want.Params)
	}
	if wt := want.AllTags(); !maps.Equal(tags, wt) || tags == nil {
		t.Fatalf("parseLine(%q): tags %v, ircmsg's %v", raw, tags, wt)
	}
}

var parseLineSeeds = []string{
	"",
	"PING :x",
	":nick!user@host PRIVMSG #t.jobs :mesh event jobs 1a2b3c4d",
	"@time=2026-12-07T10:00:00.000Z;msgid=abc;+meshbot/e=AAAA-_ :n!u@h PRIVMSG #c :text",
	"@+meshbot/e=AAAA;+meshbot/f=1a2b3c4d:1/2;account=alice :n PRIVMSG #c :x",
	`@a=b\:c\sd\\e\;f\ :n CMD`,
	"@a=1;a=2;b;=3;+;c= :n CMD p1 p2 :trail ing",
	"@a=b",
	"@a=b @c=d CMD",
	"@a=b  :src  CMD  x",
	"@a=\xff CMD",
	"@bad_name=1;ok=2 CMD",
	"CMD\x00",
	"@a=b\rc CMD",
	"  :src CMD",
	":src",
	"@a=b :src",
	"PRIVMSG \xff",
}

// TestParseLineTwin: the node's line parser gives what ircmsg gives.
func TestParseLineTwin(t *testing.T) {
	for _, raw := range parseLineSeeds {
		checkParseLine(t, raw)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, raw := range parseLineSeeds {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkParseLine(t, raw) })
}

// BenchmarkParseLine: a mesh event's line as InspIRCd relays it, parsed
// by the node (parseLine) and by ircmsg with its tags merged (what the
// node did before).
func BenchmarkParseLine(b *testing.B) {
	raw := "@time=2026-12-07T10:00:00.000Z;msgid=Wk1pXR9f2aXQm7P0;+meshbot/e=" +
		"pQEBAgEDUGNhZmUtMDEyMzQ1Njc4OWFiBBsYWP8Z9xAAAAWDZm9yZGVyc2ZhMWIyYzMbAAABAAAAAAAGZm9yZGVycwhYyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" +
		" :orders-a1b2c3!orders@127.0.0.1 PRIVMSG #t.orders :mesh event orders 1a2b3c4d (200 B) ...."
	b.Run("node", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, tags, err := parseLine(raw); err != nil || len(tags) != 3 {
				b.Fatal(err)
			}
		}
	})
	b.Run("ircmsg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			msg, err := ircmsg.ParseLine(raw)
			if tags := msg.AllTags(); err != nil || len(tags) != 3 {
				b.Fatal(err)
			}
		}
	})
}

package meshtest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// FuzzReplayLines: what other clients can make the server send a node —
// PRIVMSGs with any tags and text, JOIN, PART, KICK, QUIT and NICK of any
// nick — inserted mid-run into the shop log and replayed into the shop
// service's real node (the live path: reader, decoder, router, membership,
// closed-channel and operator tracking, handlers): no input panics, the
// node closes, and the replay ends. The seed corpus is in
// testdata/fuzz/FuzzReplayLines.
func FuzzReplayLines(f *testing.F) {
	b, err := os.ReadFile(shopLog)
	if err != nil {
		f.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	mid := len(lines) / 2
	l, err := recording.ParseLine(lines[mid])
	if err != nil {
		f.Fatal(err)
	}
	at := "time=" + l.Time.UTC().Format("2006-01-02T15:04:05.000Z") // the time of the lines around
	for _, seed := range []string{
		":mallory!m@h PRIVMSG #t.orders :hello, bots",
		":mallory!m@h PRIVMSG #t.orders :~m2 12 x AAAA",
		":mallory!m@h PRIVMSG #t.orders :\x01VERSION\x01",
		":shop-2!s@h JOIN #t.orders\n:shop-2!s@h QUIT :irc.a.net irc.b.net",
		":op!o@h KICK #t.jobs shop-live :out\n:op!o@h PART #t._hb :bye",
		":audit-1!a@h NICK :shop-9",
		"@+meshbot/e=" + strings.Repeat("A", 40) + " :x!x@h PRIVMSG #t.jobs :.",
		// An event of the log's client with another id and order 9: delivered.
		"@+meshbot/e=pwEBAgEDUOKLaR941DvFqUJUll2WVmgEGxjvAkUNisBsBYNmY2xpZW50YTEbGO8CRJPXGfsGZm9yZGVycwhLeyJvcmRlciI6OX0 :client-1!client@127.0.0.1 PRIVMSG #t.orders :mesh event orders e28b691f (11 B)",
		":x!x@h PRIVMSG shop-live :!status",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, extra string) {
		if len(extra) > 4096 || strings.ContainsAny(extra, "\r\x00") {
			return
		}
		var ins []string
		for l := range strings.SplitSeq(extra, "\n") {
			if rest, ok := strings.CutPrefix(l, "@"); ok {
				l = "@" + at + ";" + rest
			} else {
				l = "@" + at + " " + l
			}
			ins = append(ins, l)
		}
		text := strings.Join(lines[:mid], "\n") + "\n" + strings.Join(ins, "\n") + "\n" + strings.Join(lines[mid:], "\n") + "\n"
		log, err := recording.Parse(text)
		if err != nil {
			return // not a line a server sends
		}
		meshtest.Replay(t, log, mesh.Config{Service: shopService}, shopSetup)
	})
}

package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

var ackLine = regexp.MustCompile(`(?m)^published (\S+) id=([0-9a-f]{32}) msgid=(\S+) lines=(\d+)( batch=(\d+))?$`)

// TestPubCountSummary publishes 50 events at once: each confirm says
// whether it shared a line (batch=K, and then K events show that line's
// msgid), and the summary counts the lines that carried them.
func TestPubCountSummary(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "pc"}
	r := runCLI(t, environ, "", "pub", "jobs", "x", "--count", "50")
	if r.code != 0 {
		t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
	}
	acks := ackLine.FindAllStringSubmatch(r.stdout, -1)
	if len(acks) != 50 {
		t.Fatalf("%d confirms, want 50:\n%s", len(acks), r.stdout)
	}
	perMsgid := map[string]int{}
	lines := 0.0
	batched := 0
	for _, a := range acks {
		perMsgid[a[3]]++
		if a[6] == "" {
			lines++
			continue
		}
		k, _ := strconv.Atoi(a[6])
		lines += 1 / float64(k)
		batched++
	}
	for _, a := range acks {
		if a[3] == "-" {
			continue // no msgids: nothing to compare with
		}
		want := 1
		if a[6] != "" {
			want, _ = strconv.Atoi(a[6])
		}
		if perMsgid[a[3]] != want {
			t.Errorf("event %s: batch %d, but %d events show msgid %s", a[2][:8], want, perMsgid[a[3]], a[3])
		}
	}
	want := regexp.MustCompile(`meshbot: published 50 events on jobs in (\d+) lines?( \((\d+) of them batched, up to \d+ per line\))?, confirmed by the server in \S+\n`)
	m := want.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no summary on stderr: %q", r.stderr)
	}
	if n, _ := strconv.Atoi(m[1]); n != int(lines+0.5) {
		t.Errorf("summary says %s lines, the confirms %v", m[1], lines)
	}
	if got, _ := strconv.Atoi(m[3]); got != batched {
		t.Errorf("summary says %s batched, the confirms %d", m[3], batched)
	}
	t.Logf("50 events: %s", strings.TrimSpace(r.stderr))
}

// TestPubInterrupted stops a long pub: the error says how many events
// the server had confirmed, as many as it printed.
func TestPubInterrupted(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "pi"}
	b := startCLI(t, environ, "pub", "load", "x", "--count", "200000")
	waitFor(t, "pub", b.out, "\npublished", 30*time.Second)
	code := b.stop(t)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	printed := len(ackLine.FindAllString(b.out.String(), -1))
	m := regexp.MustCompile(`meshbot: interrupted: (\d+) of 200000 events confirmed by the server, in \d+ lines?`).FindStringSubmatch(b.errbuf.String())
	if m == nil {
		t.Fatalf("stderr: %q", b.errbuf.String())
	}
	if n, _ := strconv.Atoi(m[1]); n != printed {
		t.Errorf("it says %d confirmed, and printed %d confirms", n, printed)
	}
}

// TestPubChannelLen: the length of a topic's channel is checked against
// the server's CHANNELLEN, not a default: a channel exactly that long is
// published to, one byte more is refused naming the server's limit.
func TestPubChannelLen(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	limit := ircdtest.Probe(t, srv).IntToken("CHANNELLEN", 0)
	if limit <= 0 {
		t.Fatalf("%s announces no CHANNELLEN", srv)
	}
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "cl"}
	topic := func(chanLen int) string { return strings.Repeat("t", chanLen-len("#cl.")) }
	r := runCLI(t, environ, "", "pub", topic(limit), "fits")
	if r.code != 0 {
		t.Errorf("a channel of CHANNELLEN=%d bytes: exit %d\n%s", limit, r.code, r.stderr)
	}
	r = runCLI(t, environ, "", "pub", topic(limit+1), "too long")
	want := "is " + strconv.Itoa(limit+1) + " bytes; the server allows " + strconv.Itoa(limit) + " (CHANNELLEN)"
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("a channel of %d bytes: exit %d, stderr %q; want %q", limit+1, r.code, r.stderr, want)
	}
}

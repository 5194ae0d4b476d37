package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// A dropped connection shows in tail's text and JSON, is not a line in its
// summary, and stays out of a raw log.
func TestPrinterGap(t *testing.T) {
	gap := mesh.Observation{Gap: true, Channel: "#mesh.orders", Topic: "orders", Time: time.Now()}
	line := mesh.Observation{Channel: "#mesh.orders", Topic: "orders", From: "bob", Body: "hello", Time: time.Now()}
	for _, mode := range []printMode{modeText, modeJSON, modeRaw} {
		var buf bytes.Buffer
		p := &printer{w: &buf, mode: mode}
		var raw *rawLines
		if mode == modeRaw {
			raw = newRawLines(p)
			raw.add("#mesh.orders")
			raw.Write([]byte(":bob!b@h PRIVMSG #mesh.orders :hello\n"))
		}
		p.observation(line)
		p.observation(gap)
		// One drop seen by the observers of two topics is one drop.
		gap2 := gap
		gap2.Channel, gap2.Topic = "#mesh.payments", "payments"
		p.observation(gap2)
		if raw != nil {
			raw.stop()
		}
		out := buf.String()
		switch mode {
		case modeText:
			if !strings.Contains(out, "connection to the server lost") {
				t.Errorf("text: %q", out)
			}
		case modeJSON:
			if !strings.Contains(out, `"type":"gap"`) {
				t.Errorf("json: %q", out)
			}
		case modeRaw:
			if out != ":bob!b@h PRIVMSG #mesh.orders :hello\n" {
				t.Errorf("raw: %q, want only the line", out)
			}
		}
		if s := p.summary(0); !strings.HasPrefix(s, "1 lines:") || !strings.Contains(s, "dropped 1 time") {
			t.Errorf("summary: %q", s)
		}
	}
}

// batchLine is a tag-carrier line holding n unsigned events.
func batchLine(t *testing.T, n int) envelope.Line {
	t.Helper()
	var envs []*envelope.Envelope
	var sealed [][]byte
	for i := range n {
		e := envelope.New(envelope.KindEvent, envelope.Sender{Service: "audit", Instance: "a1"}, "orders", []byte{byte('a' + i)}, time.Now())
		b, err := envelope.Seal(e, nil)
		if err != nil {
			t.Fatal(err)
		}
		envs, sealed = append(envs, e), append(sealed, b)
	}
	l, err := envelope.EncodeBatchLine(envs, sealed, envelope.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tail --raw writes each PRIVMSG of its channels once, byte for byte as
// received: a batch line of three events once (not once per event), its
// tags in their order and form; other lines and other channels not at all.
func TestTailRawLines(t *testing.T) {
	data := batchLine(t, 3).Tags[envelope.TagData]
	batch := "@time=2026-01-02T03:04:05.000Z;+meshbot/e=" + data + ";msgid=m1;+x=a\\sb\\:c :audit-a1!~a@127.0.0.1 PRIVMSG #Mesh.Orders :mesh event orders 1a2b3c4d +2 more (3 B)\n"
	human := ":bob!b@h PRIVMSG #mesh.orders :hello\n"
	var buf bytes.Buffer
	p := &printer{w: &buf, mode: modeRaw}
	raw := newRawLines(p)
	raw.add("#mesh.orders")
	for _, l := range []string{
		"PING :irc.test\n",
		":audit-a1!~a@127.0.0.1 JOIN #mesh.orders\n",
		batch,
		":bob!b@h PRIVMSG #mesh.other :elsewhere\n",
		":bob!b@h NOTICE #mesh.orders :a notice\n",
		human,
	} {
		raw.Write([]byte(l))
	}
	// The node observes the batch once per event, Part 0 first.
	for i := range 3 {
		p.observation(mesh.Observation{Channel: "#mesh.orders", From: "audit-a1", Mesh: true, Part: i,
			Envelope: envelope.New(envelope.KindEvent, envelope.Sender{Service: "audit"}, "orders", nil, time.Now())})
	}
	p.observation(mesh.Observation{Channel: "#mesh.orders", From: "bob", Body: "hello"})
	if dropped := raw.stop(); dropped != 0 {
		t.Errorf("%d dropped", dropped)
	}
	if got := buf.String(); got != batch+human {
		t.Errorf("raw output:\n%q\nwant\n%q", got, batch+human)
	}
	if s := p.summary(0); !strings.HasPrefix(s, "2 lines: 3 envelopes, 0 fragments, 0 rejected, 1 human") {
		t.Errorf("summary: %q", s)
	}
	raw.Write([]byte(human)) // after stop: ignored
	raw.stop()
	if got := buf.String(); got != batch+human {
		t.Errorf("a line written after stop: %q", got)
	}
}

// gate blocks each Write until released, and says when one started.
type gate struct {
	started chan struct{}
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	g.started <- struct{}{}
	<-g.release
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

// A slow output never blocks the connection's reader: lines beyond the
// queue are dropped and counted.
func TestRawLinesSlowOutput(t *testing.T) {
	g := &gate{started: make(chan struct{}, 1), release: make(chan struct{})}
	raw := newRawLines(&printer{w: g, mode: modeRaw})
	raw.add("#mesh.orders")
	line := []byte(":bob!b@h PRIVMSG #mesh.orders :hello\n")
	raw.Write(line)
	<-g.started // the writer holds the first line
	const extra = 5
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range rawQueue + extra {
			raw.Write(line)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Write blocked on a slow output")
	}
	close(g.release)
	go func() {
		for range g.started {
		}
	}()
	if dropped := raw.stop(); dropped != extra {
		t.Errorf("dropped %d, want %d", dropped, extra)
	}
	close(g.started)
	if got := strings.Count(g.buf.String(), "\n"); got != rawQueue+1 {
		t.Errorf("%d lines written, want %d", got, rawQueue+1)
	}
}

// dialTags connects a person whose client speaks message-tags, so that it
// can send client-only tags.
func dialTags(t *testing.T, addr, nick string) *ircClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &ircClient{t: t, conn: conn, r: bufio.NewReader(conn), nick: nick}
	c.send("CAP REQ :message-tags")
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :a person")
	c.expect("ACK")
	c.send("CAP END")
	c.expect(" 001 ")
	return c
}

// TestTailRawBatch: on a real server, `tail --raw` writes a batch line of
// three events once, the same bytes `record --raw` writes for it, and
// `decode -` reads three events back from it (not nine).
func TestTailRawBatch(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "rb"}
	logFile := filepath.Join(t.TempDir(), "record.log")
	raw := startCLI(t, environ, "tail", "orders", "--raw")
	rec := startCLI(t, environ, "record", "--raw", logFile, "orders")
	waitFor(t, "tail", raw.errbuf, "watching", 20*time.Second)
	waitFor(t, "record", rec.errbuf, "recording", 20*time.Second)

	data := batchLine(t, 3).Tags[envelope.TagData]
	person := dialTags(t, srv.Addr(), "audit-a1") // the batch's sender: audit/a1
	person.send("JOIN #rb.orders")
	person.expect("JOIN")
	person.send("@+zz=first;+meshbot/e=" + data + ";+aa=a\\sb PRIVMSG #rb.orders :mesh event orders 1a2b3c4d +2 more (3 B)")
	person.send("PRIVMSG #rb.orders :done")
	waitFor(t, "tail --raw", raw.out, ":done\n", 10*time.Second)
	if code := raw.stop(t); code != 0 {
		t.Errorf("tail exit %d\n%s", code, raw.errbuf)
	}
	if code := rec.stop(t); code != 0 {
		t.Errorf("record exit %d\n%s", code, rec.errbuf)
	}

	got := strings.Split(strings.TrimSuffix(raw.out.String(), "\n"), "\n")
	if len(got) != 2 || strings.Count(raw.out.String(), data) != 1 {
		t.Fatalf("tail --raw wrote %d lines, want the batch line once and the person's line:\n%s", len(got), raw.out)
	}
	recorded, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, l := range strings.Split(string(recorded), "\n") {
		if strings.Contains(l, data) {
			want = l
		}
	}
	if got[0] != want {
		t.Errorf("tail --raw wrote\n%s\nthe server sent (record --raw)\n%s", got[0], want)
	}

	r := runCLI(t, nil, raw.out.String(), "decode", "-")
	if n := strings.Count(r.stdout, "mesh line (tag carrier)"); r.code != 0 || n != 3 || !strings.Contains(r.stdout, "envelope 3/3 of a batch") {
		t.Errorf("decode of the raw log: exit %d, %d envelopes, want 3:\n%s%s", r.code, n, r.stdout, r.stderr)
	}
	if !strings.Contains(raw.errbuf.String(), "2 lines: 3 envelopes, 0 fragments, 0 rejected, 1 human") {
		t.Errorf("tail summary:\n%s", raw.errbuf)
	}
}

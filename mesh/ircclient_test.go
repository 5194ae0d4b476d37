//go:build unix

package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// iiClient is a running ii(1), the Debian package "ii": a real IRC client
// whose input is a FIFO per server and channel and whose output is a plain
// file per server and channel.
type iiClient struct {
	t    *testing.T
	nick string
	dir  string // <prefix>/<host>: holds in, out and one directory per channel
	log  string // ii's own stdout and stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when ii has exited
	err  error         // ii's exit status, once done is closed
}

// startII starts ii as nick against srv and stops it when the test ends. A
// missing ii fails the test: CI installs it.
func startII(t *testing.T, srv *ircd.Server, nick string) *iiClient {
	t.Helper()
	bin, err := exec.LookPath("ii")
	if err != nil {
		t.Fatalf("the IRC client ii is not installed (Debian package %q: apt-get install -y ii): %v", "ii", err)
	}
	prefix := t.TempDir()
	c := &iiClient{
		t:    t,
		nick: nick,
		dir:  filepath.Join(prefix, srv.Host()),
		log:  filepath.Join(prefix, "ii.log"),
		done: make(chan struct{}),
	}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "-s", srv.Host(), "-p", strconv.Itoa(srv.Port()),
		"-n", nick, "-f", "meshbot test watcher", "-i", prefix)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start ii: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(3 * time.Second):
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}
		if t.Failed() {
			c.dump()
		}
	})
	return c
}

// dump logs what ii wrote, to explain a failure.
func (c *iiClient) dump() {
	c.t.Helper()
	_ = filepath.WalkDir(filepath.Dir(c.dir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (d.Name() != "out" && path != c.log) {
			return nil
		}
		b, _ := os.ReadFile(path)
		c.t.Logf("ii %s:\n%s", path, b)
		return nil
	})
}

func (c *iiClient) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// write sends one line to the FIFO in (relative to c.dir: "in" for the
// server, "#chan/in" for a channel). Opening a FIFO for writing blocks
// until someone reads it, so it is opened non-blocking, retrying until ii
// has it open or the timeout passes.
func (c *iiClient) write(in, line string, timeout time.Duration) {
	c.t.Helper()
	path := filepath.Join(c.dir, in)
	deadline := time.Now().Add(timeout)
	for {
		fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err == nil {
			b := []byte(line + "\n")
			n, werr := syscall.Write(fd, b)
			syscall.Close(fd)
			if werr != nil || n != len(b) {
				c.t.Fatalf("write %q to %s: %d bytes, %v", line, path, n, werr)
			}
			return
		}
		// ENOENT: ii has not made the FIFO yet; ENXIO: nobody reads it.
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENXIO) {
			c.t.Fatalf("open %s: %v", path, err)
		}
		if c.exited() {
			c.t.Fatalf("ii exited (%v) before reading %s", c.err, path)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ii did not read %s within %v: %v", path, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lines returns the lines ii has written to out (relative to c.dir).
func (c *iiClient) lines(out string) []string {
	b, err := os.ReadFile(filepath.Join(c.dir, out))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// waitLines polls out until ok accepts its lines or the timeout passes.
func (c *iiClient) waitLines(out string, timeout time.Duration, what string, ok func([]string) bool) []string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ls := c.lines(out)
		if ok(ls) {
			return ls
		}
		if c.exited() {
			c.t.Fatalf("ii exited (%v) while waiting for %s", c.err, what)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ii: no %s in %s within %v", what, out, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// join joins channel and waits until the server confirms it. ii sends the
// JOIN at once, and servers refuse it before registration completes
// (InspIRCd registers a client after about a second), so it is repeated
// until the channel's out shows the client joined.
func (c *iiClient) join(channel string, timeout time.Duration) {
	c.t.Helper()
	joined := func(ls []string) bool {
		for _, l := range ls {
			if strings.Contains(l, c.nick) && strings.Contains(l, "has joined "+channel) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(timeout)
	for {
		c.write("in", "/j "+channel, time.Until(deadline))
		wait := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(wait) {
			if joined(c.lines(channel + "/out")) {
				return
			}
			if c.exited() {
				c.t.Fatalf("ii exited (%v) while joining %s", c.err, channel)
			}
			time.Sleep(25 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ii did not join %s within %v", channel, timeout)
		}
	}
}

// TestWatchFromIRCClient: a person with a real IRC client (ii) in a topic
// channel sees legible mesh lines naming the kind, topic and short id of
// each event, and what the person types there does not disturb the bots.
func TestWatchFromIRCClient(t *testing.T) {
	if _, err := exec.LookPath("ii"); err != nil {
		t.Fatalf("the IRC client ii is not installed (Debian package %q: apt-get install -y ii): %v", "ii", err)
	}
	srv := ircdtest.Start(t)
	const topic = "orders.created"
	channel := mesh.Channel("t", topic)
	hb := mesh.HeartbeatChannel("t")

	// ii registers while the bots do (InspIRCd takes a second for each).
	ii := startII(t, srv, "watcher")
	capsc := make(chan *ircd.Caps, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		caps, err := ircd.Probe(ctx, srv.Addr())
		if err != nil {
			t.Errorf("probe %s: %v", srv, err)
		}
		capsc <- caps
	}()
	nodes := connectAll(t, testConfig(srv, "orders"), testConfig(srv, "audit"), testConfig(srv, "audit"))
	caps := <-capsc
	if caps == nil {
		t.FailNow()
	}
	tagCarrier := caps.Has("message-tags")
	pub, subs := nodes[0], nodes[1:]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cols := make([]*collector, len(subs))
	for i, n := range subs {
		cols[i] = newCollector()
		if _, err := n.Subscribe(ctx, topic, cols[i].handle); err != nil {
			t.Fatal(err)
		}
	}
	ii.join(channel, 10*time.Second)
	ii.join(hb, 5*time.Second)

	payloads := []string{"order-1", "order-2", "order-3", "", "order-5", strings.Repeat("big-order ", 500)}
	var acks []mesh.PubAck
	publish := func(from, to int) {
		t.Helper()
		for _, p := range payloads[from:to] {
			ack, err := pub.Publish(ctx, topic, []byte(p))
			if err != nil {
				t.Fatalf("publish %q: %v", p[:min(len(p), 16)], err)
			}
			acks = append(acks, ack)
		}
	}

	// (1) The client sees one legible line per event (one per fragment for
	// a large one), from the publisher, naming kind, topic and short id,
	// size and what the payload says (§3.2, §3.3). Tag carrier: "mesh event
	// orders.created 1a2b3c4d (7 B) order-1" or, for a fragment, "mesh
	// event orders.created 1a2b3c4d [1/2] (5000 B)[ big-order…]"; body
	// carrier: "~m2 event orders.created 1a2b3c4d [1/2 ](7 B)[ order-1] <base64>".
	var lineRE *regexp.Regexp
	if tagCarrier {
		lineRE = regexp.MustCompile(`<` + regexp.QuoteMeta(pub.Nick()) + `> mesh (\S+) (\S+) ([0-9a-f]{8}) (?:\[(\d+)/(\d+)\] )?\((\d+) B\)(?: (.+))?$`)
	} else {
		lineRE = regexp.MustCompile(`<` + regexp.QuoteMeta(pub.Nick()) + `> ~m2 (\S+) (\S+) ([0-9a-f]{8}) (?:(\d+)/(\d+) )?\((\d+) B\) (?:(.+) )?[A-Za-z0-9_-]+$`)
	}
	type seen struct {
		lines, whole, frags int
		text                string // the human text of its first line
	}
	view := func(ls []string) map[string]*seen {
		m := map[string]*seen{}
		for _, l := range ls {
			sm := lineRE.FindStringSubmatch(l)
			if sm == nil || sm[1] != "event" || sm[2] != topic {
				continue
			}
			s := m[sm[3]]
			if s == nil {
				s = &seen{}
				m[sm[3]] = s
			}
			s.lines++
			if s.lines == 1 {
				s.text = sm[7]
			}
			n := sm[5]
			if n == "" {
				s.whole++
			} else {
				s.frags, _ = strconv.Atoi(n)
			}
		}
		return m
	}
	// complete reports whether the client shows every ack so far.
	complete := func(ls []string) bool {
		v := view(ls)
		for _, a := range acks {
			s := v[a.ID.Short()]
			if s == nil || s.lines < a.Lines {
				return false
			}
		}
		return true
	}
	publish(0, 3)
	ii.waitLines(channel+"/out", 10*time.Second, "mesh lines for the first events", complete)

	// (2) A person talks in the topic channel: plain chatter, and a line
	// pasted from the channel that looks like a tag-carrier summary.
	before := make([]uint64, len(subs))
	for i, n := range subs {
		before[i] = n.Stats().NotMesh
	}
	human := []string{
		"hello bots, what is this channel for?",
		"mesh event " + topic + " " + acks[0].ID.Short() + " (7 B)",
	}
	for _, l := range human {
		ii.write(channel+"/in", l, 5*time.Second)
	}
	publish(3, len(payloads))
	ls := ii.waitLines(channel+"/out", 10*time.Second, "mesh lines for all events", complete)

	// The client's view: exactly the published events, each shown as
	// many times as it took lines, with its ack's short id.
	v := view(ls)
	for i, a := range acks {
		s := v[a.ID.Short()]
		delete(v, a.ID.Short())
		switch {
		case s.lines != a.Lines:
			t.Errorf("event %d (%s): client saw %d lines, ack says %d", i, a.ID.Short(), s.lines, a.Lines)
		case a.Lines == 1 && s.whole != 1:
			t.Errorf("event %d (%s): sent whole, client saw fragments of %d", i, a.ID.Short(), s.frags)
		case a.Lines > 1 && s.frags != a.Lines:
			t.Errorf("event %d (%s): %d lines, client saw fragments of %d", i, a.ID.Short(), a.Lines, s.frags)
		case a.Lines == 1 && s.text != payloads[i]:
			t.Errorf("event %d (%s): the client reads %q of payload %q", i, a.ID.Short(), s.text, payloads[i])
		}
	}
	for short, s := range v {
		t.Errorf("client saw %d lines of an event %s nobody published", s.lines, short)
	}

	// The bots: every event exactly once, nothing the person typed, and
	// each human line counted as not mesh.
	for _, c := range cols {
		c.waitFor(t, len(payloads), 10*time.Second)
	}
	for i, n := range subs {
		deadline := time.Now().Add(5 * time.Second)
		for n.Stats().NotMesh-before[i] < uint64(len(human)) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond) // let any duplicate or stray line arrive
	for i, c := range cols {
		c.mu.Lock()
		if len(c.got) != len(payloads) {
			t.Errorf("subscriber %d got %d events, want %d", i, len(c.got), len(payloads))
		}
		for _, p := range payloads {
			if c.seen[p] != 1 {
				t.Errorf("subscriber %d got %q %d times, want once", i, p[:min(len(p), 16)], c.seen[p])
			}
		}
		for _, m := range c.got {
			if m.Topic != topic || m.Sender.Service != "orders" {
				t.Errorf("subscriber %d got topic %q from %+v", i, m.Topic, m.Sender)
			}
		}
		c.mu.Unlock()
		st := subs[i].Stats()
		if got := st.NotMesh - before[i]; got != uint64(len(human)) {
			t.Errorf("subscriber %d: NotMesh rose by %d, want %d (one per human line)", i, got, len(human))
		}
		if st.Rejected != 0 || st.Delivered != uint64(len(payloads)) {
			t.Errorf("subscriber %d: Rejected %d (%v), Delivered %d, want 0 and %d", i, st.Rejected, st.RejectedBy, st.Delivered, len(payloads))
		}
	}

	if testing.Verbose() {
		var b bytes.Buffer
		for _, l := range ls {
			fmt.Fprintf(&b, "  %.160s\n", l)
		}
		fmt.Fprintf(&b, "%s:\n", hb)
		for _, l := range ii.lines(hb + "/out") {
			fmt.Fprintf(&b, "  %.160s\n", l)
		}
		t.Logf("carrier tag=%v; %s as ii shows it:\n%s", tagCarrier, channel, b.String())
	}
}

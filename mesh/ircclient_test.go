//go:build unix

package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/iitest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

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
	ii := iitest.Start(t, srv, "watcher")
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
	ii.Join(channel, 10*time.Second)
	ii.Join(hb, 5*time.Second)

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
	ii.WaitLines(channel+"/out", 10*time.Second, "mesh lines for the first events", complete)

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
		ii.Write(channel+"/in", l, 5*time.Second)
	}
	publish(3, len(payloads))
	ls := ii.WaitLines(channel+"/out", 10*time.Second, "mesh lines for all events", complete)

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
		for _, l := range ii.Lines(hb + "/out") {
			fmt.Fprintf(&b, "  %.160s\n", l)
		}
		t.Logf("carrier tag=%v; %s as ii shows it:\n%s", tagCarrier, channel, b.String())
	}
}

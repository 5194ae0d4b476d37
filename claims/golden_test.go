package claims_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/history/rawlog"
)

var flagRewrite = flag.Bool("rewrite", false, "rewrite the expected decisions (testdata/claims/anycast.decisions.txt) and scripts (testdata/scripts) from the actual ones")

// The golden test replays a recorded anycast run (the raw lines a server
// sent, tags included; mesh's TestRecordAnycastGolden records it) through
// one replica per worker: a claims.Group, the code the workers ran, fed
// what that worker saw — the channel's lines in server order at their
// server-time, its own heartbeat view, its own session, and its own
// handler results (taken from the acks and nacks it posted). Each replica
// must make the decisions the real worker made: claim exactly the (event,
// epoch) pairs it claimed, have started every event it acked, ack and nack
// what it did, release what it released when it closed, and end with every
// event completed by the same ack as the others. Every decision, in order,
// is in testdata/claims/anycast.decisions.txt beside the log (-rewrite
// regenerates it; read its diff).

const (
	goldenNS    = "t"
	goldenTopic = "golden.jobs"
	goldenGroup = "workers"
)

var (
	goldenLog       = filepath.Join("..", "testdata", "claims", "anycast.log")
	goldenDecisions = filepath.Join("..", "testdata", "claims", "anycast.decisions.txt")
)

type pair struct {
	id    envelope.ID
	epoch uint64
}

func (p pair) String() string { return fmt.Sprintf("%s@%d", p.id.Short(), p.epoch) }

type replica struct {
	t        *testing.T
	sender   envelope.Sender
	nick     string
	view     *heartbeat.View
	g        *claims.Group
	t0       time.Time // the log's first line: decisions are timed from it
	readyAt  time.Time
	ready    bool
	gone     bool
	claimed  map[pair]bool // first claims the replica decided
	started  map[pair]bool
	actual   map[pair]bool // first claims the worker posted
	sent     []*envelope.Envelope
	releases map[pair]bool // what the replica released and the worker has not yet
	log      []string      // the decisions, in order
}

// take carries out what the replica's Group asks for: it records its
// decisions and keeps the envelopes it would send.
func (r *replica) take(now time.Time) {
	rd := r.g.Ready()
	at := fmt.Sprintf("%8.3fs ", now.Sub(r.t0).Seconds())
	for _, m := range rd.Malformed {
		r.t.Errorf("%s: malformed %s from %s: %v", r.nick, m.Kind, m.From, m.Err)
	}
	for _, c := range rd.Cancel {
		r.log = append(r.log, at+fmt.Sprintf("cancel %s@%d %q", c.Event.Short(), c.Epoch, c.Reason))
	}
	for _, s := range rd.Start {
		p := pair{s.Event.Envelope.ID, s.Epoch}
		r.started[p] = true
		r.log = append(r.log, at+fmt.Sprintf("start %s attempt %d", p, s.Attempt))
	}
	for _, env := range rd.Send {
		r.sent = append(r.sent, env)
		switch env.Kind {
		case envelope.KindClaim, envelope.KindAck:
			items, err := claims.DecodeItems(env.Payload)
			if err != nil {
				r.t.Fatalf("%s sends a bad %s: %v", r.nick, env.Kind, err)
			}
			for _, it := range items {
				p := pair{it.Event, it.Epoch}
				if env.Kind == envelope.KindClaim {
					r.claimed[p] = true // renewals repeat a pair
					r.log = append(r.log, at+fmt.Sprintf("claim %s attempt %d lease %dms", p, it.Attempt, env.LeaseMillis))
				} else {
					r.log = append(r.log, at+fmt.Sprintf("ack %s", p))
				}
			}
		case envelope.KindNack:
			p := pair{env.Correlation, env.Epoch}
			if env.Error.Code == claims.CodeReleased {
				r.releases[p] = true
				r.log = append(r.log, at+fmt.Sprintf("release %s", p))
			} else {
				r.log = append(r.log, at+fmt.Sprintf("nack %s retry %dms %q", p, env.LeaseMillis, env.Error.Message))
			}
		default:
			r.log = append(r.log, at+fmt.Sprintf("send %s", env.Kind))
		}
	}
	for _, d := range rd.DeadLetters {
		r.log = append(r.log, at+fmt.Sprintf("dead-letter %s attempts %d", d.Letter.Event.ID.Short(), d.Letter.Attempts))
	}
}

// sends reports whether the replica's last outputs hold an envelope of
// kind for p.
func (r *replica) sends(kind envelope.Kind, p pair) bool {
	return slices.ContainsFunc(r.sent, func(env *envelope.Envelope) bool {
		if env.Kind != kind {
			return false
		}
		if kind == envelope.KindNack {
			return env.Correlation == p.id && env.Epoch == p.epoch
		}
		items, _ := claims.DecodeItems(env.Payload)
		return slices.ContainsFunc(items, func(it claims.Item) bool { return it.Event == p.id && it.Epoch == p.epoch })
	})
}

// advance runs the replica's timers and view up to t.
func (r *replica) advance(t time.Time) {
	for {
		next := r.g.Next()
		if !r.ready && !r.readyAt.IsZero() && (next.IsZero() || r.readyAt.Before(next)) && !r.readyAt.After(t) {
			r.ready = true
			r.g.SetReady(true, r.readyAt)
			r.take(r.readyAt)
			continue
		}
		if next.IsZero() || next.After(t) {
			break
		}
		r.g.Tick(next)
		r.take(next)
	}
	if len(r.view.Tick(t)) > 0 {
		r.members(t)
	}
}

func (r *replica) members(t time.Time) {
	r.g.Members(r.view.All(), t)
	r.take(t)
}

func TestGoldenAnycastLog(t *testing.T) {
	lines, err := rawlog.ReadFile(goldenLog)
	if err != nil {
		t.Fatal(err)
	}
	topicCh, hbCh := "#"+goldenNS+"."+goldenTopic, "#"+goldenNS+"._hb"
	dec := envelope.NewDecoder(envelope.DecoderConfig{})

	type msg struct {
		line *rawlog.Line
		envs []*envelope.Envelope
	}
	var msgs []msg
	var t0 time.Time
	replicas := map[string]*replica{} // by nick
	var order []string                // nicks, as the workers appeared
	for i := range lines {
		l := &lines[i]
		if l.Time.IsZero() {
			continue
		}
		if t0.IsZero() {
			t0 = l.Time
		}
		var envs []*envelope.Envelope
		if l.Command() == "PRIVMSG" && (strings.EqualFold(l.Param(0), topicCh) || strings.EqualFold(l.Param(0), hbCh)) {
			envs, _, err = dec.Decode(l.Nick, l.Msg.AllTags(), l.Text(), l.Time)
			if err != nil {
				t.Fatalf("line %d: %v", l.N, err)
			}
		}
		msgs = append(msgs, msg{l, envs})
		// Workers are the senders of beats that announce the group.
		for _, env := range envs {
			if env.Kind != envelope.KindHeartbeat {
				continue
			}
			b, err := heartbeat.Decode(env.Payload)
			if err != nil {
				t.Fatalf("line %d: %v", l.N, err)
			}
			if replicas[l.Nick] == nil && slices.Contains(b.Subs, heartbeat.Sub{Topic: goldenTopic, Group: goldenGroup}) {
				sender := envelope.Sender{Service: b.Service, Instance: b.Instance, Incarnation: b.Incarnation}
				var ids uint64
				replicas[l.Nick] = &replica{
					t: t, sender: sender, nick: l.Nick, t0: t0,
					view: heartbeat.New(heartbeat.Config{}),
					g: claims.NewGroup(claims.GroupConfig{Config: claims.Config{MaxInFlight: 8192},
						Topic: goldenTopic, Group: goldenGroup, Sender: sender,
						NewID: func() envelope.ID { ids++; return seqID(ids) }}),
					readyAt: l.Time.Add(1200 * time.Millisecond),
					claimed: map[pair]bool{}, started: map[pair]bool{}, actual: map[pair]bool{}, releases: map[pair]bool{},
				}
				order = append(order, l.Nick)
			}
		}
	}
	if len(replicas) != 3 {
		t.Fatalf("%d workers in the log, want 3", len(replicas))
	}

	events := map[envelope.ID]bool{}
	for _, m := range msgs {
		l := m.line
		for _, nick := range order {
			r := replicas[nick]
			if r.gone {
				continue
			}
			r.advance(l.Time)
			switch l.Command() {
			case "QUIT":
				if l.Nick == r.nick {
					r.gone = true
					continue
				}
				r.view.Gone(l.Nick, "quit", l.Time)
				r.members(l.Time)
			case "PART":
				if strings.EqualFold(l.Param(0), hbCh) {
					r.view.Gone(l.Nick, "part", l.Time)
					r.members(l.Time)
				}
			}
			for _, env := range m.envs {
				r.feed(l, env, events)
			}
		}
	}

	var ref map[envelope.ID]string
	for _, nick := range order {
		r := replicas[nick]
		var missing, extra []string
		for p := range r.actual {
			if !r.claimed[p] {
				missing = append(missing, p.String())
			}
		}
		for p := range r.claimed {
			if !r.actual[p] {
				extra = append(extra, p.String())
			}
		}
		if len(missing)+len(extra) > 0 {
			t.Errorf("%s: the replica did not claim %v that the worker claimed, and claimed %v that it did not", nick, missing, extra)
		}
		for p := range r.releases {
			t.Errorf("%s: the replica released %s, the worker did not", nick, p)
		}
		if r.gone {
			continue
		}
		outcome := map[envelope.ID]string{}
		for id := range events {
			o, by, ep, _ := r.g.Status(id)
			if o != claims.Acked {
				t.Errorf("%s: %s is %s at the end", nick, id.Short(), o)
			}
			outcome[id] = fmt.Sprintf("%s@%d", by.ID, ep)
		}
		if ref == nil {
			ref = outcome
		} else if !mapsEqual(ref, outcome) {
			t.Errorf("replicas disagree on who completed what")
		}
	}
	if len(events) != 60 {
		t.Errorf("%d events in the log, want 60", len(events))
	}
	var takeovers int
	for _, who := range ref {
		if !strings.HasSuffix(who, "@1") {
			takeovers++
		}
	}
	if takeovers == 0 {
		t.Errorf("the log has no event completed after a nack or release: it does not exercise takeovers")
	}
	t.Logf("%d lines, %d events, %d completed at a later epoch", len(lines), len(events), takeovers)

	// The decisions, in order, against the file beside the log.
	var b strings.Builder
	b.WriteString("# The decisions of each worker's replica (claims.Group) replaying anycast.log,\n" +
		"# in order, timed from the log's first line. Regenerate with\n" +
		"#   go test ./claims -run TestGoldenAnycastLog -rewrite\n" +
		"# and read the diff: it is what changed in the protocol's decisions.\n")
	for _, nick := range order {
		r := replicas[nick]
		fmt.Fprintf(&b, "\n# %s/%s (nick %s)\n", r.sender.Service, r.sender.Instance, nick)
		for _, d := range r.log {
			b.WriteString(d + "\n")
		}
	}
	got := b.String()
	if *flagRewrite {
		if err := os.WriteFile(goldenDecisions, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenDecisions)
	if err != nil {
		t.Fatalf("%v (go test ./claims -run TestGoldenAnycastLog -rewrite writes it)", err)
	}
	if got != string(want) {
		t.Errorf("the decisions differ from %s:\n%s\nif the new ones are right: go test ./claims -run TestGoldenAnycastLog -rewrite, then review the diff",
			goldenDecisions, lineDiff(strings.Split(string(want), "\n"), strings.Split(got, "\n")))
	}
}

// feed gives one envelope to the replica, as its worker saw it.
func (r *replica) feed(l *rawlog.Line, env *envelope.Envelope, events map[envelope.ID]bool) {
	t, now := r.t, l.Time
	own := l.Nick == r.nick
	switch env.Kind {
	case envelope.KindHeartbeat:
		b, err := heartbeat.Decode(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		r.view.Heartbeat(l.Nick, b, now)
		if own {
			r.g.Session(now.Add(2*time.Second-250*time.Millisecond), now)
		}
		r.members(now)
		return
	case envelope.KindEvent:
		events[env.ID] = true
	}
	if own && env.Topic == goldenGroup {
		r.ownLine(l, env)
	}
	rcv := claims.Received{Envelope: env, From: l.Nick, ServerTime: now, MsgID: l.Msg.AllTags()["msgid"]}
	if !r.g.Receive(rcv, now) && env.Kind != envelope.KindHeartbeat {
		t.Errorf("line %d: %s: the group did not take a %s", l.N, r.nick, env.Kind)
	}
	r.take(now)
}

// ownLine checks a line the replica's worker posted against what the
// replica decided, giving the replica the handler's result first.
func (r *replica) ownLine(l *rawlog.Line, env *envelope.Envelope) {
	t, now := r.t, l.Time
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck:
		items, err := claims.DecodeItems(env.Payload)
		if err != nil {
			t.Fatalf("line %d: %v", l.N, err)
		}
		for _, it := range items {
			p := pair{it.Event, it.Epoch}
			if env.Kind == envelope.KindClaim {
				r.actual[p] = true
				continue
			}
			// The worker's handler succeeded: the replica must have
			// started it, and must ack it.
			if !r.started[p] {
				t.Errorf("line %d: %s acked %s, which its replica never started", l.N, r.nick, p)
			}
			r.sent = nil
			r.g.Done(it.Event, it.Epoch, nil, 0, now)
			r.take(now)
			if !r.sends(envelope.KindAck, p) {
				t.Errorf("line %d: %s acked %s; its replica would not", l.N, r.nick, p)
			}
		}
	case envelope.KindNack:
		p := pair{env.Correlation, env.Epoch}
		if env.Error.Code == claims.CodeReleased {
			// The worker closed and released what it held: the replica
			// releases the same, on the first release line.
			if len(r.releases) == 0 && !r.ready {
				t.Errorf("line %d: %s releases %s a second time", l.N, r.nick, p)
			}
			if r.ready {
				r.ready, r.readyAt = false, time.Time{}
				r.g.ReleaseAll(now)
				r.take(now)
			}
			if !r.releases[p] {
				t.Errorf("line %d: %s released %s; its replica would not", l.N, r.nick, p)
			}
			delete(r.releases, p)
			return
		}
		r.sent = nil
		r.g.Done(env.Correlation, env.Epoch, errors.New(env.Error.Message), time.Duration(env.LeaseMillis)*time.Millisecond, now)
		r.take(now)
		if !r.sends(envelope.KindNack, p) {
			t.Errorf("line %d: %s nacked %s; its replica would not", l.N, r.nick, p)
		}
	}
}

func seqID(n uint64) envelope.ID {
	var id envelope.ID
	copy(id[:], "golden")
	for i := range 8 {
		id[15-i] = byte(n >> (8 * i))
	}
	return id
}

func mapsEqual(a, b map[envelope.ID]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

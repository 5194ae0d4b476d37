package claims_test

import (
	"errors"
	"fmt"
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

// The golden test replays a recorded anycast run (the raw lines a server
// sent, tags included; mesh's TestRecordAnycastGolden records it) through
// one replica of the claims core per worker, each fed what that worker saw:
// the lines in server order at their server-time, its own heartbeat view,
// its own session, and its own handler results (taken from the acks and
// nacks it posted). Each replica must make the decisions the real worker
// made: claim exactly the (event, epoch) pairs it claimed, have started
// every event it acked, and end with every event completed by the same ack
// as the others.

const (
	goldenNS    = "t"
	goldenTopic = "golden.jobs"
	goldenGroup = "workers"
)

type pair struct {
	id    envelope.ID
	epoch uint64
}

func (p pair) String() string { return fmt.Sprintf("%s@%d", p.id.Short(), p.epoch) }

type replica struct {
	self    claims.Claimant
	nick    string
	view    *heartbeat.View
	core    *claims.Core
	readyAt time.Time
	ready   bool
	gone    bool
	last    []claims.Member
	claimed map[pair]bool // first claims the replica decided
	started map[pair]bool
	actual  map[pair]bool // first claims the worker posted
}

func (r *replica) record(acts []claims.Action) {
	for _, a := range acts {
		p := pair{a.Event, a.Epoch}
		switch a.Kind {
		case claims.SendClaim:
			r.claimed[p] = true // renewals repeat a pair
		case claims.Start:
			r.started[p] = true
		}
	}
}

// advance runs the replica's timers and view up to t.
func (r *replica) advance(t time.Time) {
	for {
		next := r.core.Next()
		if !r.ready && !r.readyAt.IsZero() && (next.IsZero() || r.readyAt.Before(next)) && !r.readyAt.After(t) {
			r.ready = true
			r.record(r.core.SetReady(true, r.readyAt))
			continue
		}
		if next.IsZero() || next.After(t) {
			break
		}
		r.record(r.core.Tick(next))
	}
	if len(r.view.Tick(t)) > 0 {
		r.members(t)
	}
}

func (r *replica) members(t time.Time) {
	var ms []claims.Member
	for _, m := range r.view.All() {
		if slices.Contains(m.Beat.Subs, heartbeat.Sub{Topic: goldenTopic, Group: goldenGroup}) {
			ms = append(ms, claims.Member{Claimant: claims.Claimant{ID: m.Service + "/" + m.Instance, Incarnation: m.Incarnation}, State: m.State})
		}
	}
	if slices.Equal(ms, r.last) {
		return
	}
	r.last = ms
	r.record(r.core.Members(ms, t))
}

func TestGoldenAnycastLog(t *testing.T) {
	lines, err := rawlog.ReadFile(filepath.Join("..", "testdata", "claims", "anycast.log"))
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
	replicas := map[string]*replica{} // by nick
	for i := range lines {
		l := &lines[i]
		if l.Time.IsZero() {
			continue
		}
		var envs []*envelope.Envelope
		if l.Command() == "PRIVMSG" && (strings.EqualFold(l.Param(0), topicCh) || strings.EqualFold(l.Param(0), hbCh)) {
			tags := l.Msg.AllTags()
			var err error
			envs, _, err = dec.Decode(l.Nick, tags, l.Text(), l.Time)
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
				self := claims.Claimant{ID: b.Service + "/" + b.Instance, Incarnation: b.Incarnation}
				replicas[l.Nick] = &replica{
					self: self, nick: l.Nick,
					view:    heartbeat.New(heartbeat.Config{}),
					core:    claims.New(claims.Config{Self: self, MaxInFlight: 8192}),
					readyAt: l.Time.Add(1200 * time.Millisecond),
					claimed: map[pair]bool{}, started: map[pair]bool{}, actual: map[pair]bool{},
				}
			}
		}
	}
	if len(replicas) != 3 {
		t.Fatalf("%d workers in the log, want 3", len(replicas))
	}

	events := map[envelope.ID]bool{}
	for _, m := range msgs {
		l := m.line
		for _, r := range replicas {
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
				r.feed(t, l, env, events)
			}
		}
	}

	var ref map[envelope.ID]string
	for nick, r := range replicas {
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
		if r.gone {
			continue
		}
		outcome := map[envelope.ID]string{}
		for id := range events {
			o, by, ep, _ := r.core.Status(id)
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
}

// feed gives one envelope to the replica, as its worker saw it.
func (r *replica) feed(t *testing.T, l *rawlog.Line, env *envelope.Envelope, events map[envelope.ID]bool) {
	now := l.Time
	who := claims.Claimant{ID: env.Sender.Service + "/" + env.Sender.Instance, Incarnation: env.Sender.Incarnation}
	own := l.Nick == r.nick
	switch env.Kind {
	case envelope.KindHeartbeat:
		b, err := heartbeat.Decode(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		r.view.Heartbeat(l.Nick, b, now)
		if own {
			r.record(r.core.Session(now.Add(2*time.Second-250*time.Millisecond), now))
		}
		r.members(now)
		return
	case envelope.KindEvent:
		events[env.ID] = true
		r.record(r.core.Event(env.ID, "", now))
		return
	}
	if env.Topic != goldenGroup {
		return
	}
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck:
		items, err := claims.DecodeItems(env.Payload)
		if err != nil {
			t.Fatalf("line %d: %v", l.N, err)
		}
		for _, it := range items {
			p := pair{it.Event, it.Epoch}
			if env.Kind == envelope.KindClaim {
				if own {
					r.actual[p] = true
				}
				r.record(r.core.Claim(who, it, time.Duration(env.LeaseMillis)*time.Millisecond, now))
				continue
			}
			if own {
				// The worker's handler succeeded: the replica must have
				// started it, and must ack it.
				if !r.started[p] {
					t.Errorf("line %d: %s acked %s, which its replica never started", l.N, r.nick, p)
				}
				acts := r.core.Done(it.Event, it.Epoch, nil, 0, now)
				if !slices.ContainsFunc(acts, func(a claims.Action) bool { return a.Kind == claims.SendAck && a.Event == it.Event }) {
					t.Errorf("line %d: %s acked %s; its replica would not", l.N, r.nick, p)
				}
				r.record(acts)
			}
			r.record(r.core.Ack(who, it, now))
		}
	case envelope.KindNack:
		it := claims.Item{Event: env.Correlation, Epoch: env.Epoch}
		release := env.Error != nil && env.Error.Code == 1
		if own && !release {
			acts := r.core.Done(it.Event, it.Epoch, errors.New(env.Error.Message), time.Duration(env.LeaseMillis)*time.Millisecond, now)
			if !slices.ContainsFunc(acts, func(a claims.Action) bool { return a.Kind == claims.SendNack && a.Event == it.Event }) {
				t.Errorf("line %d: %s nacked %s@%d; its replica would not", l.N, r.nick, it.Event.Short(), it.Epoch)
			}
			r.record(acts)
		}
		if release {
			r.record(r.core.Released(who, it, now))
		} else {
			r.record(r.core.Nack(who, it, time.Duration(env.LeaseMillis)*time.Millisecond, env.Error.Message, now))
		}
	case envelope.KindDeadLetter:
		r.record(r.core.Dead(who, claims.Item{Event: env.Correlation, Epoch: env.Epoch}, now))
	}
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

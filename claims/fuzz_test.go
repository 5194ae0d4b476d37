package claims

import (
	"errors"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Fuzz targets for what a member takes from the network: the consensus
// payloads, and whole envelopes of the group through Group.Receive (items
// and dead letters: wire_test.go). Seed corpora are in testdata/fuzz.

func FuzzDecodeOffset(f *testing.F) {
	for _, o := range []envelope.Offset{{Time: 1, MsgID: ""}, {Time: 1 << 60, MsgID: "msg-1"}, {Time: 5e6, MsgID: "abc"}} {
		b, _ := EncodeOffset(o)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x82, 0x00, 0x60})
	f.Add([]byte{0x82, 0x20, 0x60})
	f.Add([]byte{0x84, 0x05, 0x60, 0x00, 0x60})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOffset(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if o.Time <= 0 || len(o.MsgID) > envelope.MaxMsgIDLen {
			t.Fatalf("decoded an offset out of bounds: %+v", o)
		}
		enc, err := EncodeOffset(o)
		if err != nil {
			t.Fatalf("decoded offset does not encode: %v", err)
		}
		if again, err := DecodeOffset(enc); err != nil || again != o {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, o)
		}
	})
}

func FuzzDecodeHistoryClaim(f *testing.F) {
	for _, c := range [][2]envelope.Offset{
		{{Time: 9e6, MsgID: "x"}, {Time: 5e6, MsgID: "abc"}},
		{{Time: 9e6, MsgID: "x"}, {}},
		{{Time: 1 << 60}, {Time: 1 << 59}},
	} {
		b, _ := EncodeHistoryClaim(c[0], c[1])
		f.Add(b)
	}
	b, _ := EncodeOffset(envelope.Offset{Time: 7e6, MsgID: "y"})
	f.Add(b) // the bare form
	f.Add([]byte{})
	f.Add([]byte{0x84, 0x05, 0x60, 0x20, 0x60})
	f.Add([]byte{0x84, 0x05, 0x60, 0x00, 0x61, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, k, err := DecodeHistoryClaim(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if c.Time <= 0 || k.Time < 0 || (k.Time == 0 && k.MsgID != "") {
			t.Fatalf("decoded a claim out of bounds: %+v committed %+v", c, k)
		}
		enc, err := EncodeHistoryClaim(c, k)
		if err != nil {
			t.Fatalf("decoded claim does not encode: %v", err)
		}
		if c2, k2, err := DecodeHistoryClaim(enc); err != nil || c2 != c || k2 != k {
			t.Fatalf("round trip: %+v %+v, %v; want %+v %+v", c2, k2, err, c, k)
		}
	})
}

// fuzzReader hands out a fuzz input's bytes as the fields of a program;
// zeros once it runs out.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) more() bool { return len(r.b) > 0 }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *fuzzReader) id() envelope.ID { return fuzzID(r.byte() % 8) } // few ids: collisions

func fuzzID(n byte) envelope.ID {
	var id envelope.ID
	copy(id[:], "fuzz")
	id[15] = n + 1
	return id
}

var fuzzKinds = []envelope.Kind{envelope.KindEvent, envelope.KindClaim, envelope.KindAck, envelope.KindNack, envelope.KindDeadLetter,
	envelope.KindHistoryClaim, envelope.KindHistoryAck, envelope.KindHistoryReject, envelope.KindHeartbeat, envelope.KindState}

// envelope makes an envelope from the input: any kind, fields and payload,
// of the group or not, often well formed enough to reach deep states.
func (r *fuzzReader) envelope() *envelope.Envelope {
	env := &envelope.Envelope{Version: envelope.Version, Kind: fuzzKinds[int(r.byte())%len(fuzzKinds)], ID: r.id(),
		Sender: envelope.Sender{Service: "svc", Instance: string('a' + rune(r.byte()%3)), Incarnation: uint64(r.byte() % 3)},
		Topic:  "workers", Correlation: r.id(), Epoch: uint64(r.byte() % 5), Attempt: uint32(r.byte() % 7),
		LeaseMillis: uint32(r.byte()) << uint(r.byte()%24)}
	flags := r.byte()
	if flags&1 != 0 {
		env.Topic = "other"
	}
	if flags&2 != 0 {
		env.Correlation = envelope.ID{}
	}
	if flags&4 != 0 {
		env.Error = &envelope.Error{Code: uint32(r.byte() % 3), Message: string(r.bytes(int(r.byte() % 40)))}
	}
	switch {
	case flags&8 != 0:
		env.Payload = r.bytes(int(r.byte()))
	case env.Kind == envelope.KindClaim || env.Kind == envelope.KindAck:
		var items []Item
		for range 1 + r.byte()%3 {
			items = append(items, Item{Event: r.id(), Epoch: uint64(1 + r.byte()%5), Attempt: uint32(r.byte() % 6)})
		}
		env.Payload, _ = EncodeItems(items)
	case env.Kind == envelope.KindHistoryClaim:
		env.Payload, _ = EncodeHistoryClaim(envelope.OffsetAt(fuzzT0.Add(time.Duration(r.byte())*time.Millisecond), "m"),
			envelope.OffsetAt(fuzzT0.Add(time.Duration(r.byte()%3)*time.Millisecond), ""))
	case env.Kind == envelope.KindHistoryAck || env.Kind == envelope.KindHistoryReject:
		env.Payload, _ = EncodeOffset(envelope.OffsetAt(fuzzT0.Add(time.Duration(r.byte())*time.Millisecond), "m"))
	}
	return env
}

var fuzzT0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// FuzzGroupReceive runs a member's Group through a program of arbitrary
// envelopes of the channel and of its own inputs. Nothing may panic, and
// what it asks for must be well formed: envelopes of its group that decode,
// starts of events it saw, a committed offset that only grows.
func FuzzGroupReceive(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 8, 10, 0, 4, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 3, 0, 1, 1, 1, 0, 0, 4, 3, 0, 4, 4, 10, 'b', 'o', 'o', 'm', 'b', 'o', 'o', 'm', 'x', 'y'})
	f.Add([]byte{0, 0, 5, 2, 1, 1, 1, 0, 0, 0, 0, 0, 5, 7, 200, 1, 0, 6, 3})
	f.Add([]byte{0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 8, 255, 1, 2, 3})
	f.Fuzz(func(t *testing.T, prog []byte) {
		r := &fuzzReader{b: prog}
		self := envelope.Sender{Service: "svc", Instance: "a", Incarnation: 1}
		var ids byte
		g := NewGroup(GroupConfig{Config: Config{MaxEvents: 16, MaxInFlight: 4, MaxAttempts: 3},
			Topic: "jobs", Group: "workers", Sender: self, NewID: func() envelope.ID { ids++; return fuzzID(100 + ids) }})
		view := func(b byte) []heartbeat.Member {
			var all []heartbeat.Member
			for i, inst := range []string{"a", "b", "c"} {
				st := heartbeat.State(1 + (b>>(2*i))%3)
				all = append(all, heartbeat.Member{Service: "svc", Instance: inst, Incarnation: uint64(1 + (b>>6)%2*uint8(i%2)), State: st,
					Beat: heartbeat.Beat{Subs: []heartbeat.Sub{{Topic: "jobs", Group: "workers"}}}})
			}
			return all
		}
		now := fuzzT0
		g.Members(view(0), now)
		g.Session(now.Add(time.Hour), now)
		g.SetReady(true, now)
		seen := map[envelope.ID]bool{}
		var running []StartHandler
		var echo []*envelope.Envelope
		var committed envelope.Offset
		for steps := 0; r.more() && steps < 300; steps++ {
			now = now.Add(time.Duration(r.byte()) * 20 * time.Millisecond)
			switch op := r.byte() % 12; {
			case op < 5:
				env := r.envelope()
				if env.Kind == envelope.KindEvent {
					seen[env.ID] = true
				}
				rcv := Received{Envelope: env, From: "nick", MsgID: string(r.bytes(int(r.byte() % 4)))}
				if r.byte()%2 == 0 {
					rcv.ServerTime = now
				}
				if op == 4 {
					g.Replay(rcv, now)
				} else {
					g.Receive(rcv, now)
				}
			case op == 5 && len(echo) > 0: // our own lines come back
				g.Receive(Received{Envelope: echo[0], ServerTime: now, MsgID: "echo"}, now)
				echo = echo[1:]
			case op == 6:
				g.Tick(now)
			case op == 7:
				g.Commit(now)
			case op == 8 && len(running) > 0:
				s := running[0]
				running = running[1:]
				var err error
				if r.byte()%2 == 0 {
					err = errors.New("failed")
				}
				g.Done(s.Event.Envelope.ID, s.Epoch, err, time.Duration(r.byte())*time.Millisecond, now)
			case op == 9:
				g.Members(view(r.byte()), now)
			case op == 10:
				switch r.byte() % 5 {
				case 0:
					g.Reset(now)
					running, echo = nil, nil
				case 1:
					g.Resume(envelope.OffsetAt(now.Add(-time.Second), ""), now)
				case 2:
					g.Replayed(now)
				case 3:
					g.ReleaseAll(now)
				case 4:
					g.SetReady(r.byte()%2 == 0, now)
				}
			case op == 11:
				g.Session(now.Add(time.Duration(r.byte())*100*time.Millisecond), now)
			}
			rd := g.Ready()
			for _, s := range rd.Start {
				if !seen[s.Event.Envelope.ID] {
					t.Fatalf("start of %s, an event never received", s.Event.Envelope.ID.Short())
				}
				running = append(running, s)
			}
			for _, env := range rd.Send {
				checkSent(t, env, self)
				echo = append(echo, env)
			}
			for _, d := range rd.DeadLetters {
				if d.Letter.Event == nil || !seen[d.Letter.Event.ID] || d.Marker.Correlation != d.Letter.Event.ID {
					t.Fatalf("dead letter %+v, marker %+v", d.Letter, d.Marker)
				}
				checkSent(t, d.Marker, self)
			}
			if c := g.Committed(); c != committed && !committed.Before(c) && !committed.IsZero() {
				t.Fatalf("the committed offset went from %v to %v", committed, c)
			} else {
				committed = c
			}
			if s := g.Stats(); s.Pending < 0 || s.Completed < 0 {
				t.Fatalf("stats %+v", s)
			}
		}
	})
}

// checkSent holds an envelope the Group built to the wire's rules.
func checkSent(t *testing.T, env *envelope.Envelope, self envelope.Sender) {
	t.Helper()
	if env.Sender != self || env.Topic != "workers" || env.Version != envelope.Version || env.ID.IsZero() {
		t.Fatalf("sent %+v", env)
	}
	var err error
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck:
		_, err = DecodeItems(env.Payload)
	case envelope.KindNack, envelope.KindDeadLetter:
		if env.Correlation.IsZero() || env.Epoch == 0 || env.Error == nil {
			err = errors.New("no event, epoch or reason")
		}
	case envelope.KindHistoryClaim:
		_, _, err = DecodeHistoryClaim(env.Payload)
	case envelope.KindHistoryAck, envelope.KindHistoryReject:
		_, err = DecodeOffset(env.Payload)
	default:
		err = errors.New("not a claims line")
	}
	if err != nil {
		t.Fatalf("sent a %s that does not decode: %v", env.Kind, err)
	}
	if _, err := envelope.Marshal(env); err != nil {
		t.Fatalf("sent a %s that does not encode: %v", env.Kind, err)
	}
}

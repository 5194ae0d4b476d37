package claims_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// API details of Group that are not scenarios (those are scripts):
// batching, the envelopes' fields, what Receive takes, membership
// filtering, and what Handlers leaves for Ready.

var gt0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func soleMember(t *testing.T, cfg claims.Config) (*claims.Group, envelope.Sender) {
	t.Helper()
	self := envelope.Sender{Service: "svc", Instance: "a", Incarnation: 7}
	var ids uint64
	g := claims.NewGroup(claims.GroupConfig{Config: cfg, Topic: "jobs", Group: "workers", Sender: self,
		NewID: func() envelope.ID { ids++; return seqID(ids) }})
	g.Members([]heartbeat.Member{member("svc", "a", 7, heartbeat.Alive, "jobs", "workers")}, gt0)
	g.Session(gt0.Add(time.Hour), gt0)
	g.SetReady(true, gt0)
	return g, self
}

func member(service, instance string, inc uint64, st heartbeat.State, topic, group string) heartbeat.Member {
	return heartbeat.Member{Service: service, Instance: instance, Incarnation: inc, State: st,
		Beat: heartbeat.Beat{Subs: []heartbeat.Sub{{Topic: topic, Group: group}}}}
}

func eventEnv(n uint64) *envelope.Envelope {
	return &envelope.Envelope{Version: envelope.Version, Kind: envelope.KindEvent, ID: seqID(1000 + n), Time: gt0.UnixNano(),
		Sender: envelope.Sender{Service: "pub", Instance: "1"}, Topic: "jobs"}
}

// Claims and acks gather into as few envelopes as fit (§6.2): 121 claims
// are two CLAIMs of 120 and 1 items, with the member's identity, the
// group as topic and the lease; envelopes to send wait for Ready while
// Handlers takes only what must not wait.
func TestGroupBatches(t *testing.T) {
	g, self := soleMember(t, claims.Config{Lease: 12 * time.Second})
	for i := range uint64(claims.MaxItems + 1) {
		g.Receive(claims.Received{Envelope: eventEnv(i)}, gt0)
	}
	if rd := g.Handlers(); len(rd.Send) != 0 || len(rd.Start) != 0 {
		t.Fatalf("Handlers took %d envelopes and %d starts; want none (they wait for Ready)", len(rd.Send), len(rd.Start))
	}
	rd := g.Ready()
	if len(rd.Send) != 2 {
		t.Fatalf("%d envelopes for %d claims, want 2", len(rd.Send), claims.MaxItems+1)
	}
	for i, want := range []int{claims.MaxItems, 1} {
		env := rd.Send[i]
		items, err := claims.DecodeItems(env.Payload)
		if err != nil || len(items) != want {
			t.Fatalf("envelope %d: %d items (%v), want %d", i, len(items), err, want)
		}
		if env.Kind != envelope.KindClaim || env.Topic != "workers" || env.Sender != self || env.LeaseMillis != 12000 ||
			env.Version != envelope.Version || env.Time != gt0.UnixNano() || env.ID != seqID(uint64(i+1)) {
			t.Errorf("envelope %d: %+v", i, env)
		}
	}
	if rd := g.Ready(); !rd.Empty() {
		t.Errorf("a second Ready: %+v", rd)
	}
	// Every claim comes back: 121 starts after the settle time, taken by
	// Handlers at once, in the order the events came.
	for _, env := range rd.Send {
		g.Receive(claims.Received{Envelope: env}, gt0.Add(time.Millisecond))
	}
	g.Tick(gt0.Add(time.Second))
	hs := g.Handlers()
	if len(hs.Start) != claims.MaxItems+1 || hs.Start[0].Event.Envelope.ID != eventEnv(0).ID || hs.Start[claims.MaxItems].Event.Envelope.ID != eventEnv(claims.MaxItems).ID {
		t.Fatalf("%d starts", len(hs.Start))
	}
	for i := range hs.Start {
		g.Done(hs.Start[i].Event.Envelope.ID, 1, nil, 0, gt0.Add(2*time.Second))
	}
	rd = g.Ready()
	if len(rd.Send) != 2 || rd.Send[0].Kind != envelope.KindAck || rd.Send[1].Kind != envelope.KindAck || rd.Send[0].LeaseMillis != 0 {
		t.Fatalf("acks: %d envelopes", len(rd.Send))
	}
}

// A start and its cancel gathered in one batch cancel each other: the
// driver never runs a handler it should already have cancelled.
func TestGroupStartThenCancelWithdrawn(t *testing.T) {
	g, _ := soleMember(t, claims.Config{})
	g.Receive(claims.Received{Envelope: eventEnv(1)}, gt0)
	claim := g.Ready().Send[0]
	g.Receive(claims.Received{Envelope: claim}, gt0)
	g.Tick(gt0.Add(time.Second)) // started...
	higher, _ := claims.EncodeItems([]claims.Item{{Event: eventEnv(1).ID, Epoch: 2, Attempt: 2}})
	g.Receive(claims.Received{Envelope: &envelope.Envelope{Version: envelope.Version, Kind: envelope.KindClaim, ID: seqID(50),
		Sender: envelope.Sender{Service: "svc", Instance: "b", Incarnation: 1}, Topic: "workers", Payload: higher, LeaseMillis: 1000}},
		gt0.Add(time.Second)) // ...and lost before the driver took it
	rd := g.Ready()
	if len(rd.Start) != 0 || len(rd.Cancel) != 0 {
		t.Fatalf("starts %v, cancels %v; want neither", rd.Start, rd.Cancel)
	}
	if s := g.Stats(); s.Started != 1 || s.Cancelled != 1 {
		t.Fatalf("stats %+v", s)
	}
	// A Reset drops a start not taken too; the core's cancel of it is
	// harmless. The claim is released, for the driver to send once
	// connected again.
	g.Receive(claims.Received{Envelope: eventEnv(2)}, gt0.Add(time.Second))
	for _, env := range g.Ready().Send {
		g.Receive(claims.Received{Envelope: env}, gt0.Add(time.Second))
	}
	g.Tick(gt0.Add(2 * time.Second))
	g.Reset(gt0.Add(2 * time.Second))
	rd = g.Ready()
	if len(rd.Start) != 0 || len(rd.Cancel) != 1 || len(rd.Send) != 1 {
		t.Fatalf("after a Reset: starts %v, cancels %v, sends %d", rd.Start, rd.Cancel, len(rd.Send))
	}
	if rel := rd.Send[0]; rel.Kind != envelope.KindNack || rel.Error == nil || rel.Error.Code != claims.CodeReleased || rel.Correlation != eventEnv(2).ID {
		t.Fatalf("after a Reset sends %+v, want the release of its claim", rel)
	}
}

// NACKs carry the retry delay and a reason cut on a character boundary;
// a release carries CodeReleased.
func TestGroupNackEnvelopes(t *testing.T) {
	g, self := soleMember(t, claims.Config{})
	g.Receive(claims.Received{Envelope: eventEnv(1)}, gt0)
	g.Receive(claims.Received{Envelope: eventEnv(2)}, gt0)
	for _, env := range g.Ready().Send {
		g.Receive(claims.Received{Envelope: env}, gt0)
	}
	g.Tick(gt0.Add(time.Second))
	long := strings.Repeat("é", 400) // two bytes each: 300 bytes fall mid-character
	g.Done(eventEnv(1).ID, 1, errString(long), 1500*time.Millisecond, gt0.Add(time.Second))
	g.ReleaseAll(gt0.Add(time.Second))
	rd := g.Ready()
	if len(rd.Send) != 2 {
		t.Fatalf("%d envelopes, want a nack and a release", len(rd.Send))
	}
	nack, rel := rd.Send[0], rd.Send[1]
	if nack.Kind != envelope.KindNack || nack.Correlation != eventEnv(1).ID || nack.Epoch != 1 || nack.LeaseMillis != 1500 ||
		nack.Error.Code != 0 || nack.Sender != self || nack.Topic != "workers" {
		t.Errorf("nack %+v", nack)
	}
	if m := nack.Error.Message; !utf8.ValidString(m) || len(m) > 300+len("…") || !strings.HasSuffix(m, "…") {
		t.Errorf("nack reason (%d bytes) %q", len(m), m)
	}
	if rel.Kind != envelope.KindNack || rel.Correlation != eventEnv(2).ID || rel.Error.Code != claims.CodeReleased || rel.LeaseMillis != 0 {
		t.Errorf("release %+v", rel)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// Receive takes events and the group's lines, and says so; other groups'
// lines and other kinds are not taken.
func TestGroupReceiveTakes(t *testing.T) {
	g, _ := soleMember(t, claims.Config{})
	line := func(kind envelope.Kind, group string) claims.Received {
		return claims.Received{Envelope: &envelope.Envelope{Version: envelope.Version, Kind: kind, ID: seqID(99), Topic: group,
			Sender: envelope.Sender{Service: "svc", Instance: "b"}}}
	}
	for _, tc := range []struct {
		kind  envelope.Kind
		group string
		taken bool
	}{
		{envelope.KindEvent, "", true},
		{envelope.KindClaim, "workers", true},
		{envelope.KindAck, "workers", true},
		{envelope.KindNack, "workers", true},
		{envelope.KindDeadLetter, "workers", true},
		{envelope.KindHistoryClaim, "workers", true},
		{envelope.KindHistoryAck, "workers", true},
		{envelope.KindHistoryReject, "workers", true},
		{envelope.KindClaim, "other", false},
		{envelope.KindHistoryClaim, "other", false},
		{envelope.KindHeartbeat, "workers", false},
		{envelope.KindRequest, "workers", false},
		{envelope.KindState, "workers", false},
	} {
		if got := g.Receive(line(tc.kind, tc.group), gt0); got != tc.taken {
			t.Errorf("%s of group %q: taken %v, want %v", tc.kind, tc.group, got, tc.taken)
		}
		if want := tc.taken || (tc.group == "other"); claims.OfProtocol(tc.kind) != want {
			t.Errorf("OfProtocol(%s) = %v", tc.kind, !want)
		}
	}
	// The group's lines above were empty: each was malformed, and counted.
	if got := g.Stats().Malformed; got != 7 {
		t.Errorf("%d malformed, want 7", got)
	}
	if rd := g.Ready(); len(rd.Malformed) != 7 || rd.Malformed[0].From != "" || rd.Malformed[0].Kind != envelope.KindClaim {
		t.Errorf("malformed reports %+v", rd.Malformed)
	}
}

// GroupMembers are the members announcing the group for the topic (the
// topic's case does not matter), ordered by id, in any state.
func TestGroupMembers(t *testing.T) {
	all := []heartbeat.Member{
		member("svc", "b", 2, heartbeat.Suspect, "JOBS", "workers"),
		member("svc", "a", 1, heartbeat.Alive, "jobs", "workers"),
		member("svc", "c", 1, heartbeat.Alive, "jobs", "other"),
		member("svc", "d", 1, heartbeat.Alive, "jobs", ""),
		member("svc", "e", 1, heartbeat.Dead, "jobs", "workers"),
		member("svc", "f", 1, heartbeat.Alive, "other", "workers"),
	}
	got := claims.GroupMembers(all, "jobs", "workers")
	want := []claims.Member{
		{Claimant: claims.Claimant{ID: "svc/a", Incarnation: 1}, State: heartbeat.Alive},
		{Claimant: claims.Claimant{ID: "svc/b", Incarnation: 2}, State: heartbeat.Suspect},
		{Claimant: claims.Claimant{ID: "svc/e", Incarnation: 1}, State: heartbeat.Dead},
	}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("member %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/claimsview"
)

func groupMember(service, instance string, inc uint64, state heartbeat.State, subs ...heartbeat.Sub) heartbeat.Member {
	return heartbeat.Member{Service: service, Instance: instance, Nick: service + "-" + instance, Incarnation: inc, State: state,
		Beat: heartbeat.Beat{Service: service, Instance: instance, Incarnation: inc, IntervalMillis: 1000, Subs: subs}}
}

func claimEnv(t *testing.T, kind envelope.Kind, who envelope.Sender, group string, id envelope.ID, epoch uint64, attempt uint32, now time.Time) *envelope.Envelope {
	t.Helper()
	env := envelope.New(kind, who, group, itemsPayload(t, []claims.Item{{Event: id, Epoch: epoch, Attempt: attempt}}), now)
	if kind == envelope.KindClaim {
		env.LeaseMillis = 30000
	}
	return env
}

// TestClaimsWatch feeds the passive view by hand: lines seen before the
// group is known are replayed, claims, acks, nacks and dead markers land
// where they should, other groups are ignored, a member's silence takes
// nothing over in a group of two (it may be a split), its departure shows
// as a takeover due, and the table and JSON say so.
func TestClaimsWatch(t *testing.T) {
	t.Parallel()
	sub := heartbeat.Sub{Topic: "jobs", Group: "wk"}
	members := []heartbeat.Member{
		groupMember("wk", "1", 11, heartbeat.Alive, sub),
		groupMember("wk", "2", 22, heartbeat.Alive, sub, heartbeat.Sub{Topic: "other", Group: "x"}),
		groupMember("audit", "1", 33, heartbeat.Alive, heartbeat.Sub{Topic: "jobs"}), // multicast
	}
	w1 := envelope.Sender{Service: "wk", Instance: "1", Incarnation: 11}
	w2 := envelope.Sender{Service: "wk", Instance: "2", Incarnation: 22}
	pub := envelope.Sender{Service: "orders", Instance: "1", Incarnation: 1}
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int) *envelope.Envelope {
		return envelope.New(envelope.KindEvent, pub, "jobs", []byte("job"), at(ms))
	}
	acked, nacked, held, unseen := ev(0), ev(1), ev(2), envelope.NewID()

	w := claimsview.NewWatch("jobs", "", envelope.Sender{Service: "meshbot", Instance: "x"})
	w.Line(claims.Received{Envelope: acked}, at(0))
	w.Line(claims.Received{Envelope: claimEnv(t, envelope.KindClaim, w1, "wk", acked.ID, 1, 1, at(10))}, at(10))
	w.Line(claims.Received{Envelope: claimEnv(t, envelope.KindAck, w1, "wk", acked.ID, 1, 0, at(60))}, at(60))
	w.Line(claims.Received{Envelope: nacked}, at(1))
	w.Line(claims.Received{Envelope: claimEnv(t, envelope.KindClaim, w2, "wk", nacked.ID, 1, 1, at(11))}, at(11))
	nack := envelope.New(envelope.KindNack, w2, "wk", nil, at(70))
	nack.Correlation, nack.Epoch, nack.LeaseMillis, nack.Error = nacked.ID, 1, 60000, &envelope.Error{Message: "boom"}
	w.Line(claims.Received{Envelope: nack}, at(70))
	w.Line(claims.Received{Envelope: held}, at(2))
	w.Line(claims.Received{Envelope: claimEnv(t, envelope.KindClaim, w1, "wk", held.ID, 1, 1, at(12))}, at(12))
	// Another group's claim, higher: not ours.
	w.Line(claims.Received{Envelope: claimEnv(t, envelope.KindClaim, w2, "billing", held.ID, 5, 5, at(13))}, at(13))
	// A malformed claim of the group.
	w.Line(claims.Received{Envelope: envelope.New(envelope.KindClaim, w2, "wk", []byte("junk"), at(14))}, at(14))
	dead := envelope.New(envelope.KindDeadLetter, w2, "wk", nil, at(80))
	dead.Correlation, dead.Epoch, dead.Attempt = unseen, 6, 5
	dead.Error = &envelope.Error{Message: "wk/1: boom; wk/2: bang"}
	w.Line(claims.Received{Envelope: dead}, at(80))
	if d := w.Doc(at(90)); len(d.Events) != 0 {
		t.Fatalf("events before start: %+v", d.Events)
	}

	g, err := w.DefaultGroup(members)
	if err != nil || g != "wk" {
		t.Fatalf("default group %q, %v", g, err)
	}
	w.SetGroup(g)
	w.Start(members, at(100))
	d := w.Doc(at(200))
	byID := map[string]*claimsEventView{}
	for _, e := range d.Events {
		byID[e.Short] = e
	}
	check := func(id envelope.ID, state, owner string, epoch uint64, attempts uint32, seen bool, reasons ...string) {
		t.Helper()
		e := byID[id.Short()]
		if e == nil {
			t.Fatalf("%s not in the doc: %+v", id.Short(), d.Events)
		}
		if e.State != state || e.Owner != owner || e.Epoch != epoch || e.Attempts != attempts || e.Seen != seen || strings.Join(e.Reasons, "|") != strings.Join(reasons, "|") {
			t.Errorf("%s: %+v; want %s owner %q epoch %d attempts %d seen %v reasons %q", id.Short(), e, state, owner, epoch, attempts, seen, reasons)
		}
	}
	check(acked.ID, "acked", "wk/1", 1, 0, true)
	check(nacked.ID, claimsview.StateWaiting, "", 2, 1, true, "wk/2: boom")
	check(held.ID, claimsview.StateClaimed, "wk/1", 1, 0, true)
	check(unseen, "dead", "wk/2", 6, 5, false, "wk/1: boom", "wk/2: bang") // from the marker
	if e := byID[held.ID.Short()]; e.LeaseLeftMS == nil || *e.LeaseLeftMS < 29_000 || *e.LeaseLeftMS > 30_000 {
		t.Errorf("lease left of the held event: %v", e.LeaseLeftMS)
	}
	if want := (claimsview.Totals{Pending: 2, Acked: 1, Dead: 1, FailedAttempts: 1, Malformed: 1}); d.Totals != want {
		t.Errorf("totals %+v, want %+v", d.Totals, want)
	}
	if len(d.Members) != 2 || d.Members[0] != (claimsview.MemberView{ID: "wk/1", Incarnation: 11, State: "alive"}) {
		t.Errorf("members: %+v", d.Members)
	}
	if d.Events[0].State != claimsview.StateWaiting && d.Events[0].State != claimsview.StateClaimed || d.Events[len(d.Events)-1].State == claimsview.StateClaimed {
		t.Errorf("pending events are not first: %+v", d.Events)
	}

	// wk/1 falls silent (dead by silence, no QUIT seen): it may be alive
	// on the other side of a split, so wk/2 alone is no majority of the
	// two (half, without the lowest id: PROTOCOL §6.14) and judges
	// nothing: the claim stays wk/1's.
	members[0].State = heartbeat.Dead
	w.Tick(members, at(300))
	d = w.Doc(at(300))
	for _, e := range d.Events {
		byID[e.Short] = e
	}
	check(held.ID, claimsview.StateClaimed, "wk/1", 1, 0, true)

	// The server reports wk/1's departure (a QUIT): its claim is due for a
	// takeover.
	members[0].Departed = true
	w.Tick(members, at(400))
	d = w.Doc(at(400))
	for _, e := range d.Events {
		byID[e.Short] = e
	}
	check(held.ID, claimsview.StateWaiting, "", 2, 1, true, "wk/1 left")

	d.Channel = "#mesh.jobs"
	var b strings.Builder
	claimsview.WriteTable(&b, d)
	out := b.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  #mesh\.jobs  group wk  watching since \d\d:\d\d:\d\d \(.*\)$`),
		regexp.MustCompile(`(?m)^members: wk/1 \(dead\), wk/2$`),
		regexp.MustCompile(`(?m)^EVENT +STATE +OWNER +EPOCH +FAILED +LEASE LEFT +AGE +REASONS$`),
		regexp.MustCompile(`(?m)^` + nacked.ID.Short() + ` +waiting +- +2 +1 +- +\d+\.\ds +wk/2: boom$`),
		regexp.MustCompile(`(?m)^` + held.ID.Short() + ` +waiting +- +2 +1 +- +\d+\.\ds +wk/1 left$`),
		regexp.MustCompile(`(?m)^` + acked.ID.Short() + ` +acked +wk/1 +1 +0 +- +\d+\.\ds +-$`),
		regexp.MustCompile(`(?m)^` + unseen.Short() + `\* +dead +wk/2 +6 +5 +- +\d+\.\ds +wk/1: boom; wk/2: bang$`),
		regexp.MustCompile(`(?m)^\* published before this command started watching`),
		regexp.MustCompile(`(?m)^2 pending, 1 acked, 1 dead-lettered, 2 failed attempts, 1 malformed claims lines$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("table does not match %s:\n%s", want, out)
		}
	}
	js, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil || back["group"] != "wk" || back["totals"].(map[string]any)["acked"] != 1.0 {
		t.Errorf("JSON: %s (%v)", js, err)
	}
}

// TestClaimsDefaultGroup: without --group, the one group announced for the
// topic; none or several is an error that names what was seen.
func TestClaimsDefaultGroup(t *testing.T) {
	t.Parallel()
	w := claimsview.NewWatch("jobs", "", envelope.Sender{Service: "meshbot", Instance: "x"})
	w.Line(claims.Received{Envelope: envelope.New(envelope.KindClaim, envelope.Sender{Service: "wk", Instance: "1"}, "ghosts", nil, time.Now())}, time.Now())
	none := []heartbeat.Member{groupMember("audit", "1", 1, heartbeat.Alive, heartbeat.Sub{Topic: "jobs"}),
		groupMember("wk", "9", 1, heartbeat.Dead, heartbeat.Sub{Topic: "jobs", Group: "gone"})}
	if _, err := w.DefaultGroup(none); err == nil || !strings.Contains(groupUsage(err).Error(), `no member announces an anycast group for jobs in its heartbeats; groups seen in claims lines: "ghosts"; give --group`) {
		t.Errorf("no group: %v", err)
	}
	two := append(none, groupMember("wk", "1", 1, heartbeat.Alive, heartbeat.Sub{Topic: "jobs", Group: "wk"}),
		groupMember("bill", "1", 1, heartbeat.Suspect, heartbeat.Sub{Topic: "jobs", Group: "billing"}))
	if _, err := w.DefaultGroup(two); err == nil || !strings.Contains(err.Error(), "2 anycast groups share jobs: billing, wk;") {
		t.Errorf("two groups: %v", err)
	}
	if g, err := w.DefaultGroup(two[:3]); g != "wk" || err != nil {
		t.Errorf("one group: %q, %v", g, err)
	}
}

// TestClaimsUsage: bad calls fail before connecting, with a pointer to
// --help.
func TestClaimsUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no topic", []string{"claims"}, "meshbot: claims: missing TOPIC"},
		{"two topics", []string{"claims", "a", "b"}, "meshbot: claims: too many arguments (2)"},
		{"zero for", []string{"claims", "jobs", "--for", "0s"}, "meshbot: claims: --for 0s: want a positive duration"},
		{"for and watch", []string{"claims", "jobs", "--for", "2s", "--watch"}, "meshbot: claims: --for and --watch exclude each other"},
		{"bad group", []string{"claims", "jobs", "--group", "a,b"}, `meshbot: claims: --group: mesh: group "a,b": no spaces, commas`},
		{"reserved topic", []string{"claims", "_hb"}, `topic "_hb": segments starting with '_' are reserved`},
		{"other namespace", []string{"claims", "#other.jobs"}, "channel #other.jobs is not in namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, "", append(tc.args, "--server", closedAddr(t))...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "'meshbot claims --help' for usage.") {
				t.Errorf("exit %d, stderr %q; want 1 and %q with the usage hint", r.code, r.stderr, tc.want)
			}
		})
	}
}

// TestClaimsWatchRelease: a member shutting down gives its claims back
// (claims.Group.ReleaseAll: a NACK with the released code); the view shows
// a release, not a failed attempt, and the event waits for the next owner
// at once.
func TestClaimsWatchRelease(t *testing.T) {
	t.Parallel()
	sub := heartbeat.Sub{Topic: "jobs", Group: "wk"}
	members := []heartbeat.Member{groupMember("wk", "1", 11, heartbeat.Alive, sub)}
	w1 := envelope.Sender{Service: "wk", Instance: "1", Incarnation: 11}
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	// The worker: the only member, so it owns every event.
	worker := claims.NewGroup(claims.GroupConfig{Topic: "jobs", Group: "wk", Sender: w1})
	worker.Members(members, at(0))
	worker.Session(t0.Add(time.Hour), at(0))
	worker.SetReady(true, at(0))

	w := claimsview.NewWatch("jobs", "wk", envelope.Sender{Service: "meshbot", Instance: "x"})
	w.Start(members, at(0))
	// Both see every line, the worker's own included.
	seen := func(env *envelope.Envelope, ms int) {
		w.Line(claims.Received{Envelope: env}, at(ms))
		worker.Receive(claims.Received{Envelope: env}, at(ms))
	}
	ev := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "1"}, "jobs", []byte("job"), at(1))
	seen(ev, 1)
	rd := worker.Ready()
	if len(rd.Send) != 1 || rd.Send[0].Kind != envelope.KindClaim {
		t.Fatalf("the worker sends %v, want its claim", rd.Send)
	}
	seen(rd.Send[0], 10)
	worker.Tick(at(100))
	if rd := worker.Ready(); len(rd.Start) != 1 {
		t.Fatalf("the worker starts %v, want its handler", rd.Start)
	}
	worker.ReleaseAll(at(200))
	rd = worker.Ready()
	if len(rd.Send) != 1 || rd.Send[0].Kind != envelope.KindNack || rd.Send[0].Error.Code != claims.CodeReleased {
		t.Fatalf("ReleaseAll sends %v, want one release", rd.Send)
	}
	seen(rd.Send[0], 200)

	d := w.Doc(at(300))
	if len(d.Events) != 1 {
		t.Fatalf("events %+v", d.Events)
	}
	e := d.Events[0]
	if e.State != claimsview.StateWaiting || e.Epoch != 2 || e.Attempts != 0 || strings.Join(e.Reasons, "|") != "wk/1: released" {
		t.Errorf("released event: %+v; want waiting at epoch 2, no failed attempt, reason %q", e, "wk/1: released")
	}
	if want := (claimsview.Totals{Pending: 1, Released: 1}); d.Totals != want {
		t.Errorf("totals %+v, want %+v", d.Totals, want)
	}
	var b strings.Builder
	claimsview.WriteTable(&b, d)
	if !strings.Contains(b.String(), "1 pending, 0 acked, 0 dead-lettered, 0 failed attempts, 1 released\n") {
		t.Errorf("table:\n%s", b.String())
	}
}

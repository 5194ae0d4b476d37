package heartbeat

// The View's scenarios are scripts: testdata/scripts/*.txt, replayed by
// TestScripts (script_test.go). What stays here is what a script cannot
// say: properties over random inputs, and details of the Go API.

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// t0 is the epoch of simulated time in these tests; nothing reads the
// clock.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const ms = time.Millisecond

// fmtEvents renders events as "KIND SVC/INST#INC [REASON]", "; "-separated.
func fmtEvents(es []Event) string {
	var out []string
	for _, e := range es {
		s := fmt.Sprintf("%s %s/%s#%d", e.Kind, e.Member.Service, e.Member.Instance, e.Member.Incarnation)
		if e.Reason != "" {
			s += " " + e.Reason
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// fmtMembers renders members as "SVC/INST#INC STATE NICK, ...".
func fmtMembers(ms []Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s/%s#%d %s %s", m.Service, m.Instance, m.Incarnation, m.State, m.Nick))
	}
	return strings.Join(out, ", ")
}

// nickTableErr returns the first inconsistency of v's nick index, and the
// member it concerns: every nick it holds must name a member that uses
// that nick, and every member that is not dead must be found under its
// nick (so that the server's QUIT reaches it) unless another member uses
// that nick too.
func nickTableErr(v *View) (key, error) {
	for n, k := range v.byNick {
		m := v.members[k]
		if m == nil {
			return k, fmt.Errorf("nick %q names %s/%s, which the view does not hold", n, k.service, k.instance)
		}
		if !strings.EqualFold(m.Nick, n) {
			return k, fmt.Errorf("nick %q names %s/%s, whose nick is %q", n, k.service, k.instance, m.Nick)
		}
	}
	for k, m := range v.members {
		if m.State == Dead {
			continue
		}
		if nickShared(v, k, m.Nick) {
			continue // another instance took the nick since: m's quit went unseen
		}
		if k2, ok := v.byNick[strings.ToLower(m.Nick)]; !ok || k2 != k {
			return k, fmt.Errorf("%s/%s (%s) is not found under its nick %q (maps to %v)", k.service, k.instance, m.State, m.Nick, k2)
		}
	}
	return key{}, nil
}

func nickShared(v *View, k key, nick string) bool {
	for k2, m2 := range v.members {
		if k2 != k && strings.EqualFold(m2.Nick, nick) {
			return true
		}
	}
	return false
}

// Members of a service nobody runs is nil; All of an empty view is empty
// but not nil.
func TestViewEmptyLists(t *testing.T) {
	v := New(Config{})
	v.Heartbeat("n", &Beat{Service: "web", Instance: "a", Incarnation: 1, Seq: 1, IntervalMillis: 1000}, t0)
	if got := v.Members("nosuch"); got != nil {
		t.Errorf("Members(nosuch) = %#v, want nil", got)
	}
	if got := New(Config{}).All(); got == nil || len(got) != 0 {
		t.Errorf("All of an empty view = %#v, want empty", got)
	}
}

// An event's member is a copy: the view's later changes do not show in it,
// and changing it does not change the view.
func TestViewEventIsACopy(t *testing.T) {
	v := New(Config{})
	evs := v.Heartbeat("Nick", &Beat{Service: "s", Instance: "a", Incarnation: 7, Seq: 1, IntervalMillis: 500, Depends: []string{"db"}}, t0)
	left := v.Gone("nick", "quit: x", t0.Add(time.Second))
	if len(evs) != 1 || len(left) != 1 {
		t.Fatalf("events %v, %v", fmtEvents(evs), fmtEvents(left))
	}
	if m := evs[0].Member; m.State != Alive || !m.Since.Equal(t0) {
		t.Errorf("joined snapshot changed by the quit: %+v", m)
	}
	v.Heartbeat("Nick", &Beat{Service: "s", Instance: "a", Incarnation: 8, Seq: 1, IntervalMillis: 500}, t0.Add(2*time.Second))
	if m := left[0].Member; m.Incarnation != 7 || m.State != Dead {
		t.Errorf("left snapshot changed by the restart: %+v", m)
	}
	left[0].Member.Nick = "changed"
	if got := v.All()[0].Nick; got != "Nick" {
		t.Errorf("changing an event changed the view: nick %q", got)
	}
}

func TestStrings(t *testing.T) {
	for s, want := range map[State]string{Alive: "alive", Suspect: "suspect", Dead: "dead", 0: "unknown", 9: "unknown"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d) = %q, want %q", s, got, want)
		}
	}
	for k, want := range map[EventKind]string{Joined: "joined", Suspected: "suspected", Recovered: "recovered", Restarted: "restarted", Left: "left"} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d) = %q, want %q", k, got, want)
		}
	}
}

// TestViewNextIsExact drives views with random inputs and checks Next():
// a Tick before it changes nothing, a Tick at it changes something (an
// event, or a dead member forgotten), and after Tick(now) nothing is due at
// or before now.
func TestViewNextIsExact(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		v := New(Config{Forget: time.Duration(1+rng.IntN(5)) * time.Second})
		now := t0
		seqs := map[string]uint64{}
		for range 300 {
			now = now.Add(time.Duration(rng.IntN(800)) * ms)
			// Catch up with the view first, as a runtime would.
			for n := v.Next(); !n.IsZero() && !n.After(now); n = v.Next() {
				if before := n.Add(-time.Nanosecond); rng.IntN(3) == 0 {
					if evs := v.Tick(before); len(evs) != 0 {
						t.Fatalf("seed %d: Tick 1ns before Next gave %v", seed, fmtEvents(evs))
					}
				}
				allBefore := len(v.All())
				evs := v.Tick(n)
				if len(evs) == 0 && len(v.All()) == allBefore {
					t.Fatalf("seed %d: Tick at Next() %v did nothing", seed, n.Sub(t0))
				}
				if m := v.Next(); !m.IsZero() && !m.After(n) {
					t.Fatalf("seed %d: after Tick(%v), Next() = %v", seed, n.Sub(t0), m.Sub(t0))
				}
			}
			inst := fmt.Sprint("i", rng.IntN(5))
			switch r := rng.IntN(10); {
			case r < 7:
				seqs[inst]++
				v.Heartbeat("n"+inst, &Beat{Service: "s", Instance: inst, Incarnation: 1, Seq: seqs[inst], IntervalMillis: uint32(100 * (1 + rng.IntN(10)))}, now)
			case r < 8:
				v.Gone("n"+inst, "quit", now)
			case r < 9:
				v.Suspend()
			default:
				v.Resume(now)
			}
		}
	}
}

// TestBackFromSilence: a member dead by silence that comes back — by its
// JOIN in a netjoin's burst, or by a beat — is Recovered with a split
// whose Since is its last beat (a split the observer did not see: it
// moved servers meanwhile); one that left for certain comes back without.
func TestBackFromSilence(t *testing.T) {
	beat := func(inst string, seq uint64) *Beat {
		return &Beat{Service: "svc", Instance: inst, Incarnation: 1, Seq: seq, IntervalMillis: 1000}
	}
	for _, via := range []string{"join", "beat"} {
		v := New(Config{})
		v.Heartbeat("svc-1", beat("1", 1), t0)
		v.Heartbeat("svc-2", beat("2", 1), t0)
		v.Gone("svc-2", "quit: bye", t0.Add(100*ms))
		if evs := fmtEvents(v.Tick(t0.Add(3 * time.Second))); evs != "left svc/1#1 heartbeats stopped" {
			t.Fatalf("%s: silence: %q", via, evs)
		}
		back := t0.Add(5 * time.Second)
		var evs []Event
		if via == "join" {
			evs = append(v.Rejoined("svc-1", back), v.Rejoined("svc-2", back)...)
		} else {
			evs = append(v.Heartbeat("svc-1", beat("1", 2), back), v.Heartbeat("svc-2", beat("2", 2), back)...)
		}
		var got []string
		for _, e := range evs {
			since := "no split"
			if !e.Split.Since.IsZero() {
				since = "since " + e.Split.Since.Sub(t0).String()
			}
			got = append(got, fmt.Sprintf("%s %s %s", e.Kind, e.Member.Instance, since))
		}
		want := []string{"recovered 1 since 0s"}
		if via == "beat" {
			want = append(want, "recovered 2 no split") // it left for certain: back by a beat only
		}
		if strings.Join(got, "; ") != strings.Join(want, "; ") {
			t.Errorf("%s: %q, want %q", via, got, want)
		}
	}
}

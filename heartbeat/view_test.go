package heartbeat

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// t0 is the start of simulated time in these tests; nothing reads the clock.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// step is one input to a View and the events it must produce.
//
// in is one of
//
//	beat NICK SVC/INST INC SEQ [INTERVAL]   (INTERVAL a duration, default 1s; 0 = none announced)
//	gone NICK REASON...
//	rename FROM TO
//	suspend | resume | tick
//
// out lists the events, "; "-separated, each "KIND SVC/INST#INC [REASON]",
// in the order returned. next, when set, is Next() after the step as an
// offset from t0, or "none" for the zero time.
type step struct {
	at   time.Duration
	in   string
	out  string
	next string
}

const ms = time.Millisecond

func parseStep(t *testing.T, v *View, s step) []Event {
	t.Helper()
	f := strings.Fields(s.in)
	now := at(s.at)
	switch f[0] {
	case "beat":
		svc, inst, _ := strings.Cut(f[2], "/")
		inc, _ := strconv.ParseUint(f[3], 10, 64)
		seq, _ := strconv.ParseUint(f[4], 10, 64)
		iv := time.Second
		if len(f) > 5 {
			var err error
			if iv, err = time.ParseDuration(f[5]); err != nil {
				t.Fatalf("%q: %v", s.in, err)
			}
		}
		b := &Beat{Service: svc, Instance: inst, Incarnation: inc, Seq: seq, IntervalMillis: uint32(iv / ms)}
		return v.Heartbeat(f[1], b, now)
	case "gone":
		return v.Gone(f[1], strings.Join(f[2:], " "), now)
	case "rename":
		v.Renamed(f[1], f[2])
		return nil
	case "suspend":
		v.Suspend()
		return nil
	case "resume":
		v.Resume(now)
		return nil
	case "tick":
		return v.Tick(now)
	}
	t.Fatalf("bad step %q", s.in)
	return nil
}

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

func fmtNext(v *View) string {
	n := v.Next()
	if n.IsZero() {
		return "none"
	}
	return n.Sub(t0).String()
}

func runSteps(t *testing.T, v *View, steps []step) {
	t.Helper()
	for i, s := range steps {
		got := fmtEvents(parseStep(t, v, s))
		if got != s.out {
			t.Fatalf("step %d (%v %s): events\n got: %q\nwant: %q", i, s.at, s.in, got, s.out)
		}
		if s.next != "" {
			if got := fmtNext(v); got != s.next {
				t.Fatalf("step %d (%v %s): Next() = %s, want %s", i, s.at, s.in, got, s.next)
			}
		}
	}
}

func TestView(t *testing.T) {
	cases := []struct {
		name       string
		cfg        Config
		steps      []step
		members    string // Members("") at the end
		all        string // All() at the end
		skipFinish bool
	}{
		{
			name:    "first beat joins",
			steps:   []step{{0, "beat a s/a 1 1", "joined s/a#1", "2s"}},
			members: "s/a#1 alive a",
			all:     "s/a#1 alive a",
		},
		{
			name: "beats within the thresholds give no events",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{1999 * ms, "tick", "", "2s"},
				{1900 * ms, "beat a s/a 1 2", "", "3.9s"},
				{3800 * ms, "tick", "", "3.9s"},
				{3899 * ms, "beat a s/a 1 3", "", "5.899s"},
				{5898 * ms, "tick", "", "5.899s"},
			},
			members: "s/a#1 alive a",
			all:     "s/a#1 alive a",
		},
		{
			name: "suspected and left at exactly the announced interval's thresholds",
			steps: []step{
				{0, "beat a s/a 1 1 500ms", "joined s/a#1", "1s"},
				{999 * ms, "tick", "", "1s"},
				{1000 * ms, "tick", "suspected s/a#1", "1.5s"},
				{1000 * ms, "tick", "", "1.5s"},
				{1499 * ms, "tick", "", "1.5s"},
				{1500 * ms, "tick", "left s/a#1 heartbeats stopped", "31.5s"},
				{1500 * ms, "tick", "", "31.5s"},
			},
			members: "",
			all:     "s/a#1 dead a",
		},
		{
			name: "no announced interval: the configured one",
			cfg:  Config{Interval: 2 * time.Second},
			steps: []step{
				{0, "beat a s/a 1 1 0s", "joined s/a#1", "4s"},
				{4 * time.Second, "tick", "suspected s/a#1", "6s"},
				{6 * time.Second, "tick", "left s/a#1 heartbeats stopped", "36s"},
			},
			all: "s/a#1 dead a",
		},
		{
			name: "fractional thresholds",
			cfg:  Config{SuspectAfter: 2.5, DeadAfter: 4, Forget: 10 * time.Second},
			steps: []step{
				{0, "beat a s/a 1 1 200ms", "joined s/a#1", "500ms"},
				{499 * ms, "tick", "", "500ms"},
				{500 * ms, "tick", "suspected s/a#1", "800ms"},
				{800 * ms, "tick", "left s/a#1 heartbeats stopped", "10.8s"},
			},
			all: "s/a#1 dead a",
		},
		{
			name: "DeadAfter not above SuspectAfter: SuspectAfter+1",
			cfg:  Config{SuspectAfter: 3, DeadAfter: 2},
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "3s"},
				{3 * time.Second, "tick", "suspected s/a#1", "4s"},
				{4 * time.Second, "tick", "left s/a#1 heartbeats stopped", "34s"},
			},
			all: "s/a#1 dead a",
		},
		{
			name: "a new announced interval applies from its beat",
			steps: []step{
				{0, "beat a s/a 1 1 1s", "joined s/a#1", "2s"},
				{1 * time.Second, "beat a s/a 1 2 3s", "", "7s"},
				{6 * time.Second, "tick", "", "7s"},
				{7 * time.Second, "tick", "suspected s/a#1", "10s"},
			},
			members: "s/a#1 suspect a",
			all:     "s/a#1 suspect a",
		},
		{
			name: "a late tick goes straight to left",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{5 * time.Second, "tick", "left s/a#1 heartbeats stopped", "35s"},
			},
			all: "s/a#1 dead a",
		},
		{
			name: "a beat after suspect recovers",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{2 * time.Second, "tick", "suspected s/a#1", "3s"},
				{2500 * ms, "beat a s/a 1 2", "recovered s/a#1", "4.5s"},
				{3 * time.Second, "tick", "", "4.5s"},
			},
			members: "s/a#1 alive a",
			all:     "s/a#1 alive a",
		},
		{
			name: "a beat after a death by the clock recovers",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{2 * time.Second, "tick", "suspected s/a#1", "3s"},
				{3 * time.Second, "tick", "left s/a#1 heartbeats stopped", "33s"},
				{4 * time.Second, "beat a s/a 1 2", "recovered s/a#1", "6s"},
			},
			members: "s/a#1 alive a",
			all:     "s/a#1 alive a",
		},
		{
			name: "gone: left at once with the reason; twice or unknown is nothing",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{0, "beat b s/b 1 1", "joined s/b#1", "2s"},
				{500 * ms, "gone A Quit: Ping timeout: 120 seconds", "left s/a#1 Quit: Ping timeout: 120 seconds", "2s"},
				{600 * ms, "gone a quit", "", "2s"},
				{600 * ms, "gone nobody quit", "", "2s"},
				{2 * time.Second, "tick", "suspected s/b#1", "3s"},
				{3 * time.Second, "tick", "left s/b#1 heartbeats stopped", "30.5s"},
			},
			members: "",
			all:     "s/a#1 dead a, s/b#1 dead b",
		},
		{
			name: "gone of a suspect",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{2 * time.Second, "tick", "suspected s/a#1", "3s"},
				{2100 * ms, "gone a part: bye", "left s/a#1 part: bye", "32.1s"},
				{3 * time.Second, "tick", "", "32.1s"},
			},
			all: "s/a#1 dead a",
		},
		{
			name: "a new incarnation restarts: one member",
			steps: []step{
				{0, "beat a s/a 1 5", "joined s/a#1", "2s"},
				{1 * time.Second, "beat a s/a 2 1", "restarted s/a#2", "3s"},
				{1500 * ms, "beat a s/a 1 6", "", "3s"}, // late beat of the old incarnation
				{2 * time.Second, "beat a s/a 2 2", "", "4s"},
			},
			members: "s/a#2 alive a",
			all:     "s/a#2 alive a",
		},
		{
			name: "a new incarnation under a new nick, the old nick's quit comes late",
			steps: []step{
				{0, "beat a s/a 1 5", "joined s/a#1", "2s"},
				{1 * time.Second, "beat a_ s/a 2 1", "restarted s/a#2", "3s"},
				{1100 * ms, "gone a quit: ping timeout", "", "3s"},
				{1200 * ms, "gone a_ quit: bye", "left s/a#2 quit: bye", "31.2s"},
			},
			all: "s/a#2 dead a_",
		},
		{
			name: "restart after gone, and join again after forget",
			cfg:  Config{Forget: 10 * time.Second},
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{1 * time.Second, "gone a quit", "left s/a#1 quit", "11s"},
				{2 * time.Second, "beat a s/a 2 1", "restarted s/a#2", "4s"},
				{3 * time.Second, "gone a quit", "left s/a#2 quit", "13s"},
				{12999 * ms, "tick", "", "13s"},
				{13 * time.Second, "tick", "", "none"},
				{14 * time.Second, "beat a s/a 3 1", "joined s/a#3", "16s"},
			},
			members: "s/a#3 alive a",
			all:     "s/a#3 alive a",
		},
		{
			name: "a lower seq is ignored and does not refresh",
			steps: []step{
				{0, "beat a s/a 1 5", "joined s/a#1", "2s"},
				{1 * time.Second, "beat a s/a 1 4", "", "2s"},
				{2 * time.Second, "tick", "suspected s/a#1", "3s"},
				{2500 * ms, "beat a s/a 1 3", "", "3s"},
				{2600 * ms, "beat a s/a 1 6", "recovered s/a#1", "4.6s"},
			},
			members: "s/a#1 alive a",
			all:     "s/a#1 alive a",
		},
		{
			// A duplicate says nothing new: it must neither refresh a member
			// nor bring a suspect or dead one back (doc.go: "reordering
			// cannot resurrect the past").
			name: "a duplicate beat (same seq) is ignored",
			steps: []step{
				{0, "beat a s/a 1 5", "joined s/a#1", "2s"},
				{1 * time.Second, "beat a s/a 1 5", "", "2s"},
				{2 * time.Second, "tick", "suspected s/a#1", "3s"},
				{2500 * ms, "beat a s/a 1 5", "", "3s"},
				{2600 * ms, "gone a quit", "left s/a#1 quit", "32.6s"},
				{2700 * ms, "beat a s/a 1 5", "", "32.6s"},
			},
			all: "s/a#1 dead a",
		},
		{
			name: "unnumbered beats (seq 0) are always fresh",
			steps: []step{
				{0, "beat a s/a 1 0", "joined s/a#1", "2s"},
				{1 * time.Second, "beat a s/a 1 0", "", "3s"},
			},
			members: "s/a#1 alive a",
			all:     "s/a#1 alive a",
		},
		{
			name: "a reconnect after gone, same incarnation, recovers",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{500 * ms, "gone a quit: connection reset", "left s/a#1 quit: connection reset", "30.5s"},
				{900 * ms, "beat a2 s/a 1 2", "recovered s/a#1", "2.9s"},
				{1 * time.Second, "gone a quit", "", "2.9s"},
				{1100 * ms, "gone a2 quit", "left s/a#1 quit", "31.1s"},
			},
			all: "s/a#1 dead a2",
		},
		{
			name: "a nick reused by another instance after the quit",
			steps: []step{
				{0, "beat x s/a 1 1", "joined s/a#1", "2s"},
				{500 * ms, "gone x quit", "left s/a#1 quit", "30.5s"},
				{600 * ms, "beat X s/b 1 1", "joined s/b#1", "2.6s"},
				{700 * ms, "gone x quit", "left s/b#1 quit", "30.5s"},
			},
			all: "s/a#1 dead x, s/b#1 dead X",
		},
		{
			name: "a nick taken by another instance before the first one's quit",
			steps: []step{
				{0, "beat x s/a 1 1", "joined s/a#1", "2s"},
				{600 * ms, "beat x s/b 1 1", "joined s/b#1", "2s"},
				{700 * ms, "gone x quit", "left s/b#1 quit", "2s"},
			},
			members: "s/a#1 alive x",
			all:     "s/a#1 alive x, s/b#1 dead x",
		},
		{
			// x quits and is reused by s/b; then s/a restarts under another
			// nick. s/a's restart must not unmap x, which is s/b's now:
			// s/b's quit must still kill s/b.
			name: "a restart under a new nick leaves another instance's nick alone",
			steps: []step{
				{0, "beat x s/a 1 1", "joined s/a#1", "2s"},
				{100 * ms, "gone x quit", "left s/a#1 quit", "30.1s"},
				{200 * ms, "beat x s/b 1 1", "joined s/b#1", "2.2s"},
				{300 * ms, "beat y s/a 2 1", "restarted s/a#2", "2.2s"},
				{400 * ms, "gone x quit", "left s/b#1 quit", "2.3s"},
			},
			members: "s/a#2 alive y",
			all:     "s/a#2 alive y, s/b#1 dead x",
		},
		{
			name: "renamed: the quit follows the new nick",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{100 * ms, "rename A b", "", "2s"},
				{200 * ms, "gone a quit", "", "2s"},
				{300 * ms, "rename nobody c", "", "2s"},
				{1 * time.Second, "beat b s/a 1 2", "", "3s"},
				{1100 * ms, "gone B quit", "left s/a#1 quit", "31.1s"},
			},
			all: "s/a#1 dead b",
		},
		{
			// The observer missed s/a's rename a→b (it was cut off) and sees
			// s/a beat as b. Nick a is s/a's no more: a later rename of a
			// (another client's) must not move s/a, whose quit as b must
			// kill it.
			name: "a nick change seen only in beats drops the old nick",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{100 * ms, "suspend", "", "none"},
				{900 * ms, "resume", "", "2.9s"},
				{1 * time.Second, "beat b s/a 1 2", "", "3s"},
				{1100 * ms, "rename a c", "", "3s"},
				{1200 * ms, "gone b quit", "left s/a#1 quit", "31.2s"},
			},
			all: "s/a#1 dead b",
		},
		{
			// A beat the view ignores (an older incarnation, here from the
			// old process's nick) must not change whom a nick belongs to.
			name: "an ignored beat does not take a nick",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{100 * ms, "beat a2 s/a 2 1", "restarted s/a#2", "2.1s"},
				{200 * ms, "beat a s/a 1 2", "", "2.1s"}, // late, old incarnation
				{300 * ms, "rename a z", "", "2.1s"},     // the old process, still connected
				{400 * ms, "gone a2 quit", "left s/a#2 quit", "30.4s"},
			},
			all: "s/a#2 dead a2",
		},
		{
			name: "suspend stops judging; resume gives a fresh interval",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{0, "beat b s/b 1 1 500ms", "joined s/b#1", "1s"},
				{500 * ms, "suspend", "", "none"},
				{10 * time.Second, "tick", "", "none"},
				{10 * time.Second, "resume", "", "11s"},
				{10999 * ms, "tick", "", "11s"},
				{11 * time.Second, "tick", "suspected s/b#1", "11.5s"},
				{11200 * ms, "beat b s/b 1 2 500ms", "recovered s/b#1", "12s"},
				{12 * time.Second, "tick", "suspected s/a#1", "12.2s"},
				{12200 * ms, "tick", "suspected s/b#1", "12.7s"},
			},
			members: "s/a#1 suspect a, s/b#1 suspect b",
			all:     "s/a#1 suspect a, s/b#1 suspect b",
		},
		{
			name: "suspend: a suspect stays suspect, dies a full interval after resume",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{2 * time.Second, "tick", "suspected s/a#1", "3s"},
				{2500 * ms, "suspend", "", "none"},
				{20 * time.Second, "resume", "", "23s"},
				{23 * time.Second, "tick", "left s/a#1 heartbeats stopped", "53s"},
			},
			all: "s/a#1 dead a",
		},
		{
			name: "suspended: gone still kills and the dead are still forgotten",
			cfg:  Config{Forget: 5 * time.Second},
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{0, "beat b s/b 1 1", "joined s/b#1", "2s"},
				{100 * ms, "suspend", "", "none"},
				{200 * ms, "gone a quit", "left s/a#1 quit", "5.2s"},
				{5200 * ms, "tick", "", "none"},
				{6 * time.Second, "resume", "", "8s"},
			},
			members: "s/b#1 alive b",
			all:     "s/b#1 alive b",
		},
		{
			name: "resume does not revive the dead",
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{3 * time.Second, "tick", "left s/a#1 heartbeats stopped", "33s"},
				{3 * time.Second, "suspend", "", "33s"},
				{4 * time.Second, "resume", "", "33s"},
				{33 * time.Second, "tick", "", "none"},
			},
		},
		{
			name: "dead members are forgotten after Forget",
			cfg:  Config{Forget: 10 * time.Second},
			steps: []step{
				{0, "beat a s/a 1 1", "joined s/a#1", "2s"},
				{1 * time.Second, "gone a quit", "left s/a#1 quit", "11s"},
				{10999 * ms, "tick", "", "11s"},
				{11 * time.Second, "tick", "", "none"},
				{12 * time.Second, "beat a s/a 1 2", "joined s/a#1", "14s"},
			},
			members: "s/a#1 alive a",
			all:     "s/a#1 alive a",
		},
		{
			name: "members excludes the dead, all includes them, both sorted",
			steps: []step{
				{0, "beat n1 web/z 1 1", "joined web/z#1", "2s"},
				{0, "beat n2 db/b 1 1", "joined db/b#1", "2s"},
				{0, "beat n3 web/a 1 1", "joined web/a#1", "2s"},
				{0, "beat n4 db/a 1 1", "joined db/a#1", "2s"},
				{1 * time.Second, "beat n2 db/b 1 2", "", "2s"},
				{1 * time.Second, "beat n4 db/a 1 2", "", "2s"},
				{1 * time.Second, "gone n3 quit", "left web/a#1 quit", "2s"},
				{2 * time.Second, "tick", "suspected web/z#1", "3s"},
			},
			members: "db/a#1 alive n4, db/b#1 alive n2, web/z#1 suspect n1",
			all:     "db/a#1 alive n4, db/b#1 alive n2, web/a#1 dead n3, web/z#1 suspect n1",
		},
		{
			name: "events of one tick are sorted by service and instance",
			steps: []step{
				{0, "beat n1 web/z 1 1", "joined web/z#1", "2s"},
				{0, "beat n2 db/b 1 1", "joined db/b#1", "2s"},
				{0, "beat n3 web/a 1 1", "joined web/a#1", "2s"},
				{0, "beat n4 db/a 1 1", "joined db/a#1", "2s"},
				{0, "beat n5 a/a 1 1 2s", "joined a/a#1", "2s"},
				{2 * time.Second, "tick", "suspected db/a#1; suspected db/b#1; suspected web/a#1; suspected web/z#1", "3s"},
				{4 * time.Second, "tick", "suspected a/a#1; left db/a#1 heartbeats stopped; left db/b#1 heartbeats stopped; left web/a#1 heartbeats stopped; left web/z#1 heartbeats stopped", "6s"},
			},
			members: "a/a#1 suspect n5",
			all:     "a/a#1 suspect n5, db/a#1 dead n4, db/b#1 dead n2, web/a#1 dead n3, web/z#1 dead n1",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Map order is random: run each script a few times.
			for range 5 {
				v := New(c.cfg)
				runSteps(t, v, c.steps)
				if got := fmtMembers(v.Members("")); got != c.members {
					t.Fatalf("Members:\n got: %q\nwant: %q", got, c.members)
				}
				if got := fmtMembers(v.All()); got != c.all {
					t.Fatalf("All:\n got: %q\nwant: %q", got, c.all)
				}
				checkNickTable(t, v)
			}
		})
	}
}

// checkNickTable checks the view's nick index: every nick it holds names a
// member that uses that nick, and every member that is not dead is found
// under its nick (so that the server's QUIT reaches it) unless another
// member uses that nick too.
func checkNickTable(t testing.TB, v *View) {
	t.Helper()
	if _, err := nickTableErr(v); err != nil {
		t.Fatal(err)
	}
}

// nickTableErr returns the first inconsistency of v's nick index, and the
// member it concerns.
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

func TestViewMembersFilter(t *testing.T) {
	v := New(Config{})
	for i, id := range []string{"web/b", "db/a", "web/a", "cache/x"} {
		svc, inst, _ := strings.Cut(id, "/")
		v.Heartbeat(fmt.Sprint("n", i), &Beat{Service: svc, Instance: inst, Incarnation: 1, Seq: 1, IntervalMillis: 1000}, t0)
	}
	v.Gone("n2", "quit", at(time.Second)) // web/a
	if got, want := fmtMembers(v.Members("web")), "web/b#1 alive n0"; got != want {
		t.Errorf("Members(web) = %q, want %q", got, want)
	}
	if got := v.Members("nosuch"); got != nil {
		t.Errorf("Members(nosuch) = %v, want nil", got)
	}
	if got, want := len(v.All()), 4; got != want {
		t.Errorf("len(All) = %d, want %d", got, want)
	}
	if got := New(Config{}).All(); got == nil || len(got) != 0 {
		t.Errorf("All of an empty view = %#v, want empty", got)
	}
}

// Events carry a snapshot of the member as it is after the change.
func TestViewEventSnapshot(t *testing.T) {
	v := New(Config{})
	b := &Beat{Service: "s", Instance: "a", Incarnation: 7, Seq: 1, IntervalMillis: 500, Load: 0.5, Depends: []string{"db"}}
	evs := v.Heartbeat("Nick", b, at(time.Second))
	if len(evs) != 1 {
		t.Fatalf("events %v", evs)
	}
	m := evs[0].Member
	if m.Nick != "Nick" || m.State != Alive || m.Incarnation != 7 || !m.Since.Equal(at(time.Second)) ||
		!m.LastBeat.Equal(at(time.Second)) || m.Beat.Load != 0.5 || !slices.Equal(m.Beat.Depends, []string{"db"}) {
		t.Errorf("joined snapshot %+v", m)
	}
	evs = v.Tick(at(2 * time.Second))
	if len(evs) != 1 || evs[0].Member.State != Suspect || !evs[0].Member.Since.Equal(at(2*time.Second)) {
		t.Errorf("suspected %+v", evs)
	}
	evs = v.Gone("nick", "quit: x", at(3*time.Second))
	if len(evs) != 1 || evs[0].Member.State != Dead || evs[0].Reason != "quit: x" || !evs[0].Member.Since.Equal(at(3*time.Second)) {
		t.Errorf("left %+v", evs)
	}
	// The snapshot is a copy: the view's later changes do not show in it.
	v.Heartbeat("Nick", &Beat{Service: "s", Instance: "a", Incarnation: 8, Seq: 1, IntervalMillis: 500}, at(4*time.Second))
	if evs[0].Member.Incarnation != 7 || evs[0].Member.State != Dead {
		t.Errorf("snapshot changed: %+v", evs[0].Member)
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

package heartbeat

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTickDueTwin: a view that skips ticks before its due time and one
// that looks at every member at every tick, fed the same random beats
// (intervals from 50 ms to 2 s), departures, splits, rejoins, suspends
// and resumes, give the same events at every tick.
func TestTickDueTwin(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		fast, full := New(Config{}), New(Config{})
		now := t0
		seq := map[string]uint64{}
		for step := range 400 {
			now = now.Add(time.Duration(rng.IntN(300)) * ms)
			inst := fmt.Sprint(rng.IntN(6))
			nick := "svc-" + inst
			var a, b []Event
			switch op := rng.IntN(20); {
			case op < 12:
				seq[inst]++
				beat := &Beat{Service: "svc", Instance: inst, Incarnation: 1, Seq: seq[inst], IntervalMillis: uint32(50 + rng.IntN(1950))}
				a, b = fast.Heartbeat(nick, beat, now), full.Heartbeat(nick, beat, now)
			case op < 14:
				a, b = fast.Gone(nick, "quit", now), full.Gone(nick, "quit", now)
			case op < 16:
				a, b = fast.SplitAway(nick, "a.test", "b.test", now), full.SplitAway(nick, "a.test", "b.test", now)
			case op < 17:
				a, b = fast.Rejoined(nick, now), full.Rejoined(nick, now)
			case op < 18:
				if rng.IntN(2) == 0 {
					fast.Suspend()
					full.Suspend()
				} else {
					fast.Resume(now)
					full.Resume(now)
				}
			default:
				full.due = time.Time{} // look at every member
				a, b = fast.Tick(now), full.Tick(now)
			}
			if fa, fb := fmtEvents(a), fmtEvents(b); fa != fb {
				t.Fatalf("seed %d step %d: events %q, looking at every member %q", seed, step, fa, fb)
			}
			if fa, fb := fmtMembers(fast.All()), fmtMembers(full.All()); fa != fb {
				t.Fatalf("seed %d step %d: members %q, looking at every member %q", seed, step, fa, fb)
			}
		}
	}
}

package state

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// §8.5: whatever the page budget, the window and the order the pages are
// answered in, a Loader brings a copy equal to its source (checked
// against the source itself: the naive twin is "every update the source
// holds").
func TestLoaderLoadsEverything(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		src := randomReplica(t, rng)
		dst, err := New(Config{Domain: src.Domain(), Self: envelope.Sender{Service: "reader", Instance: "r"}})
		if err != nil {
			t.Fatal(err)
		}
		budget := 1 + rng.IntN(2000)
		l := NewLoader(dst, 1+rng.IntN(4))
		var queue []LoadRequest
		for steps := 0; !l.Done(); steps++ {
			if steps > 100000 {
				t.Fatalf("seed %d: the load does not end", seed)
			}
			queue = append(queue, l.Requests()...)
			i := rng.IntN(len(queue))
			rq := queue[i]
			queue = append(queue[:i], queue[i+1:]...)
			if rng.IntN(10) == 0 {
				l.Failed(rq.Seq) // the holder left: asked again
				continue
			}
			p := src.ServePage(&rq.Request, budget)
			for _, s := range p.Updates {
				env, err := envelope.Unmarshal(s.Envelope, 0)
				if err != nil {
					t.Fatal(err)
				}
				u, err := DecodeUpdate(env, s.Nick, "cfg", s.Envelope)
				if err != nil {
					t.Fatal(err)
				}
				if err := dst.Receive(u, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Page(rq.Seq, p); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		if d := diff(src, dst); d != "" {
			t.Fatalf("seed %d (budget %d): loaded copy differs: %s", seed, budget, d)
		}
		if src.Digest() != dst.Digest() {
			t.Fatalf("seed %d: same copies, different digests", seed)
		}
	}
}

// randomReplica is a copy that received random writes of two owner
// instances, deletes and whole-state updates included.
func randomReplica(t *testing.T, rng *rand.Rand) *Replica {
	t.Helper()
	r, err := New(Config{Domain: "cfg.x", Self: envelope.Sender{Service: "cfg", Instance: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	r.SetLoaded()
	keys := 1 + rng.IntN(60)
	for range rng.IntN(200) {
		key := fmt.Sprintf("key-%03d", rng.IntN(keys))
		var env *envelope.Envelope
		switch p := rng.IntN(20); {
		case p < 14:
			env, err = r.Put(key, make([]byte, rng.IntN(100)), Cond{}, time.Time{})
		case p < 18:
			env, err = r.Delete(key, Cond{}, time.Time{})
		default:
			vals := map[string][]byte{}
			for range rng.IntN(keys) {
				vals[fmt.Sprintf("key-%03d", rng.IntN(keys))] = []byte("w")
			}
			env, err = r.Replace(vals, time.Time{})
		}
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := envelope.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		u, err := DecodeUpdate(env, "cfg-a", "cfg", sealed)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Receive(u, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	r.Ready()
	return r
}

// AntiEntropy asks to load a holder's copy once it and ours stayed
// different over StableBeats beats, never while either changes, and backs
// off when loading did not make them agree.
func TestAntiEntropy(t *testing.T) {
	r, _ := New(Config{Domain: "cfg"})
	var a AntiEntropy
	beats := func(n int, v, d uint64) (pulls []int) {
		for i := range n {
			if a.Beat("h", v, d, r) {
				pulls = append(pulls, i+1)
			}
		}
		return pulls
	}
	if p := beats(10, 0, r.Digest()); len(p) != 0 {
		t.Fatalf("equal copies: pulls at %v", p)
	}
	// The holder's copy keeps changing: nothing.
	for i := range 10 {
		if a.Beat("h", uint64(i+1), uint64(i+100), r) {
			t.Fatal("a changing copy was pulled")
		}
	}
	// Stable and different: a pull after 3 beats, then 6, then 12.
	if p := beats(3+6+12, 5, 42); len(p) != 3 || p[0] != 3 || p[1] != 9 || p[2] != 21 {
		t.Fatalf("pulls at %v, want [3 9 21]", p)
	}
	// Agreeing again resets the back-off.
	beats(1, r.Version(), r.Digest())
	if p := beats(3, 5, 42); len(p) != 1 || p[0] != 3 {
		t.Fatalf("after agreeing: pulls at %v, want [3]", p)
	}
}

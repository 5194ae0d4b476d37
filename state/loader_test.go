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

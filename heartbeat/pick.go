package heartbeat

import (
	"hash/fnv"
)

// LeastLoaded returns an alive member with the lowest announced load
// (suspect ones only when no member is alive), skipping those skip rejects;
// ok is false when none is left. Among equally loaded members, tiebreak
// (any number, e.g. random) chooses, so that callers spread their requests.
func LeastLoaded(ms []Member, skip func(Member) bool, tiebreak uint64) (best Member, ok bool) {
	for _, pass := range []State{Alive, Suspect} {
		var ties []Member
		for _, m := range ms {
			if m.State != pass || (skip != nil && skip(m)) {
				continue
			}
			switch {
			case len(ties) == 0 || m.Beat.Load < ties[0].Beat.Load:
				ties = append(ties[:0], m)
			case m.Beat.Load == ties[0].Beat.Load:
				ties = append(ties, m)
			}
		}
		if len(ties) > 0 {
			return ties[tiebreak%uint64(len(ties))], true
		}
	}
	return Member{}, false
}

// Rendezvous returns the member that key maps to by rendezvous (highest
// random weight) hashing: every observer with the same members picks the
// same one, and a member leaving moves only its own keys. Alive members are
// preferred over suspect ones; skip excludes members.
func Rendezvous(key string, ms []Member, skip func(Member) bool) (best Member, ok bool) {
	var bestScore uint64
	for _, pass := range []State{Alive, Suspect} {
		for _, m := range ms {
			if m.State != pass || (skip != nil && skip(m)) {
				continue
			}
			if s := Weight(key, m.Service+"/"+m.Instance); !ok || s > bestScore {
				best, bestScore, ok = m, s, true
			}
		}
		if ok {
			return best, true
		}
	}
	return Member{}, false
}

// Weight is the rendezvous weight of key for a member id.
func Weight(key, member string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(member))
	// fnv's low bits mix poorly for similar inputs: finish with a
	// splitmix64 round.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

package heartbeat

import ()

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
			if s := Weight(key, m.ID()); !ok || s > bestScore {
				best, bestScore, ok = m, s, true
			}
		}
		if ok {
			return best, true
		}
	}
	return Member{}, false
}

// Weight is the rendezvous weight of key for a member id: FNV-1a of key,
// a zero byte and member, finished with a splitmix64 round (fnv's low
// bits mix poorly for similar inputs).
func Weight(key, member string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * fnvPrime
	}
	return finishWeight(h, member)
}

// WeightBytes is Weight for a key held as bytes.
func WeightBytes(key []byte, member string) uint64 {
	h := uint64(fnvOffset)
	for _, c := range key {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return finishWeight(h, member)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func finishWeight(h uint64, member string) uint64 {
	h *= fnvPrime // the zero byte: h ^ 0 == h
	for i := 0; i < len(member); i++ {
		h = (h ^ uint64(member[i])) * fnvPrime
	}
	x := h
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

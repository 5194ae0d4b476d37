package state

// Copies can diverge only when lines are lost for every member that had
// them: a member that started with no copy to load from while another,
// disconnected, held one; or several members away at once. Heartbeats
// announce each copy's version and digest (Replica.Digest); an
// AntiEntropy tells a member when to load a holder's copy (§8.5): when the
// holder's copy and its own have both stayed unchanged over the holder's
// last StableBeats beats and still differ. Both sides of a difference see
// it, so each loads the other's, and since loading merges, both end up
// with the union. While the domain is being written copies keep changing
// and nothing is loaded; the repair waits for a quiet moment.
type AntiEntropy struct {
	seen map[string]announced
}

type announced struct {
	version, digest uint64 // the holder's
	mine            uint64 // our digest when it was announced
	mineVersion     uint64
	count           int // consecutive beats with all of these unchanged
	syncs           int // loads from this holder since the copies last agreed
}

// StableBeats is how many consecutive beats a difference must last.
const StableBeats = 3

// Beat takes a holder's announcement (its nick, version and digest) and
// our replica's, and reports whether to load the holder's copy now. After
// a load that did not make the copies agree (the holder keeps updates
// this member refuses, say: it trusts other keys), it waits twice as many
// beats before the next, up to 32 times StableBeats.
func (a *AntiEntropy) Beat(holder string, version, digest uint64, r *Replica) bool {
	if a.seen == nil {
		a.seen = map[string]announced{}
	}
	mine, mineV := r.Digest(), r.Version()
	if digest == mine && version == mineV {
		delete(a.seen, holder)
		return false
	}
	prev, ok := a.seen[holder]
	cur := announced{version: version, digest: digest, mine: mine, mineVersion: mineV, count: 1, syncs: prev.syncs}
	if ok && prev.version == version && prev.digest == digest && prev.mine == mine && prev.mineVersion == mineV {
		cur.count = prev.count + 1
	}
	if cur.count >= StableBeats<<min(cur.syncs, 5) {
		cur.count = 0
		cur.syncs++
		a.seen[holder] = cur
		return true
	}
	a.seen[holder] = cur
	return false
}

// Forget drops what is known of a holder (it left).
func (a *AntiEntropy) Forget(holder string) { delete(a.seen, holder) }

package state

import (
	"fmt"
	"slices"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Cond conditions a write on the key's version (a compare-and-set, §8.4).
// The zero Cond writes unconditionally.
type Cond struct {
	set     bool
	absent  bool
	version uint64
}

// IfVersion makes a write succeed only if the key is at version v (and
// not deleted) and no concurrent write of the key wins.
func IfVersion(v uint64) Cond { return Cond{set: true, version: v} }

// IfAbsent makes a write succeed only if the key does not exist (never
// written, or deleted) and no concurrent write of the key wins.
func IfAbsent() Cond { return Cond{set: true, absent: true} }

// IsSet reports whether c is a condition (not the zero Cond).
func (c Cond) IsSet() bool { return c.set }

// String describes the condition.
func (c Cond) String() string {
	switch {
	case !c.set:
		return "always"
	case c.absent:
		return "if-absent"
	}
	return fmt.Sprintf("if-version=%d", c.version)
}

// pendingWrite is one of the replica's own writes, from the moment it was
// made until its outcome.
type pendingWrite struct {
	u      *Update
	cas    Cond
	sealed []byte
	made   time.Time // when the write was made
	due    time.Time // set once echoed, for a compare-and-set
	// A compare-and-set writes one key: at key version kv it must hold the
	// highest stamp (best: the highest seen at kv so far, own included).
	key  string
	kv   uint64
	own  Stamp
	best Stamp
}

// Put writes value to key. It returns the update's envelope, unsealed, for
// the driver to seal and send in the domain's channel; the outcome follows
// in Ready once the update comes back (Receive of the same id). With a
// condition that the replica's copy already fails, it returns a
// *ConflictError and nothing is sent.
func (r *Replica) Put(key string, value []byte, c Cond, now time.Time) (*envelope.Envelope, error) {
	return r.write(key, slices.Clone(value), false, c, now)
}

// Delete deletes key, as Put.
func (r *Replica) Delete(key string, c Cond, now time.Time) (*envelope.Envelope, error) {
	return r.write(key, nil, true, c, now)
}

func (r *Replica) write(key string, value []byte, del bool, c Cond, now time.Time) (*envelope.Envelope, error) {
	if err := r.canWrite(); err != nil {
		return nil, err
	}
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	cur := r.Lookup(key)
	inFlight := r.pendingKey[key] > cur.Version
	if c.set {
		ok := !inFlight && (c.absent && !cur.Exists() || !c.absent && cur.Exists() && cur.Version == c.version)
		if !ok {
			cur.Value = slices.Clone(cur.Value)
			return nil, &ConflictError{Domain: r.cfg.Domain, Key: key, Expected: c.version, Absent: c.absent, Actual: cur, InFlight: inFlight}
		}
	}
	u := r.newUpdate(now)
	kv := max(cur.Version, r.pendingKey[key]) + 1
	if del {
		u.Deletes = []KeyDelete{{Key: key, Version: kv}}
	} else {
		u.Puts = []KeyPut{{Key: key, Version: kv, Value: value}}
	}
	return r.issue(u, c)
}

// Replace writes the whole state (a whole-state update, §8.2): every key
// of values is put, every other key the replica holds is deleted, in one
// update. A key another writer creates concurrently survives it.
func (r *Replica) Replace(values map[string][]byte, now time.Time) (*envelope.Envelope, error) {
	if err := r.canWrite(); err != nil {
		return nil, err
	}
	u := r.newUpdate(now)
	u.Whole = true
	next := func(key string) uint64 { return max(r.Lookup(key).Version, r.pendingKey[key]) + 1 }
	keys := make([]string, 0, len(values))
	for k := range values {
		if err := CheckKey(k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		u.Puts = append(u.Puts, KeyPut{Key: k, Version: next(k), Value: slices.Clone(values[k])})
	}
	for _, k := range r.sorted() {
		if _, keep := values[k]; !keep && (!r.slots[k].deleted || r.pendingKey[k] > r.slots[k].stamp.Version) {
			u.Deletes = append(u.Deletes, KeyDelete{Key: k, Version: next(k)})
		}
	}
	if u.Keys() > MaxOps {
		return nil, fmt.Errorf("state: replace of %d keys: at most %d in one update", u.Keys(), MaxOps)
	}
	return r.issue(u, Cond{})
}

func (r *Replica) canWrite() error {
	switch {
	case r.cfg.Self.Service != r.owner:
		return &AuthorityError{Domain: r.cfg.Domain, Owner: r.owner, Service: r.cfg.Self.Service}
	case !r.loaded || r.behind:
		return ErrNotLoaded
	}
	return nil
}

// newUpdate starts an update of the next domain version.
func (r *Replica) newUpdate(now time.Time) *Update {
	r.issued = max(r.issued, r.version) + 1
	return &Update{ID: r.cfg.NewID(), Domain: r.cfg.Domain, Writer: r.cfg.Self, SentAt: now.UnixNano(), Version: r.issued}
}

// issue records u as in flight and returns its envelope.
func (r *Replica) issue(u *Update, c Cond) (*envelope.Envelope, error) {
	env, err := u.Envelope()
	if err != nil {
		return nil, err
	}
	p := &pendingWrite{u: u, cas: c, made: time.Unix(0, u.SentAt)}
	r.pending[u.ID] = p
	if c.set {
		k := p.keys()[0]
		p.key, p.kv = k.Key, k.Version
		p.own = Stamp{Version: k.Version, Domain: u.Version, Writer: u.Writer.Instance, ID: u.ID}
		r.casKeys[k.Key] = append(r.casKeys[k.Key], p)
	}
	for _, p := range u.Puts {
		r.pendingKey[p.Key] = max(r.pendingKey[p.Key], p.Version)
	}
	for _, d := range u.Deletes {
		r.pendingKey[d.Key] = max(r.pendingKey[d.Key], d.Version)
	}
	return env, nil
}

// Sent gives the replica the sealed bytes of its own update id, as sent:
// what it serves in snapshots once the update came back, on servers that
// do not echo (the driver then hands it the update itself).
func (r *Replica) Sent(id envelope.ID, sealed []byte) {
	if p := r.pending[id]; p != nil {
		p.sealed = sealed
	}
}

// Abandon ends an own write that was not sent or that the server refused:
// its outcome is err wrapped in ErrAbandoned. An update that does come back
// later is applied like any other.
func (r *Replica) Abandon(id envelope.ID, err error) {
	p := r.pending[id]
	if p == nil {
		return
	}
	r.finish(p, fmt.Errorf("%w: %w", ErrAbandoned, err))
}

// echoed: the own write p came back from the server. An unconditional
// write is done; a compare-and-set is judged after Settle.
func (r *Replica) echoed(p *pendingWrite, now time.Time) {
	if !p.cas.set {
		r.finish(p, nil)
		return
	}
	if p.due.IsZero() {
		p.due = now.Add(r.settleFor(now.Sub(p.made)))
	}
}

// settleFor is how long a compare-and-set whose update took took to come
// back waits for a concurrent write: Settle, or twice took when that is
// longer, up to maxSettle. A concurrent write was made before its writer
// saw ours, and it is delayed as ours was (the writers' queues, the
// server's backlog): under load 100 ms is not enough, and a round trip
// measured on this very write says how much is.
func (r *Replica) settleFor(took time.Duration) time.Duration {
	return max(r.cfg.Settle, min(2*took, maxSettle))
}

// maxSettle bounds the settle time a slow round trip asks for.
const maxSettle = 2 * time.Second

// Tick judges the compare-and-sets whose settle time has passed (§8.4): a
// write wins when it has the highest stamp of the writes of its key at its
// key version seen so far; a later write on top of it (a higher key
// version) does not make it lose.
func (r *Replica) Tick(now time.Time) {
	var due []*pendingWrite
	for _, ws := range r.casKeys {
		for _, p := range ws {
			if !p.due.IsZero() && !p.due.After(now) {
				due = append(due, p)
			}
		}
	}
	slices.SortFunc(due, func(a, b *pendingWrite) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return Stamp{ID: a.u.ID}.Compare(Stamp{ID: b.u.ID})
	})
	for _, p := range due {
		var err error
		if p.best != p.own {
			actual := r.Lookup(p.key)
			actual.Value = slices.Clone(actual.Value)
			err = &ConflictError{Domain: r.cfg.Domain, Key: p.key, Expected: p.cas.version, Absent: p.cas.absent, Actual: actual, Settled: true}
		}
		r.finish(p, err)
	}
}

// Disconnected tells the replica its connection dropped. Its own writes
// still waiting for an outcome end with ErrUnknownOutcome: each may have
// reached the server before the drop (then every member applies it) or
// not (then nobody does), and the driver must not send it again on the
// next connection: a write that arrives long after it was made could beat
// a compare-and-set that was already judged (§8.4). Lines may also have
// been missed, so writes are refused with ErrNotLoaded until the copy is
// loaded again (SetLoaded).
func (r *Replica) Disconnected() {
	r.behind = true
	ps := make([]*pendingWrite, 0, len(r.pending))
	for _, p := range r.pending {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *pendingWrite) int { return Stamp{ID: a.u.ID}.Compare(Stamp{ID: b.u.ID}) })
	for _, p := range ps {
		r.finish(p, ErrUnknownOutcome)
	}
}

// Next returns when Tick has work, or the zero time.
func (r *Replica) Next() time.Time {
	var next time.Time
	for _, ws := range r.casKeys { // only compare-and-sets wait for a tick
		for _, p := range ws {
			if !p.due.IsZero() && (next.IsZero() || p.due.Before(next)) {
				next = p.due
			}
		}
	}
	return next
}

// keys are the keys p writes, as entries.
func (p *pendingWrite) keys() []Entry {
	w := p.u.Writer.Service + "/" + p.u.Writer.Instance
	out := make([]Entry, 0, p.u.Keys())
	for _, k := range p.u.Puts {
		out = append(out, Entry{Key: k.Key, Value: k.Value, Version: k.Version, DomainVersion: p.u.Version, Writer: w, ID: p.u.ID, SentAt: p.u.SentAt})
	}
	for _, k := range p.u.Deletes {
		out = append(out, Entry{Key: k.Key, Version: k.Version, DomainVersion: p.u.Version, Writer: w, Deleted: true, ID: p.u.ID, SentAt: p.u.SentAt})
	}
	return out
}

// finish reports p's outcome and forgets it.
func (r *Replica) finish(p *pendingWrite, err error) {
	delete(r.pending, p.u.ID)
	if p.cas.set {
		ws := slices.DeleteFunc(r.casKeys[p.key], func(w *pendingWrite) bool { return w == p })
		if len(ws) == 0 {
			delete(r.casKeys, p.key)
		} else {
			r.casKeys[p.key] = ws
		}
	}
	entries := p.keys()
	for _, e := range entries {
		if r.pendingKey[e.Key] == e.Version {
			delete(r.pendingKey, e.Key)
		}
	}
	r.out.Outcomes = append(r.out.Outcomes, Outcome{ID: p.u.ID, Version: p.u.Version, Entries: entries, Err: err})
}

// Pending returns how many own writes wait for their outcome.
func (r *Replica) Pending() int { return len(r.pending) }

package state

import (
	"bytes"
	"slices"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Config configures a Replica.
type Config struct {
	// Domain is the domain the replica holds (required).
	Domain string
	// Self is the member that holds the replica: the writer of its writes
	// (only instances of the owning service write).
	Self envelope.Sender
	// Settle is how long a compare-and-set waits, after its own update
	// came back from the server, for a concurrent write of the same key
	// before it is judged (DefaultSettle).
	Settle time.Duration
	// NewID gives the ids of the updates the replica writes (nil:
	// envelope.NewID). Tests make them deterministic.
	NewID func() envelope.ID
}

// DefaultSettle is the default Config.Settle. A concurrent write of the
// same key was sent before its writer saw ours, so it reaches us about one
// server round trip after our own echo at the latest; 100 ms covers that
// on one server and on a linked network that is not backlogged.
const DefaultSettle = 100 * time.Millisecond

// A Replica is one member's copy of one domain: the domain-state protocol
// of docs/PROTOCOL.md §8 between the updates the member receives (live in
// the domain's channel, or in snapshot pages) and what it holds. It
// converges: members that received the same updates, in any order, any
// number of times each, hold the same keys, values and versions.
//
// Its inputs are methods that take "now"; its outputs (changes, the
// outcomes of its own writes, when to Tick) gather until Ready takes them.
// It reads no clock, starts nothing, does no I/O and is not safe for
// concurrent use: one owner feeds it, as with claims.Group.
type Replica struct {
	cfg   Config
	owner string

	version  uint64  // the domain version: the highest of any update
	top      *source // the update that carried it (a snapshot includes it)
	topStamp Stamp

	slots  map[string]*slot // every key written, tombstones included
	order  []string         // the keys of slots; sorted unless dirty
	dirty  bool
	live   int    // keys not deleted
	bytes  int    // their keys' and values' bytes
	digest uint64 // XOR of every slot's hash (slotHash)

	available bool
	loaded    bool
	behind    bool // the connection dropped since the last load: lines may be missing

	issued     uint64 // the highest domain version this replica wrote
	pending    map[envelope.ID]*pendingWrite
	pendingKey map[string]uint64          // the highest key version of own writes in flight
	casKeys    map[string][]*pendingWrite // compare-and-sets in flight, by key

	out   Ready
	stats Stats
}

// slot is one key: the write that won it so far.
type slot struct {
	stamp   Stamp
	value   []byte
	deleted bool
	sentAt  int64
	src     *source
}

// source is one received update as a snapshot serves it: its sealed
// envelope and sender nick, shared by the keys it won.
type source struct {
	id     envelope.ID
	sealed []byte
	from   string
	refs   int // slots it holds
}

// Ready is what a Replica asks its driver to do.
type Ready struct {
	// Changes are the replica's changes, in order: hand them to watchers.
	Changes []Change
	// Outcomes are the results of the replica's own writes.
	Outcomes []Outcome
	// Next is when Tick has work (a compare-and-set to judge), or zero.
	Next time.Time
}

// Outcome is the result of one of the replica's own writes: nil Err once
// its update came back from the server (for a compare-and-set: and won
// the key through the settle time), a *ConflictError when a
// compare-and-set lost, ErrAbandoned when it was never sent.
type Outcome struct {
	ID envelope.ID
	// Version is the write's domain version; Entries the keys as it
	// wrote them.
	Version uint64
	Entries []Entry
	Err     error
}

// Stats count what a replica saw.
type Stats struct {
	// Updates received and applied (live, echoed or from snapshots),
	// duplicates included; Refused those refused as not the owner's.
	Updates, Refused uint64
	// Superseded counts keys of received updates that a higher write of
	// the key had already won (late, stale or duplicate writes).
	Superseded uint64
	// Keys, Tombstones and Bytes describe the replica now: live keys,
	// deleted keys kept as tombstones, bytes of live keys and values.
	Keys, Tombstones, Bytes int
}

// New returns an empty replica of cfg.Domain.
func New(cfg Config) (*Replica, error) {
	if err := ValidDomain(cfg.Domain); err != nil {
		return nil, err
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.NewID == nil {
		cfg.NewID = envelope.NewID
	}
	return &Replica{cfg: cfg, owner: Owner(cfg.Domain), slots: map[string]*slot{},
		pending: map[envelope.ID]*pendingWrite{}, pendingKey: map[string]uint64{}, casKeys: map[string][]*pendingWrite{}}, nil
}

// Domain returns the domain's name; Owner the service that owns it.
func (r *Replica) Domain() string { return r.cfg.Domain }
func (r *Replica) Owner() string  { return r.owner }

// Version returns the domain version: the highest domain version of any
// update received. It never goes back.
func (r *Replica) Version() uint64 { return r.version }

// Receive applies one update (§8.3): every key it writes takes the write
// when its stamp is higher than the key's, and the domain version the
// update's when higher. An update that is not the owner's is refused with
// an *AuthorityError and changes nothing; one of another domain with
// ErrWrongDomain. Receiving an update again changes nothing.
func (r *Replica) Receive(u *Update, now time.Time) error {
	if u.Domain != r.cfg.Domain {
		return ErrWrongDomain
	}
	if err := r.authorize(u); err != nil {
		r.stats.Refused++
		return err
	}
	r.stats.Updates++
	p := r.pending[u.ID]
	src := &source{id: u.ID, sealed: u.Sealed, from: u.From}
	if src.sealed == nil && p != nil {
		src.sealed = p.sealed
	}
	old := r.version
	r.version = max(r.version, u.Version)
	if ts := (Stamp{Domain: u.Version, Writer: u.Writer.Instance, ID: u.ID}); r.top == nil || ts.Compare(r.topStamp) > 0 {
		r.top, r.topStamp = src, ts
	}
	off := 0
	for _, kp := range u.Puts {
		st := Stamp{Version: kp.Version, Domain: u.Version, Writer: u.Writer.Instance, ID: u.ID}
		value := kp.Value
		// A copy keeps the sealed update for snapshots, and the value is
		// in it byte for byte: hold it once. Values come in payload
		// order, so each search starts where the last one matched.
		if len(value) > 0 && src.sealed != nil {
			if i := bytes.Index(src.sealed[off:], value); i >= 0 {
				value = src.sealed[off+i : off+i+len(value) : off+i+len(value)]
				off += i + len(value)
			}
		}
		r.apply(kp.Key, st, value, false, u.SentAt, src, old, u.Whole)
	}
	for _, kd := range u.Deletes {
		st := Stamp{Version: kd.Version, Domain: u.Version, Writer: u.Writer.Instance, ID: u.ID}
		r.apply(kd.Key, st, nil, true, u.SentAt, src, old, u.Whole)
	}
	if p != nil {
		r.echoed(p, now)
	}
	return nil
}

// authorize is the owner rule of §8.6: the envelope's sender and the nick
// that sent the line must both be of the owning service.
func (r *Replica) authorize(u *Update) error {
	if u.Writer.Service != r.owner || (u.FromService != "" && u.FromService != r.owner) {
		return &AuthorityError{Domain: r.cfg.Domain, Owner: r.owner, Service: u.Writer.Service, Nick: u.From, NickService: u.FromService}
	}
	return nil
}

// apply gives key the write st when it is higher than the key's.
func (r *Replica) apply(key string, st Stamp, value []byte, deleted bool, sentAt int64, src *source, oldVersion uint64, whole bool) {
	for _, w := range r.casKeys[key] {
		if st.Version == w.kv && st.Compare(w.best) > 0 {
			w.best = st
		}
	}
	cur := r.slots[key]
	if cur != nil && st.Compare(cur.stamp) <= 0 {
		r.stats.Superseded++
		return
	}
	var before Entry
	if cur == nil {
		cur = &slot{}
		r.slots[key] = cur
		r.order = append(r.order, key)
		r.dirty = true
	} else {
		before = r.entry(key, cur)
		r.account(key, cur, -1)
		r.digest ^= slotHash(key, cur.stamp)
		cur.src.refs--
	}
	if value == nil && !deleted {
		value = []byte{}
	}
	*cur = slot{stamp: st, value: value, deleted: deleted, sentAt: sentAt, src: src}
	src.refs++
	r.account(key, cur, 1)
	r.digest ^= slotHash(key, st)
	kind := Put
	if deleted {
		kind = Deleted
	}
	r.out.Changes = append(r.out.Changes, Change{Domain: r.cfg.Domain, Kind: kind, Key: key,
		Old: before, New: r.entry(key, cur), OldVersion: oldVersion, NewVersion: r.version, Whole: whole})
}

// account adds (sign 1) or removes (sign -1) s from the counters.
func (r *Replica) account(key string, s *slot, sign int) {
	if s.deleted {
		r.stats.Tombstones += sign
		return
	}
	r.live += sign
	r.bytes += sign * (len(key) + len(s.value))
}

// entry is key's slot as an Entry (its Value shared, not copied).
func (r *Replica) entry(key string, s *slot) Entry {
	e := Entry{Key: key, Value: s.value, Version: s.stamp.Version, DomainVersion: s.stamp.Domain,
		Writer: r.owner + "/" + s.stamp.Writer, Deleted: s.deleted, ID: s.stamp.ID, SentAt: s.sentAt}
	if s.deleted {
		e.Value = nil
	}
	return e
}

// Members takes the heartbeat view (§8.7): the domain is available while
// a live (alive or suspect) instance of its owner announces a loaded copy
// of it in its heartbeats.
func (r *Replica) Members(all []heartbeat.Member) {
	avail := false
	for _, h := range Holders(all, r.cfg.Domain) {
		if h.Owner {
			avail = true
			break
		}
	}
	if avail == r.available {
		return
	}
	r.available = avail
	kind := Unavailable
	if avail {
		kind = Available
	}
	r.out.Changes = append(r.out.Changes, Change{Domain: r.cfg.Domain, Kind: kind, OldVersion: r.version, NewVersion: r.version})
}

// SetLoaded marks the replica as holding the domain's current state: it
// loaded a snapshot (or found none anywhere, §8.5). Writes are refused
// until then, and again from a Disconnected until the next SetLoaded.
func (r *Replica) SetLoaded() {
	r.behind = false
	if r.loaded {
		return
	}
	r.loaded = true
	r.out.Changes = append(r.out.Changes, Change{Domain: r.cfg.Domain, Kind: Loaded, OldVersion: r.version, NewVersion: r.version})
}

// Current reports whether the replica holds the domain's current state as
// far as it knows: loaded, and loaded again since its connection last
// dropped. Only a current replica is announced in heartbeats, serves
// snapshots and writes.
func (r *Replica) Current() bool { return r.loaded && !r.behind }

// Available reports whether the owner has a live instance holding the
// domain; Loaded whether the replica loaded it; Stale whether it holds a
// loaded state whose owner is gone.
func (r *Replica) Available() bool { return r.available }
func (r *Replica) Loaded() bool    { return r.loaded }
func (r *Replica) Stale() bool     { return r.loaded && !r.available }

// Ready returns what gathered since the last call and clears it.
func (r *Replica) Ready() Ready {
	rd := r.out
	r.out = Ready{}
	rd.Next = r.Next()
	return rd
}

// Get returns key's entry, and false when the key does not exist (never
// written, or deleted). The entry's Value is a copy.
func (r *Replica) Get(key string) (Entry, bool) {
	s := r.slots[key]
	if s == nil || s.deleted {
		return Entry{}, false
	}
	e := r.entry(key, s)
	e.Value = slices.Clone(e.Value)
	return e, true
}

// Lookup returns key's entry, tombstones included: Version 0 when the key
// was never written. The entry's Value is shared: do not modify it.
func (r *Replica) Lookup(key string) Entry {
	s := r.slots[key]
	if s == nil {
		return Entry{Key: key}
	}
	return r.entry(key, s)
}

// sorted sorts the key order if new keys came.
func (r *Replica) sorted() []string {
	if r.dirty {
		slices.Sort(r.order)
		r.dirty = false
	}
	return r.order
}

// Keys returns the live keys, sorted.
func (r *Replica) Keys() []string {
	out := make([]string, 0, r.live)
	for _, k := range r.sorted() {
		if !r.slots[k].deleted {
			out = append(out, k)
		}
	}
	return out
}

// Snapshot is a replica's state at one moment.
type Snapshot struct {
	Domain string
	// Version is the domain version.
	Version uint64
	// Entries are the live keys, sorted by key; their values are copies.
	Entries []Entry
	// Available, Loaded: as the replica's methods; Stale = Loaded &&
	// !Available.
	Available, Loaded, Stale bool
}

// Get returns key's entry in the snapshot.
func (s *Snapshot) Get(key string) (Entry, bool) {
	i, ok := slices.BinarySearchFunc(s.Entries, key, func(e Entry, k string) int {
		switch {
		case e.Key < k:
			return -1
		case e.Key > k:
			return 1
		}
		return 0
	})
	if !ok {
		return Entry{}, false
	}
	return s.Entries[i], true
}

// Snapshot returns a copy of the replica's state.
func (r *Replica) Snapshot() *Snapshot {
	s := &Snapshot{Domain: r.cfg.Domain, Version: r.version, Available: r.available, Loaded: r.loaded, Stale: r.Stale(),
		Entries: make([]Entry, 0, r.live)}
	for _, k := range r.sorted() {
		if sl := r.slots[k]; !sl.deleted {
			e := r.entry(k, sl)
			e.Value = slices.Clone(e.Value)
			s.Entries = append(s.Entries, e)
		}
	}
	return s
}

// Digest returns a digest of the copy: the XOR of a hash of every key with
// the stamp of its winning write. Copies that hold the same writes have
// the same digest, whatever order they received them in; heartbeats
// announce it, so that diverged copies find each other (AntiEntropy).
func (r *Replica) Digest() uint64 { return r.digest }

// slotHash hashes a key and its stamp (FNV-1a, 64 bits).
func slotHash(key string, st Stamp) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * prime
	}
	h = (h ^ 0xff) * prime
	for _, b := range st.ID {
		h = (h ^ uint64(b)) * prime
	}
	for i := range 8 {
		h = (h ^ (st.Version >> (8 * i) & 0xff)) * prime
	}
	return h
}

// Stats returns the counters.
func (r *Replica) Stats() Stats {
	st := r.stats
	st.Keys, st.Bytes = r.live, r.bytes
	return st
}

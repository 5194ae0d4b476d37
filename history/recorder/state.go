package recorder

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// Domain state in the record (docs/PROTOCOL.md §8.10). For every domain
// channel it records, a recorder indexes, per key, where in its store the
// key's last Config.StateVersions updates are (the lines that carry each),
// so that it answers history.MethodState — the latest update of every key,
// or the kept updates of one — from a few reads instead of a replay of the
// whole channel. The index is built from the store when a domain's first
// line of a run is recorded, then kept up to date as lines are appended.
//
// Lines are decoded with the recorder's own trust (its node's keyring: in
// a signed mesh a recorder needs the mesh's keys anyway) and the owner
// rule: an update the recorder cannot verify, or not the owner's, is
// recorded but not indexed. Readers verify what they get with their own
// trust all the same.

// stateIndex is the recorder's index of every domain it records. mu guards
// it; it is taken after nothing else.
type stateIndex struct {
	served  atomic.Uint64 // answers given
	mu      sync.Mutex
	keep    int
	ns      string
	st      *store.Store
	dec     func() *envelope.Decoder
	domains map[string]*domainIndex // by channel, lower case
}

// domainIndex is one domain's index.
type domainIndex struct {
	domain string
	keys   map[string][]keyVersion // by stamp, oldest first, at most keep
	top    *keyVersion             // the update of the highest domain version
	dec    *envelope.Decoder       // reassembles the channel's fragments
	frags  map[string]uint64       // short id → the line of its first fragment
	last   uint64                  // the last record indexed
}

// keyVersion is one update of a key: its stamp and the record lines that
// carry it (from..to: a fragmented update takes several).
type keyVersion struct {
	stamp    state.Stamp
	from, to uint64
}

func newStateIndex(st *store.Store, ns string, keep int, dec func() *envelope.Decoder) *stateIndex {
	if keep <= 0 {
		keep = history.DefaultStateVersions
	}
	return &stateIndex{keep: keep, ns: ns, st: st, dec: dec, domains: map[string]*domainIndex{}}
}

// domainOf returns the domain of a channel, and false for other channels.
func (x *stateIndex) domainOf(channel string) (string, bool) {
	topic, ok := mesh.TopicOf(x.ns, channel)
	if !ok {
		return "", false
	}
	return state.DomainOfTopic(topic)
}

// add indexes a record just appended (its Seq set).
func (x *stateIndex) add(rec store.Record) {
	ch := strings.ToLower(rec.Channel)
	domain, ok := x.domainOf(ch)
	if !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	d := x.domainLocked(ch, domain, rec.Seq)
	d.index(rec, x.keep)
}

// domainLocked returns the index of channel, building it from the store's
// records before seq when it is new.
func (x *stateIndex) domainLocked(channel, domain string, before uint64) *domainIndex {
	if d := x.domains[channel]; d != nil {
		return d
	}
	d := &domainIndex{domain: domain, keys: map[string][]keyVersion{}, dec: x.dec(), frags: map[string]uint64{}}
	x.domains[channel] = d
	if before != 1 {
		_ = x.st.Scan(channel, 1, func(r store.Record) bool {
			if before != 0 && r.Seq >= before {
				return false
			}
			d.index(r, x.keep)
			return true
		})
	}
	return d
}

// index takes one record of the domain's channel.
func (d *domainIndex) index(rec store.Record, keep int) {
	if rec.Seq <= d.last {
		return
	}
	d.last = rec.Seq
	dl := d.dec.DecodeLine(rec.Nick, rec.Tags, rec.Body, rec.Time)
	if f := dl.Fragment; f != nil {
		if f.Index == 1 {
			d.frags[f.Short] = rec.Seq
		}
		return
	}
	owner := state.Owner(d.domain)
	nickService, _, _ := mesh.ParseNick(rec.Nick)
	for _, e := range dl.Envelopes {
		if e.Err != nil || e.Envelope.Kind != envelope.KindState || e.Envelope.Topic != d.domain ||
			e.Envelope.Sender.Service != owner || nickService != owner {
			continue
		}
		u, err := state.DecodeUpdate(e.Envelope, rec.Nick, nickService, nil)
		if err != nil {
			continue
		}
		from := rec.Seq
		if dl.Fragments > 0 {
			short := e.Envelope.ID.Short()
			if s, ok := d.frags[short]; ok {
				from = s
				delete(d.frags, short)
			}
		}
		v := keyVersion{stamp: state.Stamp{Domain: u.Version, Writer: u.Writer.Instance, ID: u.ID}, from: from, to: rec.Seq}
		if d.top == nil || v.stamp.Compare(d.top.stamp) > 0 {
			top := v
			d.top = &top
		}
		for _, p := range u.Puts {
			d.addVersion(p.Key, p.Version, v, keep)
		}
		for _, k := range u.Deletes {
			d.addVersion(k.Key, k.Version, v, keep)
		}
	}
	if len(d.frags) > 64 { // fragments whose envelope never completed
		clear(d.frags)
	}
}

// addVersion inserts an update of key (at key version kv) in stamp order,
// keeping the newest keep.
func (d *domainIndex) addVersion(key string, kv uint64, v keyVersion, keep int) {
	v.stamp.Version = kv
	vs := d.keys[key]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].stamp.Compare(v.stamp) >= 0 })
	if i < len(vs) && vs[i].stamp == v.stamp {
		return // a copy of a line already indexed
	}
	vs = slices.Insert(vs, i, v)
	if len(vs) > keep {
		vs = slices.Delete(vs, 0, len(vs)-keep)
	}
	d.keys[key] = vs
}

// build indexes every domain channel the store holds, before recording
// starts (Run).
func (x *stateIndex) build() {
	for _, ch := range x.st.Channels() {
		if domain, ok := x.domainOf(ch); ok {
			x.mu.Lock()
			x.domainLocked(ch, domain, 0)
			x.mu.Unlock()
		}
	}
}

// maxStateKeys bounds the keys one answer looks at.
const maxStateKeys = 4096

// answer serves one StateRequest from the index and the store.
func (x *stateIndex) answer(req history.StateRequest, self string) (*history.StateAnswer, error) {
	ch := strings.ToLower(mesh.Channel(x.ns, state.Topic(req.Domain)))
	ans := &history.StateAnswer{Recorder: self, Last: req.After, End: true}
	type want struct {
		key string
		v   keyVersion
	}
	var wants []want
	x.mu.Lock()
	d := x.domainLocked(ch, req.Domain, 0)
	if req.Key != "" {
		vs := d.keys[req.Key]
		ans.Kept, ans.Last = len(vs), req.Key
		if req.Versions > 0 && len(vs) > req.Versions {
			vs = vs[len(vs)-req.Versions:]
		}
		for _, v := range vs {
			wants = append(wants, want{req.Key, v})
		}
	} else {
		keys := make([]string, 0, len(d.keys))
		for k := range d.keys {
			if k > req.After {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		if len(keys) > maxStateKeys {
			keys, ans.End = keys[:maxStateKeys], false
		}
		if req.After == "" && d.top != nil {
			wants = append(wants, want{"", *d.top})
		}
		for _, k := range keys {
			vs := d.keys[k]
			wants = append(wants, want{k, vs[len(vs)-1]})
		}
	}
	x.mu.Unlock()
	var newest uint64
	for _, w := range wants {
		newest = max(newest, w.v.to)
	}
	x.waitCommitted(ch, newest)

	// Read each update's lines, key by key, until the page is full (past
	// its first key): history.MaxPageBytes of lines, each line once.
	lines := map[uint64]history.PageRecord{}
	size, taken := 0, 0
	for _, w := range wants {
		var got []store.Record
		_, _, err := x.st.ReadRange(ch, w.v.from, w.v.to, func(r store.Record) bool {
			got = append(got, r)
			return true
		})
		if err != nil {
			return nil, err
		}
		add := 0
		for _, r := range got {
			if _, dup := lines[r.Seq]; !dup {
				pr := history.PageRecord{Time: r.Time.UnixNano(), MsgID: r.MsgID, Nick: r.Nick, Tags: r.Tags, Body: r.Body}
				add += pr.Size(nil)
			}
		}
		if req.Key == "" && w.key != "" && taken > 0 && size+add > history.MaxPageBytes {
			ans.End = false
			break
		}
		for _, r := range got {
			if _, dup := lines[r.Seq]; !dup {
				lines[r.Seq] = history.PageRecord{Time: r.Time.UnixNano(), MsgID: r.MsgID, Nick: r.Nick, Tags: r.Tags, Body: r.Body}
			}
		}
		size += add
		if w.key != "" && req.Key == "" {
			ans.Last = w.key
			taken++
		}
	}
	seqs := make([]uint64, 0, len(lines))
	for s := range lines {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		ans.Records = append(ans.Records, lines[s])
	}
	return ans, nil
}

// waitCommitted waits, a second at most, until the store's committed
// records of ch reach seq: the index takes lines as they are appended, the
// store commits them in groups (every 100 ms).
func (x *stateIndex) waitCommitted(ch string, seq uint64) {
	for range 20 {
		_, last, err := x.st.ReadRange(ch, seq, seq, func(store.Record) bool { return false })
		if err != nil || last >= seq {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stateQuery serves history.MethodState.
func (r *Recorder) stateQuery(_ context.Context, q *mesh.Request) ([]byte, error) {
	req, err := history.DecodeStateRequest(q.Payload)
	if err != nil {
		return coded(nil, err)
	}
	ans, err := r.states.answer(req, r.name())
	if err != nil {
		return coded(nil, err)
	}
	r.states.served.Add(1)
	return coded(ans.Encode())
}

// StateAnswers counts the history.MethodState requests answered.
func (r *Recorder) StateAnswers() uint64 { return r.states.served.Load() }

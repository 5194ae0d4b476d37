// Package recorder is the history service: a Recorder journals every
// mesh channel of its node's namespace into a durable store
// (history/store) and serves it to readers (history.Replay, the
// history.Source of catch-up and resume) over the wire of package
// history: pages of the record (history.MethodRead) and the lookup of an
// anycast group's committed offset (history.MethodCommitted).
//
// A recorder that starts, or whose connection dropped, first copies what
// it missed from another recorder, or, with none, from the server's
// CHATHISTORY where the server has one; live lines wait meanwhile and
// follow, so recorders converge on the same lines in the same order.
//
// In a signed mesh the recorder's node needs the mesh's keys (a signing
// key and the keyring, mesh.Config.Signer and Keys): it signs its answers,
// which members that require signatures otherwise drop, and it must
// verify the members' signed requests to answer them. A recorder that
// sees signed lines it cannot verify says so in its log (Unverified).
package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/internal/wait"
	"github.com/meshbot/meshbot/mesh"
)

// Config tunes a Recorder.
type Config struct {
	// Rescan is how often the recorder looks for new topics: in the
	// members' heartbeats and in the server's channel list (2 s).
	Rescan time.Duration
	// SkipHeartbeats leaves the heartbeat channel out of the record.
	SkipHeartbeats bool
	// CommitScan bounds the lines one history.MethodCommitted request
	// looks back at (50,000); the reader asks again from where it stopped.
	CommitScan int
	// StateVersions is how many updates of each key of a domain of state
	// the recorder keeps indexed (history.DefaultStateVersions: 8); see
	// state.go.
	StateVersions int
	Log           *slog.Logger
}

// defaultCommitScan is Config.CommitScan's default.
const defaultCommitScan = 50_000

// Recorder journals every mesh channel of a node's namespace into a Store
// and serves pages of it to readers.
type Recorder struct {
	n   *mesh.Node
	st  *store.Store
	cfg Config
	ns  string // the node's namespace
	mu  sync.Mutex
	obs map[string]*mesh.Observer // by topic
	// logs are where each recorded topic's lines go, by topic.
	logs map[string]*topicLog
	// starting are topics whose observer is being started (observe).
	starting map[string]chan struct{}
	// ctx is Run's: what track requests start recording with.
	ctx context.Context
	// waits are the stored requests waiting for their line (stored.go).
	waits *storedWaits
	// states indexes the domains of state it records (state.go).
	states *stateIndex
	// counters
	lines, errs, filled, unverified atomic.Uint64
	wg                              sync.WaitGroup
}

// topicLog is where one topic's observed lines go: straight to the store,
// or, while the recorder fills a hole from another recorder, to a bounded
// buffer appended after the filled lines.
type topicLog struct {
	r       *Recorder
	topic   string
	mu      sync.Mutex
	filling bool
	again   bool // the connection dropped during a fill: fill again
	// splitSince is, for a gap a netsplit left (the network joined
	// again), when the other side's missing lines start: the fill then
	// fetches from there what this store lacks (fill.go).
	splitSince time.Time
	buf        []store.Record
	ids        map[string]bool // identities of the buffered lines
	dup        map[string]bool // buffered lines the fill brought (not appended again)
	over       uint64          // lines beyond the buffer bound (lost)
	// late holds the recent lines a fill brought before they arrived
	// here live (another recorder can serve a line before this node
	// reads it): arriving later, they are not recorded again. Kept until
	// lateUntil.
	late      map[string]bool
	lateUntil time.Time
}

// lateWindow is how recent a filled line must be to be expected live
// still, and how long it is expected.
const lateWindow = 30 * time.Second

// broughtLocked notes the lines a fill appended: those buffered already
// are not appended again at the hand-over (dup), recent others not when
// they arrive live (late). It reports whether one was buffered (the fill
// met the live lines). tl.mu is held.
func (tl *topicLog) broughtLocked(recs []store.Record, now time.Time) (met bool) {
	cutoff := now.Add(-lateWindow)
	for _, rec := range recs {
		id := lineID(rec.MsgID, rec.Nick, rec.Body)
		switch {
		case tl.ids[id]:
			tl.dup[id] = true
			met = true
		case rec.Time.After(cutoff):
			if tl.late == nil {
				tl.late = map[string]bool{}
			}
			tl.late[id] = true
			tl.lateUntil = now.Add(lateWindow)
		}
	}
	return met
}

// seenLocked reports whether a line arriving live was brought by a fill
// already (and forgets it). tl.mu is held.
func (tl *topicLog) seenLocked(id string, now time.Time) bool {
	if len(tl.late) == 0 {
		return false
	}
	if now.After(tl.lateUntil) {
		tl.late = nil
		return false
	}
	if !tl.late[id] {
		return false
	}
	delete(tl.late, id)
	return true
}

// maxFillBuffer bounds the live lines held while a hole is filled.
const maxFillBuffer = 200_000

// New makes a recorder on n (whose service should be history.Service)
// that writes to st. Run starts it.
func New(n *mesh.Node, st *store.Store, cfg Config) *Recorder {
	if cfg.Rescan <= 0 {
		cfg.Rescan = 2 * time.Second
	}
	if cfg.CommitScan <= 0 {
		cfg.CommitScan = defaultCommitScan
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{n: n, st: st, cfg: cfg, ns: n.Namespace(), obs: map[string]*mesh.Observer{}, logs: map[string]*topicLog{},
		starting: map[string]chan struct{}{}, waits: &storedWaits{by: map[string][]*storedWait{}},
		states: newStateIndex(st, n.Namespace(), cfg.StateVersions, n.NewDecoder)}
}

// name is the recorder's "service/instance", which names its sequence
// numbers in pages (the instance changes when its nick collided).
func (r *Recorder) name() string { return r.n.Service() + "/" + r.n.Instance() }

// Run serves reads and records until ctx ends; it returns after the last
// observer stopped (the store is the caller's to close).
func (r *Recorder) Run(ctx context.Context) error {
	if err := r.n.Handle(history.MethodRead, r.read); err != nil {
		return err
	}
	if err := r.n.Handle(history.MethodCommitted, r.committed); err != nil {
		return err
	}
	r.states.build()
	if err := r.n.Handle(history.MethodState, r.stateQuery); err != nil {
		return err
	}
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	if err := r.n.Handle(history.MethodTrack, r.track); err != nil {
		return err
	}
	if err := r.n.Handle(history.MethodStored, r.storedQuery); err != nil {
		return err
	}
	defer r.wg.Wait()
	defer r.stopAll()
	t := time.NewTicker(r.cfg.Rescan)
	defer t.Stop()
	for {
		if err := r.scan(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Log.Warn("looking for topics", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Lines returns how many lines were recorded; Errors how many could not be.
func (r *Recorder) Lines() uint64  { return r.lines.Load() }
func (r *Recorder) Errors() uint64 { return r.errs.Load() }

// Topics returns the topics being recorded.
func (r *Recorder) Topics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.obs))
	for t := range r.obs {
		out = append(out, t)
	}
	return out
}

// scan observes the topics not observed yet.
func (r *Recorder) scan(ctx context.Context) error {
	topics := map[string]bool{}
	for _, m := range r.n.AllMembers() {
		for _, s := range m.Beat.Subs {
			topics[s.Topic] = true
		}
	}
	listed, err := r.n.Topics(ctx)
	for _, t := range listed {
		topics[t] = true
	}
	if !r.cfg.SkipHeartbeats {
		topics["_hb"] = true
	} else {
		delete(topics, "_hb")
	}
	for t := range topics {
		if oerr := r.observe(ctx, t); oerr != nil {
			err = errors.Join(err, oerr)
		}
	}
	return err
}

// observe starts recording topic, unless it is recorded already; it
// returns once the recorder is in the topic's channel. ctx is the
// recording's (Run's), not a request's.
func (r *Recorder) observe(ctx context.Context, t string) error {
	r.mu.Lock()
	if _, have := r.obs[t]; have {
		r.mu.Unlock()
		return nil
	}
	if wait, starting := r.starting[t]; starting {
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
		_, have := r.obs[t]
		r.mu.Unlock()
		if !have {
			return fmt.Errorf("observing %s: it could not be joined", t)
		}
		return nil
	}
	started := make(chan struct{})
	r.starting[t] = started
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.starting, t)
		r.mu.Unlock()
		close(started)
	}()
	tl := &topicLog{r: r, topic: t, filling: true, ids: map[string]bool{}, dup: map[string]bool{}}
	o, err := r.n.Observe(ctx, t, func(ob mesh.Observation) { tl.record(ctx, ob) }, mesh.ObserveGaps())
	if err != nil {
		return fmt.Errorf("observing %s: %w", t, err)
	}
	r.mu.Lock()
	r.obs[t], r.logs[t] = o, tl
	r.mu.Unlock()
	r.cfg.Log.Info("recording", "topic", t)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.fill(ctx, t, tl)
	}()
	return nil
}

// gap starts a fill of a hole (since: a netsplit's start, zero for a
// dropped connection), or asks the fill under way to go again.
func (tl *topicLog) gap(ctx context.Context, since time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if !since.IsZero() && (tl.splitSince.IsZero() || since.Before(tl.splitSince)) {
		tl.splitSince = since
	}
	if tl.filling {
		tl.again = true
		return
	}
	tl.filling, tl.ids, tl.dup = true, map[string]bool{}, map[string]bool{}
	tl.r.wg.Add(1)
	go func() {
		defer tl.r.wg.Done()
		tl.r.fill(ctx, tl.topic, tl)
	}()
}

// repairSplit fills a netsplit's gap again some seconds after the netjoin
// (splitRepairs, each jittered so that two recorders do not go at once),
// appending only what the store lacks. The first fill can end without
// lines of the other side: the recorder it copied from was filling too,
// holding the live lines it received meanwhile out of its store, or was
// not back yet (docs/PROTOCOL.md §7.10).
func (tl *topicLog) repairSplit(ctx context.Context, since time.Time) {
	tl.r.wg.Add(1)
	go func() {
		defer tl.r.wg.Done()
		start := time.Now()
		for _, at := range splitRepairs {
			at += time.Duration(mrand.Int64N(int64(at/2))) - at/4
			if !wait.Sleep(ctx, time.Until(start.Add(at))) {
				return
			}
			tl.gap(ctx, since)
		}
	}()
}

// splitRepairs are when a recorder fills a netsplit's gap again, after the
// netjoin (±25 %).
var splitRepairs = []time.Duration{5 * time.Second, 20 * time.Second}

// lineID identifies a line across recorders: its msgid, or without one
// its sender and text.
func lineID(msgid, nick, body string) string {
	if msgid != "" {
		return msgid
	}
	return nick + "\x00" + body
}

// record journals one observed line (the first observation of a batch).
// A gap (the connection dropped) starts a fill of the hole from another
// recorder; lines after it wait in the buffer meanwhile.
func (tl *topicLog) record(ctx context.Context, ob mesh.Observation) {
	if ob.Gap {
		tl.gap(ctx, ob.GapSince)
		if !ob.GapSince.IsZero() {
			tl.repairSplit(ctx, ob.GapSince)
		}
		return
	}
	if ob.Part != 0 {
		return
	}
	if ob.Mesh && ob.Err != nil {
		tl.r.unverifiable(tl.topic, ob)
	}
	rec := store.Record{
		Channel: strings.ToLower(ob.Channel),
		Time:    ob.Time,
		MsgID:   ob.MsgID,
		Nick:    ob.From,
		Tags:    ob.Tags,
		Body:    ob.Body,
	}
	id := lineID(rec.MsgID, rec.Nick, rec.Body)
	tl.mu.Lock()
	if tl.seenLocked(id, time.Now()) {
		tl.mu.Unlock()
		return
	}
	if tl.filling {
		if len(tl.buf) < maxFillBuffer {
			tl.buf = append(tl.buf, rec)
			tl.ids[id] = true
		} else {
			tl.over++
		}
		tl.mu.Unlock()
		return
	}
	tl.mu.Unlock()
	tl.r.append(rec)
}

func (r *Recorder) append(rec store.Record) {
	recs := []store.Record{rec}
	err := r.st.Append(recs...)
	if err != nil {
		if r.errs.Add(1)%1000 == 1 {
			r.cfg.Log.Error("recording a line", "channel", rec.Channel, "err", err)
		}
		return
	}
	r.lines.Add(1)
	r.states.add(recs[0]) // Append set its Seq
	r.waits.appended(recs[0])
}

// Filled counts the lines copied from other recorders.
func (r *Recorder) Filled() uint64 { return r.filled.Load() }

func (r *Recorder) stopAll() {
	r.mu.Lock()
	obs := r.obs
	r.obs, r.logs = map[string]*mesh.Observer{}, map[string]*topicLog{}
	r.mu.Unlock()
	var dropped uint64
	for _, o := range obs {
		o.Stop()
		dropped += o.Dropped()
	}
	if dropped > 0 {
		r.cfg.Log.Error("lines dropped before they were recorded (the store could not keep up)", "dropped", dropped)
	}
}

// Dropped counts lines the observers dropped because the store fell behind.
func (r *Recorder) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d uint64
	for _, o := range r.obs {
		d += o.Dropped()
	}
	return d
}

// unverifiable notes an observed mesh line its node refused. It records
// the line all the same (readers verify with their own keys), but a line
// signed with a key the recorder does not know means the recorder lacks
// the mesh's keys: it cannot verify the members' signed requests, so it
// will not answer them, and its unsigned answers are dropped by members
// that require signatures. That is logged loudly, once and then every
// 10,000 such lines.
func (r *Recorder) unverifiable(topic string, ob mesh.Observation) {
	if !errors.Is(ob.Err, envelope.ErrUnknownKey) {
		return
	}
	if r.unverified.Add(1)%10_000 == 1 {
		r.cfg.Log.Error("lines are signed with keys this recorder does not have: give it the mesh's keys (a signing key and the keyring); "+
			"until then members cannot read history from it (it cannot verify their requests, and members that require signatures drop its answers)",
			"topic", topic, "from", ob.From, "lines", r.unverified.Load(), "err", ob.Err)
	}
}

// Unverified counts the recorded lines signed with keys the recorder does
// not have (see the package doc: in a signed mesh it needs the mesh's
// keys).
func (r *Recorder) Unverified() uint64 { return r.unverified.Load() }

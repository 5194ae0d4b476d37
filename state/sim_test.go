package state

import (
	"container/heap"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// The simulation runs several members' Replicas — writers (instances of
// the owning service) and readers — over a network drawn from a seed: one
// server, or two or three servers linked in a star with FIFO links (as IRC
// networks are spanning trees of TCP links), so that lines of different
// senders reach members in different orders. Writers put, delete, replace
// and compare-and-set keys from what their own copy holds; lines are sent
// again later (duplicates, as a history replay or a linked server's burst
// brings them); members
// crash and restart with an empty copy, or disconnect and miss lines, and
// then load the domain from a live member's copy through a Loader, page by
// page, the pages answered by the holder when the request reaches it.
//
// Invariants are checked after every step: a member's domain version and
// each key's stamp never go back while it is up. At the end the faults
// stop and every member must hold the same keys, values, versions and
// domain version, equal to the highest write of each key that reached a
// server when some member stayed up throughout. When every line's delay is
// within half the settle time, every compare-and-set whose writer stayed
// connected is judged right: told it won exactly when it holds the highest
// stamp of its key's writes at its key version (the loser is told).

var (
	simSeed  = flag.Uint64("seed", 0, "run only this simulation seed")
	simRuns  = flag.Int("schedules", 3000, "simulation schedules to run")
	simTrace = flag.Bool("simtrace", false, "print the schedule of a -seed run")
)

const (
	simDomain  = "cfg.app"
	simOwner   = "cfg"
	simSettle  = 100 * time.Millisecond
	simFaults  = 8 * time.Second  // writes and faults happen before this
	simQuiesce = 60 * time.Second // then everything must settle before this
	simPage    = 300              // page budget: several pages per load
)

func TestSimulation(t *testing.T) {
	runs := *simRuns
	switch {
	case testing.Short():
		runs = 300
	case raceEnabled() && !flagSet("schedules"):
		// The simulation runs on one goroutine: the race detector finds
		// nothing in it and makes it about ten times slower, so a -race
		// run does a third of the schedules (fresh seeds every run).
		runs = 1000
	}
	if *simSeed != 0 {
		if err := runSim(*simSeed, *simTrace, t.Logf); err != nil {
			t.Fatalf("seed %d: %v", *simSeed, err)
		}
		return
	}
	base := rand.Uint64()
	// Schedules are independent: two shards run them in parallel.
	const shards = 2
	for shard := range shards {
		t.Run(fmt.Sprint(shard), func(t *testing.T) {
			t.Parallel()
			for i := shard; i < runs; i += shards {
				seed := base + uint64(i)
				if seed == 0 {
					continue
				}
				if err := runSim(seed, false, nil); err != nil {
					t.Fatalf("seed %d: %v\nreplay: go test ./state -run TestSimulation -seed=%d -simtrace -v", seed, err, seed)
				}
			}
		})
	}
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// flagSet reports whether the flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// simItem is one scheduled step.
type simItem struct {
	at   time.Duration
	seq  uint64
	what func()
}

type simQueue []simItem

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simItem)) }
func (q *simQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// simMember is one member: a writer (owner instance) or a reader.
type simMember struct {
	idx    int
	svc    string
	inst   string
	server int
	writer bool

	inc  uint64 // incarnation: new on every restart
	gen  uint64 // connection: new on every restart and reconnect
	up   bool   // the process runs
	conn bool   // connected and joined
	r    *Replica
	load *Loader
	// lineHolder answers this load's requests.
	holder     int
	loadGen    uint64
	everCrash  bool
	lastVer    uint64
	lastStamps map[string]Stamp
	ae         AntiEntropy
	syncs      int
}

func (m *simMember) nick() string { return fmt.Sprintf("%s-%s", m.svc, m.inst) }

// simLine is a state line in the domain's channel.
type simLine struct {
	u         *Update
	from      int
	sentAt    time.Duration
	processed bool // reached a server
}

// simWrite is a write some writer made, and what it was told.
type simWrite struct {
	u       *Update
	line    *simLine
	writer  int
	inc     uint64
	cas     bool
	key     string
	stamp   Stamp
	told    bool
	err     error
	unknown bool // the writer disconnected or crashed before the outcome
}

type sim struct {
	rng     *rand.Rand
	now     time.Duration
	q       simQueue
	seq     uint64
	trace   func(string, ...any)
	err     error
	members []*simMember
	servers int
	// joined[s][m] = the connection generation m joined server s with.
	joined  []map[int]uint64
	fifo    map[string]time.Duration
	maxHop  time.Duration // delay bound of one hop
	tight   bool          // every line arrives within half the settle time
	dupRate float64
	writes  map[envelope.ID]*simWrite
	order   []*simWrite
	idSeq   uint64
	loadSeq uint64
	faulty  bool // some member crashed or disconnected
	lost    bool // a member found no copy after writes had been made
	stable  int  // a reader that never crashed nor disconnected, or -1
}

func (s *sim) at(d time.Duration, f func()) {
	s.seq++
	heap.Push(&s.q, simItem{at: s.now + d, seq: s.seq, what: f})
}

func (s *sim) logf(format string, args ...any) {
	if s.trace != nil {
		s.trace("%8s "+format, append([]any{s.now}, args...)...)
	}
}

func (s *sim) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("at %s: "+format, append([]any{s.now}, args...)...)
	}
}

// hop returns when something sent now over link arrives: a random delay,
// never before what was sent earlier over the same link (FIFO).
func (s *sim) hop(link string) time.Duration {
	d := time.Duration(s.rng.Int64N(int64(s.maxHop))) + time.Millisecond
	at := s.now + d
	if last := s.fifo[link]; at < last {
		at = last
	}
	s.fifo[link] = at
	return at - s.now
}

// dur returns a random duration in [0, d).
func (s *sim) dur(d time.Duration) time.Duration { return time.Duration(s.rng.Int64N(int64(d))) }

func (s *sim) newID() envelope.ID {
	s.idSeq++
	var id envelope.ID
	for i := range 4 {
		id[i] = byte(s.idSeq >> (8 * (3 - i)))
	}
	id[15] = 0x5a
	return id
}

func runSim(seed uint64, trace bool, logf func(string, ...any)) error {
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), fifo: map[string]time.Duration{},
		writes: map[envelope.ID]*simWrite{}, stable: -1}
	if trace {
		s.trace = logf
	}
	s.servers = 1 + s.rng.IntN(3)
	s.tight = s.rng.IntN(4) != 0
	// A line takes up to 4 hops (member → hub → server → member) with
	// one more for a linked network's second link.
	hops := 2 + 2*min(s.servers-1, 1)
	if s.tight {
		s.maxHop = simSettle / 2 / time.Duration(hops)
	} else {
		s.maxHop = time.Duration(1+s.rng.IntN(4)) * simSettle
	}
	s.dupRate = []float64{0, 0.05, 0.3}[s.rng.IntN(3)]
	s.joined = make([]map[int]uint64, s.servers)
	for i := range s.joined {
		s.joined[i] = map[int]uint64{}
	}
	writers, readers := 1+s.rng.IntN(3), 1+s.rng.IntN(3)
	keys := 2 + s.rng.IntN(8)
	for i := range writers + readers {
		m := &simMember{idx: i, writer: i < writers, server: s.rng.IntN(s.servers), up: true}
		m.svc, m.inst = simOwner, fmt.Sprintf("w%d", i)
		if !m.writer {
			m.svc, m.inst = "reader", fmt.Sprintf("r%d", i)
		}
		s.members = append(s.members, m)
	}
	s.logf("seed %d: %d servers, tight=%v, hop ≤ %s, dup %.2f, %d writers, %d readers, %d keys",
		seed, s.servers, s.tight, s.maxHop, s.dupRate, writers, readers, keys)
	for _, m := range s.members {
		s.start(m, s.dur(500*time.Millisecond))
	}
	// Writes.
	for _, m := range s.members[:writers] {
		n := 5 + s.rng.IntN(40)
		for range n {
			s.atFixed(s.dur(simFaults), func() { s.write(m, keys) })
		}
	}
	// Faults.
	faults := s.rng.IntN(5)
	for range faults {
		m := s.members[s.rng.IntN(len(s.members))]
		at := s.dur(simFaults)
		back := time.Duration(50+s.rng.IntN(2000)) * time.Millisecond
		if s.rng.IntN(2) == 0 {
			s.atFixed(at, func() { s.crash(m, back) })
		} else {
			s.atFixed(at, func() { s.disconnect(m, back) })
		}
	}
	// Heartbeats: every member compares the others' copies with its own
	// (AntiEntropy) each second, as announcements would tell it.
	for _, m := range s.members {
		s.atFixed(time.Second+s.dur(time.Second), func() { s.beat(m) })
	}
	for s.q.Len() > 0 && s.err == nil {
		it := heap.Pop(&s.q).(simItem)
		s.now = it.at
		if s.now > simQuiesce {
			return fmt.Errorf("still busy at %s", s.now)
		}
		it.what()
		s.check()
	}
	if s.err != nil {
		return s.err
	}
	return s.final()
}

// atFixed schedules f at an absolute time.
func (s *sim) atFixed(at time.Duration, f func()) { s.at(at-s.now, f) }

// start brings m up (again) with an empty replica and joins it.
func (s *sim) start(m *simMember, after time.Duration) {
	s.at(after, func() {
		m.inc++
		m.up = true
		r, err := New(Config{Domain: simDomain, Self: envelope.Sender{Service: m.svc, Instance: m.inst, Incarnation: m.inc},
			Settle: simSettle, NewID: s.newID})
		if err != nil {
			s.fail("new replica: %v", err)
			return
		}
		m.r = r
		m.lastVer, m.lastStamps = 0, map[string]Stamp{}
		s.logf("%s starts (inc %d) on server %d", m.nick(), m.inc, m.server)
		s.join(m)
	})
}

// join connects m: the JOIN reaches its server, the confirmation comes
// back, then m loads the domain.
func (s *sim) join(m *simMember) {
	m.gen++
	g := m.gen
	s.at(s.hop(fmt.Sprintf("up%d", m.idx)), func() {
		if m.gen != g || !m.up {
			return
		}
		s.joined[m.server][m.idx] = g
		s.at(s.hop(fmt.Sprintf("down%d", m.idx)), func() {
			if m.gen != g || !m.up {
				return
			}
			m.conn = true
			s.logf("%s joined", m.nick())
			s.startLoad(m)
		})
	})
}

func (s *sim) crash(m *simMember, back time.Duration) {
	if !m.up {
		return
	}
	s.faulty, m.everCrash = true, true
	s.logf("%s crashes", m.nick())
	s.drop(m)
	m.up, m.r, m.load = false, nil, nil
	s.start(m, back)
}

func (s *sim) disconnect(m *simMember, back time.Duration) {
	if !m.up || !m.conn {
		return
	}
	s.faulty, m.everCrash = true, true
	s.logf("%s disconnects", m.nick())
	s.drop(m)
	m.r.Disconnected()
	s.takeReady(m)
	m.load = nil
	inc := m.inc
	s.at(back, func() {
		if m.up && m.inc == inc {
			s.join(m)
		}
	})
}

// drop ends m's connection: it leaves its server at once.
func (s *sim) drop(m *simMember) {
	m.conn = false
	m.gen++
	delete(s.joined[m.server], m.idx)
	for _, w := range s.order {
		if w.writer == m.idx && w.inc == m.inc && !w.told {
			w.unknown = true
		}
	}
}

// write makes one random write of writer m from its own copy.
func (s *sim) write(m *simMember, keys int) {
	if !m.up || !m.conn || m.r == nil || !m.r.Loaded() {
		return
	}
	key := fmt.Sprintf("k%d", s.rng.IntN(keys))
	val := []byte(fmt.Sprintf("%s.%d@%s", m.inst, m.inc, s.now))
	var (
		env  *envelope.Envelope
		err  error
		cond Cond
	)
	switch p := s.rng.IntN(20); {
	case p < 8:
		env, err = m.r.Put(key, val, Cond{}, s.tnow())
	case p < 10:
		env, err = m.r.Delete(key, Cond{}, s.tnow())
	case p < 11:
		vals := map[string][]byte{}
		for i := range keys {
			if s.rng.IntN(2) == 0 {
				vals[fmt.Sprintf("k%d", i)] = val
			}
		}
		env, err = m.r.Replace(vals, s.tnow())
	case p < 18:
		cur := m.r.Lookup(key)
		cond = IfVersion(cur.Version)
		if !cur.Exists() {
			cond = IfAbsent()
		}
		if s.rng.IntN(10) == 0 {
			cond = IfVersion(cur.Version + 1) // a stale read: refused at once
		}
		if s.rng.IntN(3) == 0 {
			env, err = m.r.Delete(key, cond, s.tnow())
		} else {
			env, err = m.r.Put(key, val, cond, s.tnow())
		}
	default:
		cond = IfAbsent()
		env, err = m.r.Put(key, val, cond, s.tnow())
	}
	var ce *ConflictError
	switch {
	case errors.As(err, &ce):
		if ce.Settled {
			s.fail("%s: a conflict before sending says settled", m.nick())
		}
		s.logf("%s: %s %s refused at once: %v", m.nick(), key, cond, err)
		return
	case errors.Is(err, ErrNotLoaded) && m.load != nil:
		s.logf("%s: %s not written: loading again", m.nick(), key)
		return
	case err != nil:
		s.fail("%s: write: %v", m.nick(), err)
		return
	}
	sealed, err := envelope.Marshal(env)
	if err != nil {
		s.fail("marshal: %v", err)
		return
	}
	u, err := DecodeUpdate(env, m.nick(), m.svc, sealed)
	if err != nil {
		s.fail("own update does not decode: %v", err)
		return
	}
	m.r.Sent(u.ID, sealed)
	w := &simWrite{u: u, writer: m.idx, inc: m.inc, cas: cond.IsSet(), key: key}
	if w.cas {
		k := u.Puts
		var kv uint64
		if len(k) > 0 {
			kv = k[0].Version
		} else {
			kv = u.Deletes[0].Version
		}
		w.stamp = Stamp{Version: kv, Domain: u.Version, Writer: m.inst, ID: u.ID}
	}
	s.writes[u.ID] = w
	s.order = append(s.order, w)
	s.logf("%s writes v%d %s (%s)", m.nick(), u.Version, describe(u), cond)
	l := &simLine{u: u, from: m.idx, sentAt: s.now}
	w.line = l
	s.route(m, l)
	if s.rng.Float64() < s.dupRate {
		inc := m.inc
		s.at(s.dur(2*time.Second), func() {
			if m.up && m.conn && m.r != nil && m.inc == inc && l.processed {
				s.logf("%s sends %s again", m.nick(), u.ID.Short())
				s.route(m, l)
			}
		})
	}
}

func (s *sim) tnow() time.Time { return time.Unix(0, 0).Add(s.now) }

func describe(u *Update) string {
	var parts []string
	for _, p := range u.Puts {
		parts = append(parts, fmt.Sprintf("put %s@%d", p.Key, p.Version))
	}
	for _, d := range u.Deletes {
		parts = append(parts, fmt.Sprintf("del %s@%d", d.Key, d.Version))
	}
	if u.Whole {
		parts = append(parts, "whole")
	}
	return strings.Join(parts, " ")
}

// route sends line l from m: to m's server, which relays it to its joined
// members and to the linked servers.
func (s *sim) route(m *simMember, l *simLine) {
	g := m.gen
	s.at(s.hop(fmt.Sprintf("up%d", m.idx)), func() {
		if m.gen != g {
			return // lost with the connection
		}
		s.serverGot(m.server, -1, l)
	})
}

// neighbours of server sv in the star around server 0.
func (s *sim) neighbours(sv int) []int {
	if sv != 0 {
		return []int{0}
	}
	var out []int
	for i := 1; i < s.servers; i++ {
		out = append(out, i)
	}
	return out
}

func (s *sim) serverGot(sv, from int, l *simLine) {
	l.processed = true
	for _, m := range s.members {
		g, ok := s.joined[sv][m.idx]
		if !ok || m.server != sv {
			continue
		}
		s.at(s.hop(fmt.Sprintf("down%d", m.idx)), func() { s.deliver(m, g, l) })
	}
	for _, nb := range s.neighbours(sv) {
		if nb != from {
			s.at(s.hop(fmt.Sprintf("link%d-%d", sv, nb)), func() { s.serverGot(nb, sv, l) })
		}
	}
}

// deliver hands a line to m's replica, if m still has that connection.
func (s *sim) deliver(m *simMember, g uint64, l *simLine) {
	if m.gen != g || !m.up || m.r == nil {
		return
	}
	if err := m.r.Receive(l.u, s.tnow()); err != nil {
		s.fail("%s refused %s: %v", m.nick(), l.u.ID.Short(), err)
		return
	}
	s.takeReady(m)
}

// takeReady takes m's outputs: outcomes are recorded, ticks scheduled.
func (s *sim) takeReady(m *simMember) {
	rd := m.r.Ready()
	s.checkChanges(m, rd.Changes)
	for _, o := range rd.Outcomes {
		w := s.writes[o.ID]
		if w == nil {
			s.fail("%s: outcome of an unknown write %s", m.nick(), o.ID.Short())
			continue
		}
		if w.told {
			s.fail("%s: second outcome of %s", m.nick(), o.ID.Short())
		}
		w.told, w.err = true, o.Err
		if errors.Is(o.Err, ErrUnknownOutcome) {
			w.unknown = true
		}
		if !w.cas && o.Err != nil && !w.unknown {
			s.fail("%s: unconditional write %s failed: %v", m.nick(), o.ID.Short(), o.Err)
		}
		s.logf("%s: outcome of %s: %v", m.nick(), o.ID.Short(), o.Err)
	}
	if !rd.Next.IsZero() {
		r := m.r
		s.at(rd.Next.Sub(s.tnow()), func() {
			if m.r == r {
				r.Tick(s.tnow())
				s.takeReady(m)
			}
		})
	}
}

// startLoad: m loads the domain from a live member's copy, or finds none
// and starts from what it has.
func (s *sim) startLoad(m *simMember) {
	var holders []*simMember
	for _, h := range s.members {
		if h != m && h.up && h.conn && h.r != nil && h.r.Current() {
			holders = append(holders, h)
		}
	}
	if len(holders) == 0 {
		for _, w := range s.order {
			if w.line.processed {
				s.lost = true // every copy of what was written is gone
			}
		}
		s.logf("%s: no copy anywhere; starts at v%d", m.nick(), m.r.Version())
		m.load = nil
		m.r.SetLoaded()
		s.takeReady(m)
		return
	}
	h := holders[s.rng.IntN(len(holders))]
	s.loadSeq++
	m.load, m.holder, m.loadGen = NewLoader(m.r, DefaultWindow), h.idx, s.loadSeq
	s.logf("%s loads from %s", m.nick(), h.nick())
	s.ask(m)
}

// ask sends the loader's requests to the holder, as DMs through the
// servers: each is answered when it reaches the holder.
func (s *sim) ask(m *simMember) {
	l, lg, g := m.load, m.loadGen, m.gen
	if l == nil {
		return
	}
	if l.Done() {
		m.load = nil
		m.r.SetLoaded()
		s.takeReady(m)
		s.logf("%s loaded v%d from %d pages", m.nick(), m.r.Version(), l.Pages())
		return
	}
	h := s.members[m.holder]
	for _, rq := range l.Requests() {
		req := rq.Request
		seq := rq.Seq
		hg := h.gen
		s.dm(m, h, func() {
			if h.gen != hg || !h.up || h.r == nil {
				// The holder is gone: the request times out, and the
				// loader starts again from another holder.
				s.at(time.Second, func() {
					if m.gen == g && m.loadGen == lg && m.load != nil {
						s.logf("%s: holder %s gone; asking another", m.nick(), h.nick())
						s.startLoad(m)
					}
				})
				return
			}
			page := h.r.ServePage(&req, simPage)
			s.dm(h, m, func() {
				if m.gen != g || m.loadGen != lg || m.load == nil {
					return
				}
				for _, sl := range page.Updates {
					env, err := envelope.Unmarshal(sl.Envelope, 0)
					if err != nil {
						s.fail("page envelope: %v", err)
						return
					}
					svc, _, _ := strings.Cut(sl.Nick, "-")
					u, err := DecodeUpdate(env, sl.Nick, svc, sl.Envelope)
					if err != nil {
						s.fail("page update: %v", err)
						return
					}
					if err := m.r.Receive(u, s.tnow()); err != nil {
						s.fail("page update refused: %v", err)
						return
					}
				}
				if err := l.Page(seq, page); err != nil {
					s.fail("%s: page: %v", m.nick(), err)
					return
				}
				s.takeReady(m)
				s.ask(m)
			})
		})
	}
}

// dm delivers f at to after a DM's trip through the servers.
func (s *sim) dm(from, to *simMember, f func()) {
	d := s.hop(fmt.Sprintf("up%d", from.idx))
	s.at(d, func() {
		path := []int{from.server}
		if from.server != to.server {
			if from.server != 0 && to.server != 0 {
				path = append(path, 0)
			}
			path = append(path, to.server)
		}
		s.relay(path, to, f)
	})
}

func (s *sim) relay(path []int, to *simMember, f func()) {
	if len(path) == 1 {
		s.at(s.hop(fmt.Sprintf("down%d", to.idx)), f)
		return
	}
	s.at(s.hop(fmt.Sprintf("link%d-%d", path[0], path[1])), func() { s.relay(path[1:], to, f) })
}

// beat: m hears every other member's announcement (up, connected and
// loaded members announce their copies) and loads one that stayed
// different.
func (s *sim) beat(m *simMember) {
	if s.now > simFaults+20*time.Second {
		return
	}
	s.at(time.Second, func() { s.beat(m) })
	if !m.up || !m.conn || m.r == nil || !m.r.Current() || m.load != nil {
		return
	}
	for _, h := range s.members {
		if h == m || !h.up || !h.conn || h.r == nil || !h.r.Current() {
			continue
		}
		if m.ae.Beat(h.nick(), h.r.Version(), h.r.Digest(), m.r) {
			m.syncs++
			s.loadSeq++
			m.load, m.holder, m.loadGen = NewLoader(m.r, DefaultWindow), h.idx, s.loadSeq
			s.logf("%s: copy differs from %s's (v%d %x vs v%d %x): loads it", m.nick(), h.nick(),
				m.r.Version(), m.r.Digest(), h.r.Version(), h.r.Digest())
			s.ask(m)
			return
		}
	}
}

// check runs after every step: a member's domain version never goes back.
func (s *sim) check() {
	for _, m := range s.members {
		if m.r == nil {
			continue
		}
		if v := m.r.Version(); v < m.lastVer {
			s.fail("%s: domain version went back from %d to %d", m.nick(), m.lastVer, v)
		} else {
			m.lastVer = v
		}
	}
}

// checkChanges checks a member's changes: each key's stamp only grows, and
// each change starts where the last one of the key left it (a watcher can
// follow every key from its changes alone).
func (s *sim) checkChanges(m *simMember, cs []Change) {
	for _, c := range cs {
		if c.Kind != Put && c.Kind != Deleted {
			continue
		}
		stamp := func(e Entry) Stamp {
			if e.Version == 0 {
				return Stamp{}
			}
			_, inst, _ := strings.Cut(e.Writer, "/")
			return Stamp{Version: e.Version, Domain: e.DomainVersion, Writer: inst, ID: e.ID}
		}
		old, cur := stamp(c.Old), stamp(c.New)
		if last := m.lastStamps[c.Key]; last != old {
			s.fail("%s: change of %s starts at %+v, the last one ended at %+v", m.nick(), c.Key, old, last)
		}
		if cur.Compare(old) <= 0 {
			s.fail("%s: key %s went back from %+v to %+v", m.nick(), c.Key, old, cur)
		}
		if c.NewVersion < c.OldVersion {
			s.fail("%s: a change takes the domain version back from %d to %d", m.nick(), c.OldVersion, c.NewVersion)
		}
		if (c.Kind == Deleted) != c.New.Deleted {
			s.fail("%s: change %s of %s, entry deleted=%v", m.nick(), c.Kind, c.Key, c.New.Deleted)
		}
		m.lastStamps[c.Key] = cur
	}
}

// final checks the state once everything settled.
func (s *sim) final() error {
	var ref *simMember
	for _, m := range s.members {
		if !m.up || m.r == nil {
			return fmt.Errorf("%s is not up at the end", m.nick())
		}
		if !m.r.Loaded() {
			return fmt.Errorf("%s never loaded", m.nick())
		}
		if m.r.Pending() != 0 {
			return fmt.Errorf("%s still has %d writes without outcome", m.nick(), m.r.Pending())
		}
		if ref == nil {
			ref = m
			continue
		}
		if d := diff(ref.r, m.r); d != "" {
			return fmt.Errorf("%s and %s differ: %s", ref.nick(), m.nick(), d)
		}
	}
	// The highest write of each key that reached a server, and the
	// highest domain version: what every member must hold when some
	// member kept every line.
	oracle := map[string]Stamp{}
	var top uint64
	for _, w := range s.order {
		if !s.reached(w) {
			continue
		}
		top = max(top, w.u.Version)
		for _, p := range w.u.Puts {
			st := Stamp{Version: p.Version, Domain: w.u.Version, Writer: w.u.Writer.Instance, ID: w.u.ID}
			if st.Compare(oracle[p.Key]) > 0 {
				oracle[p.Key] = st
			}
		}
		for _, d := range w.u.Deletes {
			st := Stamp{Version: d.Version, Domain: w.u.Version, Writer: w.u.Writer.Instance, ID: w.u.ID}
			if st.Compare(oracle[d.Key]) > 0 {
				oracle[d.Key] = st
			}
		}
	}
	kept := false
	for _, m := range s.members {
		if !m.everCrash {
			kept = true
		}
	}
	if kept && !s.lost {
		if ref.r.Version() != top {
			return fmt.Errorf("domain version %d, the highest that reached a server is %d", ref.r.Version(), top)
		}
		for k, st := range oracle {
			sl := ref.r.slots[k]
			if sl == nil || sl.stamp != st {
				return fmt.Errorf("key %s holds %+v, the highest write that reached a server is %+v", k, sl, st)
			}
		}
		if len(ref.r.slots) != len(oracle) {
			return fmt.Errorf("%d keys held, %d written", len(ref.r.slots), len(oracle))
		}
	}
	// Compare-and-sets.
	for _, w := range s.order {
		if !w.cas {
			continue
		}
		m := s.members[w.writer]
		if !w.told {
			if m.inc == w.inc && !w.unknown {
				return fmt.Errorf("cas %s of %s was never judged", w.u.ID.Short(), m.nick())
			}
			continue
		}
		if w.unknown || !s.tight || s.lost {
			continue
		}
		best := Stamp{}
		for _, x := range s.order {
			if !s.reached(x) && x != w {
				continue
			}
			for _, e := range entriesOf(x.u) {
				if e.Key == w.key && e.Version == w.stamp.Version {
					if st := (Stamp{Version: e.Version, Domain: x.u.Version, Writer: x.u.Writer.Instance, ID: x.u.ID}); st.Compare(best) > 0 {
						best = st
					}
				}
			}
		}
		won := best == w.stamp
		if won != (w.err == nil) {
			return fmt.Errorf("cas %s (%s@%d) of %s: told %v, but the highest write at its key version is %+v",
				w.u.ID.Short(), w.key, w.stamp.Version, m.nick(), w.err, best)
		}
		if w.err != nil && !errors.Is(w.err, ErrConflict) {
			return fmt.Errorf("cas %s: unexpected error %v", w.u.ID.Short(), w.err)
		}
	}
	return nil
}

// reached reports whether w's line reached a server.
func (s *sim) reached(w *simWrite) bool { return w.line.processed }

func entriesOf(u *Update) []Entry {
	var out []Entry
	for _, p := range u.Puts {
		out = append(out, Entry{Key: p.Key, Version: p.Version})
	}
	for _, d := range u.Deletes {
		out = append(out, Entry{Key: d.Key, Version: d.Version, Deleted: true})
	}
	return out
}

// diff describes how two replicas differ, "" when they do not.
func diff(a, b *Replica) string {
	if a.Version() != b.Version() {
		return fmt.Sprintf("domain version %d vs %d", a.Version(), b.Version())
	}
	keys := map[string]bool{}
	for k := range a.slots {
		keys[k] = true
	}
	for k := range b.slots {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		x, y := a.Lookup(k), b.Lookup(k)
		if x.Version != y.Version || x.ID != y.ID || x.Deleted != y.Deleted || string(x.Value) != string(y.Value) {
			return fmt.Sprintf("key %s: %+v vs %+v", k, x, y)
		}
	}
	return ""
}

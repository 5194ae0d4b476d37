package claims

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// The simulation drives several members' Groups — the protocol, whole, as
// the runtime runs it — through one schedule drawn from a seed: a server
// that relays lines in one total order (one server) or only per sender in
// order (a linked network), publishes, handlers that take time and
// sometimes fail, poison events, crashes, graceful stops (releases),
// restarts, pauses longer than a lease, disconnects (a member misses lines
// and resets), duplicated lines, and partitions of the network into two
// sides (sim_split_test.go), cut and healed, cut again. Members exchange real envelopes: the
// claims, acks, nacks, releases and dead markers their Groups build, and
// the HistoryClaims and votes of their commit ticks. Invariants are checked
// after every step; at the end the faults stop and every event must come
// out completed, and the committed offsets agree.

var (
	simSeed  = flag.Uint64("seed", 0, "run only this simulation seed")
	simRuns  = flag.Int("schedules", 10000, "simulation schedules to run")
	simTrace = flag.Bool("sim.trace", false, "print the schedule of a -seed run")
)

const (
	simLease   = 3 * time.Second
	simBeat    = time.Second
	simCommit  = 2 * time.Second  // each member's commit tick (CommitInterval)
	simFaults  = 20 * time.Second // faults and publishes happen before this
	simQuiesce = 90 * time.Second // then everything must settle before this
	// simLinkDelay bounds a linked network's delay: lines sent this long
	// apart arrive in the order sent everywhere. Half the linked runs
	// have links slower than the settle time (20 ms), where two members
	// whose views differ may both start one event at one epoch before
	// each sees the other's claim (§6.5); the others, links faster than
	// it (simFastLink), where that must never happen.
	simLinkDelay = 60 * time.Millisecond
	simFastLink  = 15 * time.Millisecond
	simTopic     = "jobs"
	simGroup     = "svc"
)

type lineKind uint8

const (
	lEnv   lineKind = iota // an envelope in the topic's channel
	lBeat                  // a heartbeat
	lQuit                  // the server's QUIT for a member
	lSplit                 // the server's split QUIT for a member of the other side
	lJoin                  // its JOIN when the network joins again
)

type simLine struct {
	kind lineKind
	from int // member index, -1 for the publisher
	who  Claimant
	env  *envelope.Envelope
	off  envelope.Offset // the server's server-time and msgid
	key  string          // an event's routing key
}

type simMember struct {
	idx       int
	id        string
	inc       uint64
	g         *Group
	up        bool // process exists (not crashed)
	paused    bool
	lastBeat  time.Time // last beat sent
	running   map[envelope.ID]uint64
	completed map[envelope.ID]Claimant // what this member accepted, to check it never changes
	doneEpoch map[envelope.ID]uint64
	outcome   map[envelope.ID]Outcome
	// view of the others: last beat received, incarnation, quit seen
	beats    []time.Time
	incs     []uint64
	quit     []bool
	seen     map[envelope.ID]bool // events delivered to this incarnation
	backlog  []simLine            // lines held while paused
	discoTil time.Time            // disconnected until
	// claims delivered to this incarnation: the highest per event, and
	// when each of its own came back
	topClaim map[envelope.ID]*claim
	ownSeen  map[ownKey]time.Time
	// committed is the member's committed offset at the last check.
	committed envelope.Offset
	// Partitions (sim_split_test.go): its side, and what its view holds
	// of the others: lost in a split since (zero: not), came back by a
	// JOIN at.
	side        int
	splitAt     []time.Time
	joinedAt    []time.Time
	startedAt   time.Time
	pubSplit    bool               // the publisher's split QUIT came
	pubSplitFed bool               // as last fed to the Group
	view        []heartbeat.Member // scratch for members
	sig         [4]Member          // the view last fed to sigOf
	sigOf       *Group
}

type ownKey struct {
	id    envelope.ID
	epoch uint64
}

type simItem struct {
	at   int64 // Unix nanoseconds: no pointer to move
	seq  uint64
	what func()
}

// simQueue is a min-heap of simItems by (at, seq), typed: no boxing.
type simQueue []simItem

func (q simQueue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q *simQueue) push(it simItem) {
	*q = append(*q, it)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *simQueue) pop() simItem {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = simItem{}
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h.less(l, m) {
			m = l
		}
		if r < len(h) && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

type ledgerEntry struct {
	token   uint64
	applies int
}

type sim struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	now     time.Time
	q       simQueue
	seq     uint64
	ms      []*simMember
	linked  bool
	delay   time.Duration // a linked network's delay bound
	refill  bool          // a member that reconnects replays the record (else it has a hole)
	dupP    float64
	poison  map[envelope.ID]bool
	flakyP  float64
	events  []envelope.ID
	ledger  map[envelope.ID]*ledgerEntry
	stale   int // ledger writes refused
	lastDel map[[2]int]time.Time
	trace   []string
	tracing bool // the schedule is kept for -trace and -seed
	failed  bool
	settled time.Time // when every member was up with nothing pending
	ids     uint64    // envelope ids the Groups built
	lines   uint64    // lines the server relayed: the msgid of the next
	// Ground truth for the consensus: the offset of each event's line,
	// which events some member received, and which some member accepted
	// as completed (a completion is in the channel for good).
	eventOff map[envelope.ID]envelope.Offset
	received map[envelope.ID]bool
	done     map[envelope.ID]bool
	commits  int // commits seen to move
	// record is every envelope the server relayed, in its order: the
	// history service's record (§7), from which members resume (§6.12).
	// Through a partition it is the union of both sides' recorders, as
	// they are once they have filled each other's holes.
	record []simLine
	// Partitions (sim_split_test.go).
	part      *simPart
	partOnly  bool                 // the run's only faults are partitions
	failures  map[envelope.ID]int  // handler failures per event
	startedBy map[ownKey]Claimant  // who started each event at each epoch
	silent    map[envelope.ID]bool // published in a partition nobody noticed yet
	parted    bool                 // a partition happened: one server is two
	parts     int                  // partitions
}

func (s *sim) logf(format string, args ...any) {
	if s.tracing && len(s.trace) < 4000 {
		s.trace = append(s.trace, fmt.Sprintf("%8.3fs ", s.now.Sub(simEpoch).Seconds())+fmt.Sprintf(format, args...))
	}
}

func (s *sim) fatalf(format string, args ...any) {
	if s.failed {
		return
	}
	s.failed = true
	s.t.Errorf("seed %d: %s\n  replay: go test ./claims -run TestSimulation -seed=%d -sim.trace -v", s.seed, fmt.Sprintf(format, args...), s.seed)
	if *simTrace || *simSeed != 0 {
		s.t.Log("schedule:\n" + strings.Join(s.trace, "\n"))
	}
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (s *sim) at(t time.Time, f func()) {
	s.seq++
	s.q.push(simItem{at: t.UnixNano(), seq: s.seq, what: f})
}

func (s *sim) after(d time.Duration, f func()) { s.at(s.now.Add(d), f) }

func newSim(t *testing.T, seed uint64) *sim {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &sim{t: t, seed: seed, rng: rng, now: simEpoch, poison: map[envelope.ID]bool{},
		ledger: map[envelope.ID]*ledgerEntry{}, lastDel: map[[2]int]time.Time{},
		eventOff: map[envelope.ID]envelope.Offset{}, received: map[envelope.ID]bool{}, done: map[envelope.ID]bool{},
		failures: map[envelope.ID]int{}, startedBy: map[ownKey]Claimant{}, silent: map[envelope.ID]bool{}}
	s.tracing = *simTrace || *simSeed != 0
	s.linked = rng.IntN(2) == 0
	s.delay = simLinkDelay
	if rng.IntN(2) == 0 {
		s.delay = simFastLink
	}
	if rng.IntN(3) == 0 {
		s.dupP = 0.05
	}
	s.flakyP = []float64{0, 0.05, 0.2}[rng.IntN(3)]
	s.refill = rng.IntN(2) == 0
	n := 2 + rng.IntN(3)
	for i := range n {
		m := &simMember{idx: i, id: fmt.Sprintf("w%d", i)}
		m.beats, m.incs, m.quit = make([]time.Time, n), make([]uint64, n), make([]bool, n)
		m.splitAt, m.joinedAt = make([]time.Time, n), make([]time.Time, n)
		s.ms = append(s.ms, m)
	}
	return s
}

func (s *sim) sender(m *simMember) envelope.Sender {
	return envelope.Sender{Service: simGroup, Instance: m.id, Incarnation: m.inc}
}

func (s *sim) start(m *simMember) {
	m.inc++
	m.up, m.paused, m.startedAt = true, false, s.now
	m.g = NewGroup(GroupConfig{
		Config: Config{Lease: simLease, Settle: 20 * time.Millisecond, ClaimTimeout: 1500 * time.Millisecond,
			Skew: 200 * time.Millisecond, Retain: time.Hour},
		Topic: simTopic, Group: simGroup, Sender: s.sender(m),
		NewID: func() envelope.ID { s.ids++; return simID(s.ids) },
	})
	m.running = map[envelope.ID]uint64{}
	m.completed = map[envelope.ID]Claimant{}
	m.doneEpoch = map[envelope.ID]uint64{}
	m.outcome = map[envelope.ID]Outcome{}
	m.seen = map[envelope.ID]bool{}
	m.topClaim = map[envelope.ID]*claim{}
	m.ownSeen = map[ownKey]time.Time{}
	m.backlog = nil
	m.committed = envelope.Offset{}
	for j := range m.beats {
		m.beats[j], m.incs[j], m.quit[j] = time.Time{}, 0, false
		m.splitAt[j], m.joinedAt[j] = time.Time{}, time.Time{}
	}
	s.logf("w%d starts (incarnation %d)", m.idx, m.inc)
	s.resume(m)
	s.beat(m)
	g := m.g
	var ready func()
	ready = func() {
		switch {
		case !m.up || m.g != g:
		case m.paused:
			s.after(100*time.Millisecond, ready) // frozen: ready once it runs again
		default:
			g.SetReady(true, s.now)
			s.apply(m)
		}
	}
	s.after(1200*time.Millisecond, ready)
	s.commitLoop(m, g)
}

func simID(n uint64) envelope.ID {
	var id envelope.ID
	copy(id[:], "sim")
	for i := range 8 {
		id[15-i] = byte(n >> (8 * i))
	}
	return id
}

// beat sends a heartbeat and renews the member's session.
func (s *sim) beat(m *simMember) {
	if !m.up || m.paused || s.now.Before(m.discoTil) {
		return
	}
	m.lastBeat = s.now
	s.send(m.idx, simLine{kind: lBeat, from: m.idx, who: Claimant{m.id, m.inc}})
	m.g.Session(s.now.Add(2*simBeat-250*time.Millisecond), s.now)
	s.apply(m)
}

func (s *sim) beatLoop(m *simMember, inc uint64) {
	s.after(simBeat-50*time.Millisecond+time.Duration(s.rng.IntN(100))*time.Millisecond, func() {
		if !m.up || m.inc != inc {
			return
		}
		s.beat(m)
		s.beatLoop(m, inc)
	})
}

// commitLoop runs a member's commit tick while its Group lives.
func (s *sim) commitLoop(m *simMember, g *Group) {
	s.after(simCommit-100*time.Millisecond+time.Duration(s.rng.IntN(200))*time.Millisecond, func() {
		if !m.up || m.g != g {
			return
		}
		if !m.paused && !s.now.Before(m.discoTil) {
			g.Commit(s.now)
			s.apply(m)
		}
		s.commitLoop(m, g)
	})
}

// send relays a line from member from (-1: the publisher) to every member.
// An envelope gets its offset from the server: the time it relays it and
// a msgid, the same for every receiver.
func (s *sim) send(from int, l simLine) {
	if l.kind == lEnv {
		s.lines++
		l.off = envelope.OffsetAt(s.now, strconv.FormatUint(s.lines, 10))
		s.record = append(s.record, l)
	}
	for _, m := range s.ms {
		if s.apart(from, m.idx) {
			continue // a partition: nothing of the other side arrives
		}
		s.sendTo(from, m, l)
	}
}

// sendTo relays a line from member from to member m, in order after what
// from sent before (one server: after everything).
func (s *sim) sendTo(from int, m *simMember, l simLine) {
	d := time.Duration(s.rng.IntN(5)) * time.Millisecond
	if s.linked {
		d = time.Duration(s.rng.IntN(int(s.delay/time.Millisecond))) * time.Millisecond
	}
	k := [2]int{from, m.idx}
	if !s.linked {
		k = [2]int{-2, m.idx} // one order for all senders
	}
	t := s.now.Add(d)
	if last := s.lastDel[k]; t.Before(last) {
		t = last
	}
	s.lastDel[k] = t
	s.at(t, func() { s.deliver(m, l) })
	if s.dupP > 0 && s.rng.Float64() < s.dupP && l.kind == lEnv {
		s.at(t, func() { s.deliver(m, l) })
	}
}

func (s *sim) deliver(m *simMember, l simLine) {
	if !m.up || s.now.Before(m.discoTil) {
		return
	}
	if m.paused {
		m.backlog = append(m.backlog, l)
		return
	}
	switch l.kind {
	case lBeat:
		if l.from != m.idx && l.who.Incarnation >= m.incs[l.from] {
			m.beats[l.from], m.incs[l.from], m.quit[l.from] = s.now, l.who.Incarnation, false
			m.splitAt[l.from] = time.Time{}
		}
		s.members(m)
		return
	case lQuit:
		if l.from != m.idx {
			m.quit[l.from] = true
			s.members(m)
		}
		return
	case lSplit, lJoin:
		s.deliverSplit(m, l)
		return
	}
	s.feed(m, l, false)
}

// feed gives a member's Group one envelope, live or from the record, and
// keeps what the invariants need to know of what it received.
func (s *sim) feed(m *simMember, l simLine, replay bool) {
	env := l.env
	var completions []envelope.ID
	switch env.Kind {
	case envelope.KindEvent:
		m.seen[env.ID] = true
		s.received[env.ID] = true
		if _, _, _, ok := m.g.Status(env.ID); !ok && !m.g.core.tombs.has(env.ID) {
			// Never seen, or forgotten past its retention: what the
			// member learns of it now is new. (Forgotten behind the
			// committed offset within it, it stays completed: tombs.go.)
			delete(m.outcome, env.ID)
		}
	case envelope.KindClaim:
		who := ClaimantOf(env.Sender)
		items, err := DecodeItems(env.Payload)
		if err != nil {
			s.fatalf("w%d receives a claim that does not decode: %v", m.idx, err)
			return
		}
		for _, it := range items {
			if _, _, _, ok := m.g.Status(it.Event); !ok && !m.g.core.tombs.has(it.Event) {
				delete(m.outcome, it.Event) // forgotten for good: relearnt from here
			}
			cl := &claim{who: who, epoch: it.Epoch, weight: Weight(it.Event, who.ID)}
			if top := m.topClaim[it.Event]; top == nil || top.less(cl) {
				m.topClaim[it.Event] = cl
			}
			if who == m.g.self {
				if _, ok := m.ownSeen[ownKey{it.Event, it.Epoch}]; !ok {
					m.ownSeen[ownKey{it.Event, it.Epoch}] = s.now
				}
			}
		}
	case envelope.KindAck:
		items, _ := DecodeItems(env.Payload)
		for _, it := range items {
			completions = append(completions, it.Event)
		}
	case envelope.KindDeadLetter:
		completions = append(completions, env.Correlation)
	}
	for _, id := range completions {
		if _, _, _, ok := m.g.Status(id); !ok && !m.g.core.tombs.has(id) {
			// Forgotten past its retention: a completion seen now is a
			// new one (across linked servers members may accept
			// different acks of one event, §6.6).
			delete(m.outcome, id)
		}
	}
	r := Received{Envelope: env, From: "nick" + strconv.Itoa(l.from), ServerTime: l.off.At(), MsgID: l.off.MsgID, Key: l.key}
	if s.tracing {
		s.logf("w%d <- %s %s", m.idx, env.Kind, s.describe(env))
	}
	if replay {
		m.g.Replay(r, s.now)
	} else if !m.g.Receive(r, s.now) {
		s.fatalf("w%d: the group did not take a %s", m.idx, env.Kind)
	}
	s.apply(m)
	if !replay { // (a replay may show an event pending before its completion)
		for _, id := range completions {
			s.checkOne(m, id)
		}
	}
}

// resume replays the record into a member that starts or reconnects, as
// a member with history does (§6.12): from the committed offset carried
// by the group's last HistoryClaim in the record, less a margin, or the
// whole record without one.
func (s *sim) resume(m *simMember) { s.replayRecord(m, true) }

// replayRecord replays the record into m's Group; fresh says the member
// (re)started or reconnected: what it accepted before is forgotten and
// checked again from the replay.
func (s *sim) replayRecord(m *simMember, fresh bool) {
	var committed envelope.Offset
	for i := len(s.record) - 1; i >= 0; i-- {
		if env := s.record[i].env; env.Kind == envelope.KindHistoryClaim {
			if _, c, err := DecodeHistoryClaim(env.Payload); err == nil && !c.IsZero() {
				committed = c
				break
			}
		}
	}
	var since int64
	if !committed.IsZero() {
		since = committed.Time - int64(5*time.Second)
	}
	m.g.Resume(committed, s.now)
	if fresh {
		// What the member accepted before is replayed: its completions
		// are checked again from what the replay gives.
		clear(m.outcome)
		clear(m.completed)
		clear(m.doneEpoch)
	}
	n := 0
	for _, l := range s.record {
		if l.off.Time >= since {
			s.feed(m, l, true)
			n++
		}
	}
	m.g.Replayed(s.now)
	s.logf("w%d resumes from %s: %d lines", m.idx, s.offName(committed), n)
	s.apply(m)
	for _, id := range s.events {
		s.checkOne(m, id)
	}
}

var simSubs = []heartbeat.Sub{{Topic: simTopic, Group: simGroup}}

// members feeds m's Group its heartbeat view.
func (s *sim) members(m *simMember) {
	var sig [4]Member // what the view says of each member; zero: unknown
	for j := range s.ms {
		inc := m.incs[j]
		if j == m.idx {
			inc = m.inc
		} else if inc == 0 {
			continue
		}
		mem, known := s.viewOf(m, j, inc)
		if !known {
			continue
		}
		sig[j] = mem
	}
	if sig == m.sig && m.sigOf == m.g && m.pubSplit == m.pubSplitFed {
		return // nothing changed
	}
	m.pubSplitFed = m.pubSplit
	m.sig, m.sigOf = sig, m.g
	all := m.view[:0]
	for j, o := range s.ms {
		if sig[j].Incarnation != 0 {
			all = append(all, heartbeat.Member{Service: simGroup, Instance: o.id, Incarnation: sig[j].Incarnation, State: sig[j].State,
				Departed: sig[j].Departed, Fence: sig[j].Fence, Beat: heartbeat.Beat{Subs: simSubs}})
		}
	}
	all = append(all, s.pubMember(m))
	if s.tracing {
		var b strings.Builder
		for _, x := range all {
			fmt.Fprintf(&b, " %s:%s", x.Instance, x.State)
		}
		s.logf("w%d view%s", m.idx, b.String())
	}
	m.view = all
	m.g.Members(all, s.now)
	s.apply(m)
}

// describe is an envelope as the trace shows it.
func (s *sim) describe(env *envelope.Envelope) string {
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck:
		items, _ := DecodeItems(env.Payload)
		var b strings.Builder
		for _, it := range items {
			fmt.Fprintf(&b, " %s@%d/%d", it.Event.Short(), it.Epoch, it.Attempt)
		}
		return b.String()
	case envelope.KindHistoryClaim:
		c, k, _ := DecodeHistoryClaim(env.Payload)
		return fmt.Sprintf("%s committed %s", s.offName(c), s.offName(k))
	case envelope.KindHistoryAck, envelope.KindHistoryReject:
		o, _ := DecodeOffset(env.Payload)
		return s.offName(o)
	}
	return fmt.Sprintf("%s@%d", env.Correlation.Short(), env.Epoch)
}

func (s *sim) offName(o envelope.Offset) string {
	if o.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.3fs/%s", o.At().Sub(simEpoch).Seconds(), o.MsgID)
}

func (s *sim) schedTick(m *simMember) {
	next := m.g.Next()
	if next.IsZero() {
		return
	}
	if next.Before(s.now) {
		next = s.now
	}
	g := m.g
	s.at(next, func() {
		if m.up && !m.paused && m.g == g && !s.now.Before(g.Next()) {
			g.Tick(s.now)
			s.apply(m)
		}
	})
}

func (s *sim) publish() {
	var id envelope.ID
	for i := range id {
		id[i] = byte(s.rng.IntN(256))
	}
	s.events = append(s.events, id)
	if s.rng.IntN(25) == 0 {
		s.poison[id] = true
	}
	key := ""
	if s.rng.IntN(2) == 0 {
		key = fmt.Sprintf("k%d", s.rng.IntN(4))
	}
	s.logf("publish %s key=%q poison=%v", id.Short(), key, s.poison[id])
	env := &envelope.Envelope{Version: envelope.Version, Kind: envelope.KindEvent, ID: id, Time: s.now.UnixNano(),
		Sender: envelope.Sender{Service: "pub", Instance: "1", Incarnation: 1}, Topic: simTopic, Payload: []byte("job")}
	if s.silentEvent() {
		s.silent[id] = true
	}
	s.send(-1, simLine{kind: lEnv, from: -1, env: env, key: key})
	s.eventOff[id] = envelope.OffsetAt(s.now, strconv.FormatUint(s.lines, 10))
	if s.part != nil {
		s.logf("  (published on side %d)", s.part.pubSide)
	}
}

// restart starts a member again after a crash or a stop. Not during a
// partition: a member that starts then knows only its own side, and may
// claim what the other side claims too (docs/PROTOCOL.md §6.14, limits);
// it waits for the network to join.
func (s *sim) restart(m *simMember) {
	if s.part != nil {
		s.after(500*time.Millisecond, func() { s.restart(m) })
		return
	}
	s.start(m)
	s.beatLoop(m, m.inc)
}

// fault injects one failure into a random member.
func (s *sim) fault() {
	if s.rng.IntN(4) == 0 {
		s.partition()
		return
	}
	m := s.ms[s.rng.IntN(len(s.ms))]
	if !m.up || m.paused || s.now.Before(m.discoTil) {
		return
	}
	kind := s.rng.IntN(5)
	if s.part != nil {
		kind = 2 // during a partition membership holds: a pause only
	}
	switch kind {
	case 0: // SIGKILL, restart later
		s.logf("w%d crashes", m.idx)
		m.up = false
		m.running = nil
		s.send(m.idx, simLine{kind: lQuit, from: m.idx})
		s.after(time.Duration(500+s.rng.IntN(4000))*time.Millisecond, func() { s.restart(m) })
	case 1: // a graceful stop: its handlers are cut short, its claims released
		s.logf("w%d stops", m.idx)
		m.g.SetReady(false, s.now)
		m.running = map[envelope.ID]uint64{}
		m.g.ReleaseAll(s.now)
		s.apply(m)
		m.up = false
		s.send(m.idx, simLine{kind: lQuit, from: m.idx})
		s.after(time.Duration(500+s.rng.IntN(4000))*time.Millisecond, func() { s.restart(m) })
	case 2, 3: // SIGSTOP past a lease, SIGCONT
		d := time.Duration(500+s.rng.IntN(2*int(simLease/time.Millisecond))) * time.Millisecond
		s.logf("w%d pauses for %s", m.idx, d)
		m.paused = true
		s.after(d, func() {
			if !m.up || !m.paused {
				return
			}
			m.paused = false
			s.logf("w%d resumes", m.idx)
			m.g.Tick(s.now) // its clock jumped: fence first
			s.apply(m)
			backlog := m.backlog
			m.backlog = nil
			for _, l := range backlog {
				s.deliver(m, l)
			}
			s.beat(m)
		})
	case 4: // the connection drops: lines are missed, the server QUITs it
		d := time.Duration(200+s.rng.IntN(3000)) * time.Millisecond
		s.logf("w%d disconnected for %s", m.idx, d)
		m.discoTil = s.now.Add(d)
		clear(m.seen)
		clear(m.topClaim)
		m.g.Reset(s.now)
		s.apply(m)
		m.running = map[envelope.ID]uint64{}
		s.send(m.idx, simLine{kind: lQuit, from: m.idx})
		s.at(m.discoTil, func() {
			if !m.up {
				return
			}
			// Its view was suspended: every member it did not see leave
			// gets a fresh start (heartbeat.View.Resume).
			for j := range m.beats {
				if !m.quit[j] {
					m.beats[j] = s.now
				}
			}
			if s.refill {
				s.resume(m)
			}
			s.beat(m)
		})
	}
}

func (s *sim) run() {
	for _, m := range s.ms {
		m := m
		s.after(time.Duration(s.rng.IntN(300))*time.Millisecond, func() { s.start(m); s.beatLoop(m, m.inc) })
	}
	nEvents := 5 + s.rng.IntN(20)
	for range nEvents {
		s.at(simEpoch.Add(1500*time.Millisecond+time.Duration(s.rng.Int64N(int64(simFaults-3*time.Second)))), s.publish)
	}
	if s.rng.IntN(3) == 0 {
		// Partitions only: no member fails, so no attempt may be counted
		// but for a handler's own failure.
		s.partOnly = true
		for range 1 + s.rng.IntN(3) {
			s.at(simEpoch.Add(time.Duration(s.rng.Int64N(int64(simFaults)))), s.partition)
		}
	} else {
		for range s.rng.IntN(5) {
			s.at(simEpoch.Add(time.Duration(s.rng.Int64N(int64(simFaults)))), s.fault)
		}
	}
	// Refresh every member's view of the others twice a second. Once
	// every member is up with nothing pending, a few commit ticks more
	// let the committed offsets settle, and the run ends.
	var views func()
	views = func() {
		settled := s.now.After(simEpoch.Add(simFaults + 5*time.Second))
		for _, m := range s.ms {
			if m.up && !m.paused && !s.now.Before(m.discoTil) {
				s.members(m)
				settled = settled && m.g.Stats().Pending == 0
			} else {
				settled = false
			}
		}
		switch {
		case !settled:
			s.settled = time.Time{}
		case s.settled.IsZero():
			s.settled = s.now
		}
		s.checkSides()
		if s.now.Before(simEpoch.Add(simQuiesce)) {
			s.after(500*time.Millisecond, views)
		}
	}
	s.after(500*time.Millisecond, views)
	end := simEpoch.Add(simQuiesce)
	steps := 0
	for len(s.q) > 0 && !s.failed {
		if !s.settled.IsZero() && s.now.Sub(s.settled) >= 3*simCommit {
			break
		}
		if steps++; steps > 500_000 {
			s.fatalf("no progress: %d steps by %s", steps, s.now.Sub(simEpoch))
			break
		}
		it := s.q.pop()
		if it.at > end.UnixNano() {
			break
		}
		s.now = time.Unix(0, it.at).UTC()
		it.what()
	}
	s.final()
}

func TestSimulation(t *testing.T) {
	if *simSeed != 0 {
		s := newSim(t, *simSeed)
		s.run()
		if *simTrace && !s.failed {
			t.Log("schedule:\n" + strings.Join(s.trace, "\n"))
		}
		return
	}
	runs := *simRuns
	switch {
	case testing.Short():
		runs = 1000
	case raceEnabled() && !flagSet("schedules"):
		// The simulation is pure: the race detector only slows it down
		// (about tenfold), so a -race run does fewer schedules.
		runs = 2000
	}
	// Seeds run in parallel shards; each schedule is independent.
	var mu sync.Mutex
	var events, applies, stale, redone, commits, parts, lost, resent int
	const shards = 4
	t.Run("shards", func(t *testing.T) {
		for shard := range shards {
			t.Run(fmt.Sprint(shard), func(t *testing.T) {
				t.Parallel()
				for seed := uint64(1 + shard); seed <= uint64(runs); seed += shards {
					s := newSim(t, seed)
					s.run()
					if s.failed {
						return
					}
					mu.Lock()
					events += len(s.events)
					stale += s.stale
					commits += s.commits
					parts += s.parts
					for _, m := range s.ms {
						if m.g != nil {
							st := m.g.Stats()
							lost += int(st.QuorumLost)
							resent += int(st.Resent)
						}
					}
					for _, l := range s.ledger {
						applies += l.applies
						if l.applies > 1 {
							redone++
						}
					}
					mu.Unlock()
				}
			})
		}
	})
	t.Logf("%d schedules, %d events: %d ledger writes, %d refused as stale, %d events applied again after a takeover; the committed offset moved %d times",
		runs, events, applies, stale, redone, commits)
	t.Logf("%d partitions: members lost the majority %d times and sent %d lines again when a member came back", parts, lost, resent)
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

package claims

import (
	"container/heap"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// The simulation drives several Cores through one schedule drawn from a
// seed: a server that relays lines in one total order (one server) or only
// per sender in order (a linked network), publishes, handlers that take
// time and sometimes fail, poison events, crashes, restarts, pauses longer
// than a lease, disconnects (a member misses lines and resets), and
// duplicated lines. Invariants are checked after every step; at the end
// the faults stop and every event must come out completed.

var (
	simSeed  = flag.Uint64("seed", 0, "run only this simulation seed")
	simRuns  = flag.Int("schedules", 10000, "simulation schedules to run")
	simTrace = flag.Bool("trace", false, "print the schedule of a -seed run")
)

const (
	simLease   = 3 * time.Second
	simBeat    = time.Second
	simFaults  = 20 * time.Second // faults and publishes happen before this
	simQuiesce = 50 * time.Second // then everything must settle before this
)

type lineKind uint8

const (
	lEvent lineKind = iota
	lClaim
	lAck
	lNack
	lDead
	lBeat
	lQuit
)

type simLine struct {
	kind  lineKind
	from  int // member index, -1 for the publisher
	who   Claimant
	item  Item
	key   string
	lease time.Duration
}

type simMember struct {
	idx       int
	id        string
	inc       uint64
	core      *Core
	up        bool // process exists (not crashed)
	paused    bool
	joinedAt  time.Time
	lastBeat  time.Time // last beat sent
	running   map[envelope.ID]uint64
	completed map[envelope.ID]Claimant // what this core accepted, to check it never changes
	doneEpoch map[envelope.ID]uint64
	outcome   map[envelope.ID]Outcome
	// view of the others: last beat received, incarnation, quit seen
	beats    []time.Time
	incs     []uint64
	quit     []bool
	seen     map[envelope.ID]bool // events delivered to this incarnation
	resetAt  time.Time            // last crash or disconnect
	backlog  []simLine            // lines held while paused
	discoTil time.Time            // disconnected until
	// claims delivered to this incarnation: the highest per event, and
	// when each of its own came back
	topClaim map[envelope.ID]*claim
	ownSeen  map[ownKey]time.Time
}

type ownKey struct {
	id    envelope.ID
	epoch uint64
}

type simItem struct {
	at   time.Time
	seq  uint64
	what func()
}

type simQueue []simItem

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
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
	dupP    float64
	poison  map[envelope.ID]bool
	flakyP  float64
	events  []envelope.ID
	ledger  map[envelope.ID]*ledgerEntry
	stale   int // ledger writes refused
	lastDel map[[2]int]time.Time
	trace   []string
	failed  bool
	settled bool // every member is up and has nothing pending
}

func (s *sim) logf(format string, args ...any) {
	if len(s.trace) < 4000 {
		s.trace = append(s.trace, fmt.Sprintf("%8.3fs ", s.now.Sub(simEpoch).Seconds())+fmt.Sprintf(format, args...))
	}
}

func (s *sim) fatalf(format string, args ...any) {
	if s.failed {
		return
	}
	s.failed = true
	s.t.Errorf("seed %d: %s\n  replay: go test ./claims -run TestSimulation -seed=%d -trace -v", s.seed, fmt.Sprintf(format, args...), s.seed)
	if *simTrace || *simSeed != 0 {
		s.t.Log("schedule:\n" + strings.Join(s.trace, "\n"))
	}
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (s *sim) at(t time.Time, f func()) {
	s.seq++
	heap.Push(&s.q, simItem{at: t, seq: s.seq, what: f})
}

func (s *sim) after(d time.Duration, f func()) { s.at(s.now.Add(d), f) }

func newSim(t *testing.T, seed uint64) *sim {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &sim{t: t, seed: seed, rng: rng, now: simEpoch, poison: map[envelope.ID]bool{},
		ledger: map[envelope.ID]*ledgerEntry{}, lastDel: map[[2]int]time.Time{}}
	s.linked = rng.IntN(2) == 0
	if rng.IntN(3) == 0 {
		s.dupP = 0.05
	}
	s.flakyP = []float64{0, 0.05, 0.2}[rng.IntN(3)]
	n := 2 + rng.IntN(3)
	for i := range n {
		m := &simMember{idx: i, id: fmt.Sprintf("svc/w%d", i)}
		m.beats, m.incs, m.quit = make([]time.Time, n), make([]uint64, n), make([]bool, n)
		s.ms = append(s.ms, m)
	}
	return s
}

func (s *sim) start(m *simMember) {
	m.inc++
	m.up, m.paused = true, false
	m.core = New(Config{Self: Claimant{m.id, m.inc}, Lease: simLease, Settle: 20 * time.Millisecond,
		ClaimTimeout: 1500 * time.Millisecond, Skew: 200 * time.Millisecond, Retain: time.Hour})
	m.joinedAt = s.now
	m.running = map[envelope.ID]uint64{}
	m.completed = map[envelope.ID]Claimant{}
	m.doneEpoch = map[envelope.ID]uint64{}
	m.outcome = map[envelope.ID]Outcome{}
	m.seen = map[envelope.ID]bool{}
	m.topClaim = map[envelope.ID]*claim{}
	m.ownSeen = map[ownKey]time.Time{}
	m.resetAt = s.now
	m.backlog = nil
	for j := range m.beats {
		m.beats[j], m.incs[j], m.quit[j] = time.Time{}, 0, false
	}
	s.logf("w%d starts (incarnation %d)", m.idx, m.inc)
	s.beat(m)
	s.after(1200*time.Millisecond, func() {
		if m.up && m.inc == m.core.cfg.Self.Incarnation {
			s.apply(m, m.core.SetReady(true, s.now))
		}
	})
}

// beat sends a heartbeat and renews the member's session.
func (s *sim) beat(m *simMember) {
	if !m.up || m.paused || s.now.Before(m.discoTil) {
		return
	}
	m.lastBeat = s.now
	s.send(m.idx, simLine{kind: lBeat, from: m.idx, who: Claimant{m.id, m.inc}})
	s.apply(m, m.core.Session(s.now.Add(2*simBeat-250*time.Millisecond), s.now))
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

// send relays a line from member from (-1: the publisher) to every member.
func (s *sim) send(from int, l simLine) {
	for _, m := range s.ms {
		d := time.Duration(s.rng.IntN(5)) * time.Millisecond
		if s.linked {
			d = time.Duration(s.rng.IntN(60)) * time.Millisecond
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
		m := m
		s.at(t, func() { s.deliver(m, l) })
		if s.dupP > 0 && s.rng.Float64() < s.dupP && l.kind != lQuit {
			s.at(t, func() { s.deliver(m, l) })
		}
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
	c := m.core
	switch l.kind {
	case lEvent:
		m.seen[l.item.Event] = true
		s.apply(m, c.Event(l.item.Event, l.key, s.now))
	case lClaim:
		cl := &claim{who: l.who, epoch: l.item.Epoch, weight: Weight(l.item.Event, l.who.ID)}
		if top := m.topClaim[l.item.Event]; top == nil || top.less(cl) {
			m.topClaim[l.item.Event] = cl
		}
		if l.who.ID == m.id && l.who.Incarnation == m.inc {
			if _, ok := m.ownSeen[ownKey{l.item.Event, l.item.Epoch}]; !ok {
				m.ownSeen[ownKey{l.item.Event, l.item.Epoch}] = s.now
			}
		}
		s.apply(m, c.Claim(l.who, l.item, l.lease, s.now))
	case lAck:
		s.apply(m, c.Ack(l.who, l.item, s.now))
		s.checkOne(m, l.item.Event)
	case lNack:
		s.apply(m, c.Nack(l.who, l.item, l.lease, "failed", s.now))
	case lDead:
		s.apply(m, c.Dead(l.who, l.item, s.now))
		s.checkOne(m, l.item.Event)
	case lBeat:
		if l.from != m.idx && l.who.Incarnation >= m.incs[l.from] {
			m.beats[l.from], m.incs[l.from], m.quit[l.from] = s.now, l.who.Incarnation, false
		}
		s.members(m)
	case lQuit:
		if l.from != m.idx {
			m.quit[l.from] = true
			s.members(m)
		}
	}
}

// members feeds m's core its view of the group.
func (s *sim) members(m *simMember) {
	var ms []Member
	for j, o := range s.ms {
		if j == m.idx {
			ms = append(ms, Member{Claimant{m.id, m.inc}, heartbeat.Alive})
			continue
		}
		if m.incs[j] == 0 {
			continue
		}
		st := heartbeat.Alive
		switch age := s.now.Sub(m.beats[j]); {
		case m.quit[j] || age >= 3*simBeat:
			st = heartbeat.Dead
		case age >= 2*simBeat:
			st = heartbeat.Suspect
		}
		ms = append(ms, Member{Claimant{o.id, m.incs[j]}, st})
	}
	s.apply(m, m.core.Members(ms, s.now))
}

// apply carries out a core's actions and checks the invariants.
func (s *sim) apply(m *simMember, acts []Action) {
	acts = append([]Action(nil), acts...)
	who := Claimant{m.id, m.inc}
	for _, a := range acts {
		s.logf("w%d %s %s e%d a%d %s", m.idx, a.Kind, a.Event.Short(), a.Epoch, a.Attempt, a.Reason)
		switch a.Kind {
		case SendClaim:
			s.send(m.idx, simLine{kind: lClaim, from: m.idx, who: who, item: Item{Event: a.Event, Epoch: a.Epoch, Attempt: a.Attempt}, lease: a.Lease})
		case SendAck:
			if !s.now.Before(m.lastBeat.Add(2*simBeat - 250*time.Millisecond)) {
				s.fatalf("w%d acks %s@%d with its session expired: others may have taken over", m.idx, a.Event.Short(), a.Epoch)
			}
			s.send(m.idx, simLine{kind: lAck, from: m.idx, who: who, item: Item{Event: a.Event, Epoch: a.Epoch}})
		case SendNack:
			s.send(m.idx, simLine{kind: lNack, from: m.idx, who: who, item: Item{Event: a.Event, Epoch: a.Epoch}, lease: a.Lease})
		case SendDead:
			if !s.poison[a.Event] && int(a.Attempt) < m.core.cfg.MaxAttempts {
				s.fatalf("w%d dead-letters %s after %d attempts", m.idx, a.Event.Short(), a.Attempt)
			}
			s.send(m.idx, simLine{kind: lDead, from: m.idx, who: who, item: Item{Event: a.Event, Epoch: a.Epoch}})
		case Start:
			if o := m.outcome[a.Event]; o != Pending {
				s.fatalf("w%d starts %s, which it saw %s", m.idx, a.Event.Short(), o)
			}
			seen, ok := m.ownSeen[ownKey{a.Event, a.Epoch}]
			top := m.topClaim[a.Event]
			switch {
			case !ok:
				s.fatalf("w%d starts %s@%d before its claim came back", m.idx, a.Event.Short(), a.Epoch)
			case s.now.Sub(seen) < m.core.cfg.Settle:
				s.fatalf("w%d starts %s@%d %s after its claim came back, before settling", m.idx, a.Event.Short(), a.Epoch, s.now.Sub(seen))
			case top.who != who || top.epoch != a.Epoch:
				s.fatalf("w%d starts %s@%d though %v@%d claimed higher", m.idx, a.Event.Short(), a.Epoch, top.who, top.epoch)
			case !s.now.Before(m.lastBeat.Add(2*simBeat - 250*time.Millisecond)):
				s.fatalf("w%d starts %s@%d with its session expired", m.idx, a.Event.Short(), a.Epoch)
			}
			if _, dup := m.running[a.Event]; dup {
				s.fatalf("w%d starts %s twice", m.idx, a.Event.Short())
			}
			m.running[a.Event] = a.Epoch
			s.handle(m, a)
		case Cancel:
			delete(m.running, a.Event)
		}
	}
	for _, a := range acts {
		s.checkOne(m, a.Event)
	}
	s.schedTick(m)
}

// handle runs a handler: it takes a while, writes to the ledger (fenced by
// the token) and reports.
func (s *sim) handle(m *simMember, a Action) {
	d := time.Duration(1+s.rng.IntN(200)) * time.Millisecond
	if s.rng.IntN(20) == 0 {
		d = simLease + time.Duration(s.rng.IntN(3000))*time.Millisecond // longer than a lease: renewed
	}
	inc := m.inc
	var fail error
	if s.poison[a.Event] || s.rng.Float64() < s.flakyP {
		fail = errors.New("handler failed")
	}
	var finish func()
	finish = func() {
		if !m.up || m.inc != inc {
			return
		}
		if m.paused {
			s.after(100*time.Millisecond, finish) // frozen: finishes after it resumes
			return
		}
		if fail == nil {
			s.write(a.Event, a.Token)
		}
		delete(m.running, a.Event)
		s.apply(m, m.core.Done(a.Event, a.Epoch, fail, 300*time.Millisecond, s.now))
	}
	s.after(d, finish)
}

// write is the side effect: a store that keeps the highest fencing token
// per event and refuses lower ones.
func (s *sim) write(id envelope.ID, token uint64) {
	l := s.ledger[id]
	if l == nil {
		l = &ledgerEntry{}
		s.ledger[id] = l
	}
	if token < l.token {
		s.stale++
		return
	}
	l.token = token
	l.applies++
}

func (s *sim) checkOne(m *simMember, id envelope.ID) {
	{
		o, by, ep, ok := m.core.Status(id)
		if !ok || o == Pending {
			if prev := m.outcome[id]; prev != Pending && ok {
				s.fatalf("w%d: %s went back from %s to pending", m.idx, id.Short(), prev)
			}
			return
		}
		if prev := m.outcome[id]; prev != Pending && (prev != o || m.completed[id] != by || m.doneEpoch[id] != ep) {
			s.fatalf("w%d: %s completed twice: %s by %v@%d, then %s by %v@%d", m.idx, id.Short(), prev, m.completed[id], m.doneEpoch[id], o, by, ep)
		}
		m.outcome[id], m.completed[id], m.doneEpoch[id] = o, by, ep
		if _, run := m.running[id]; run {
			s.fatalf("w%d: %s completed while its handler runs uncancelled", m.idx, id.Short())
		}
	}
}

func (s *sim) schedTick(m *simMember) {
	next := m.core.Next()
	if next.IsZero() {
		return
	}
	if next.Before(s.now) {
		next = s.now
	}
	core := m.core
	s.at(next, func() {
		if m.up && !m.paused && m.core == core && !s.now.Before(core.Next()) {
			s.apply(m, core.Tick(s.now))
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
	s.send(-1, simLine{kind: lEvent, from: -1, item: Item{Event: id}, key: key})
}

// fault injects one failure into a random member.
func (s *sim) fault() {
	m := s.ms[s.rng.IntN(len(s.ms))]
	if !m.up || m.paused || s.now.Before(m.discoTil) {
		return
	}
	switch s.rng.IntN(4) {
	case 0: // SIGKILL, restart later
		s.logf("w%d crashes", m.idx)
		m.up = false
		m.running = nil
		s.send(m.idx, simLine{kind: lQuit, from: m.idx})
		s.after(time.Duration(500+s.rng.IntN(4000))*time.Millisecond, func() { s.start(m); s.beatLoop(m, m.inc) })
	case 1, 2: // SIGSTOP past a lease, SIGCONT
		d := time.Duration(500+s.rng.IntN(2*int(simLease/time.Millisecond))) * time.Millisecond
		s.logf("w%d pauses for %s", m.idx, d)
		m.paused = true
		s.after(d, func() {
			if !m.up || !m.paused {
				return
			}
			m.paused = false
			s.logf("w%d resumes", m.idx)
			s.apply(m, m.core.Tick(s.now)) // its clock jumped: fence first
			backlog := m.backlog
			m.backlog = nil
			for _, l := range backlog {
				s.deliver(m, l)
			}
			s.beat(m)
		})
	case 3: // the connection drops: lines are missed, the server QUITs it
		d := time.Duration(200+s.rng.IntN(3000)) * time.Millisecond
		s.logf("w%d disconnected for %s", m.idx, d)
		m.discoTil = s.now.Add(d)
		m.resetAt = s.now
		clear(m.seen)
		clear(m.topClaim)
		s.apply(m, m.core.Reset(s.now))
		m.running = map[envelope.ID]uint64{}
		s.send(m.idx, simLine{kind: lQuit, from: m.idx})
		s.at(m.discoTil, func() { s.beat(m) })
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
	for range s.rng.IntN(5) {
		s.at(simEpoch.Add(time.Duration(s.rng.Int64N(int64(simFaults)))), s.fault)
	}
	// Refresh every member's view of the others twice a second.
	var views func()
	views = func() {
		settled := s.now.After(simEpoch.Add(simFaults + 5*time.Second))
		for _, m := range s.ms {
			if m.up && !m.paused && !s.now.Before(m.discoTil) {
				s.members(m)
				settled = settled && m.core.Stats().Pending == 0
			} else {
				settled = false
			}
		}
		if settled {
			s.settled = true // nothing left to do: end early
			return
		}
		if s.now.Before(simEpoch.Add(simQuiesce)) {
			s.after(500*time.Millisecond, views)
		}
	}
	s.after(500*time.Millisecond, views)
	end := simEpoch.Add(simQuiesce)
	steps := 0
	for s.q.Len() > 0 && !s.failed && !s.settled {
		if steps++; steps > 500_000 {
			s.fatalf("no progress: %d steps by %s", steps, s.now.Sub(simEpoch))
			break
		}
		it := heap.Pop(&s.q).(simItem)
		if it.at.After(end) {
			break
		}
		s.now = it.at
		it.what()
	}
	s.final()
}

// final: with the faults over, every event some member saw and kept must be
// completed at every member, and applied once unless dead-lettered.
func (s *sim) final() {
	if s.failed {
		return
	}
	var acked []envelope.ID
	for _, id := range s.events {
		required := false
		for _, m := range s.ms {
			if m.up && m.seen[id] {
				required = true
			}
		}
		var outcome Outcome
		var by Claimant
		var ep uint64
		for _, m := range s.ms {
			o, b, e, ok := m.core.Status(id)
			if !ok || !m.up {
				continue
			}
			if o == Pending {
				if m.seen[id] {
					s.fatalf("%s still pending at w%d at the end", id.Short(), m.idx)
				}
				continue
			}
			if outcome != Pending && !s.linked && (o != outcome || b != by || e != ep) {
				s.fatalf("%s: members disagree on one server: %s by %v@%d vs %s by %v@%d", id.Short(), outcome, by, ep, o, b, e)
			}
			outcome, by, ep = o, b, e
		}
		if required && outcome == Pending {
			s.fatalf("%s lost: seen by a live member, never completed", id.Short())
		}
		switch {
		case outcome == DeadLettered && !s.poison[id]:
			// Allowed only after MaxAttempts real failures: flaky
			// handlers and takeovers. The SendDead check enforces it.
		case outcome == Acked:
			acked = append(acked, id)
		}
		if s.poison[id] && outcome == Acked {
			s.fatalf("poison event %s acked", id.Short())
		}
	}
	for _, id := range acked {
		if s.ledger[id] == nil {
			s.fatalf("%s acked but never applied", id.Short())
		}
	}
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
	if testing.Short() {
		runs = 1000
	}
	// Seeds run in parallel shards; each schedule is independent.
	var mu sync.Mutex
	var events, applies, stale, redone int
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
	t.Logf("%d schedules, %d events: %d ledger writes, %d refused as stale, %d events applied again after a takeover", runs, events, applies, stale, redone)
}

package heartbeat

// A deterministic simulation of a namespace: instances beat, pause, crash,
// restart, reconnect and change nicks; several observers, each with its own
// View, are fed their own delivery schedule; invariants are checked after
// every step. Time is simulated; one seed replays one run exactly.
//
// The network model. Beats to each observer are delayed (0..0.4 of the
// sender's interval) and, during fault phases, lost, duplicated and held
// back (reordered past later beats). Presence lines (QUIT, NICK) come from
// the server in order with the sender's own messages, as IRC delivers them
// on one connection: a QUIT reaches an observer after every earlier beat of
// that connection, and a client that takes a freed nick is heard only after
// the line that freed it. An observer can be cut off for a while (Suspend,
// then Resume); what was sent to it meanwhile is lost, QUITs included.
// A netsplit (sim_split_test.go) cuts the network in two sides for a
// while: each observer gets the split QUIT of every connection of the
// other side, nothing of that side meanwhile, and at the netjoin its JOIN
// before its next beats.
//
// Each seed runs rounds of a fault phase followed by a quiet phase of at
// least DeadAfter+1 intervals, then a final phase in which every instance
// quits and is forgotten.
//
// Checked after every step, against what was delivered to that observer:
//
//   - (a) safety: Suspected exactly SuspectAfter of the member's intervals
//     after its freshest delivered beat (or the observer's Resume), never
//     earlier; Left by the clock likewise at DeadAfter; nothing judged while
//     suspended.
//   - (b) convergence: after each quiet phase every observer's Members are
//     the running instances, alive, with their incarnations and nicks; the
//     view agrees with its own events; its nick index is consistent.
//   - (c) a QUIT delivered to an observer that knows the member by that
//     connection and nick leaves it dead at once; a QUIT kills no member
//     the observer last heard on another live connection. A split QUIT
//     makes it unreachable likewise; a JOIN at the netjoin brings back
//     only a member lost in a split or to silence, never one that left.
//     Unreachable members are never judged by silence, and are dead
//     exactly SplitTimeout after their split QUIT unless they come back.
//   - (d) a fresh beat leaves one member with that incarnation, alive; a
//     stale one (older incarnation or seq, duplicate) changes nothing.
//   - Events: each kind only from its input (joined/restarted/recovered
//     from a beat, suspected from a tick, left from a tick or a quit), in
//     a legal transition, sorted; Next() exact (a tick 1ns before it does
//     nothing, a tick at it does something); the dead are forgotten after
//     Forget, and at the end every view is empty.
//
// Replay a failing seed with: go test ./heartbeat -run 'TestSim$' -seed=N -v

import (
	"cmp"
	"container/heap"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	flagSeed  = flag.Int64("seed", 0, "TestSim: replay this one seed and print its whole log")
	flagSeeds = flag.Int("sim.seeds", 0, "TestSim: how many seeds to run (0: 500; 200 under -race, 100 with -short)")
	flagFirst = flag.Int64("sim.first", 1, "TestSim: the first seed")
)

func TestSim(t *testing.T) {
	if *flagSeed != 0 {
		s := newSim(*flagSeed, true)
		err := s.run()
		t.Logf("seed %d, %d steps\n%s", *flagSeed, s.steps, s.logText(nil))
		if err != nil {
			t.Fatalf("seed %d: %v", *flagSeed, err)
		}
		return
	}
	n := *flagSeeds
	if n == 0 {
		// The simulation is one goroutine: the race detector only slows
		// it down (6x), so a -race run does fewer seeds.
		switch {
		case testing.Short():
			n = 100
		case raceEnabled():
			n = 200
		default:
			n = 500
		}
	}
	steps := 0
	for seed := *flagFirst; seed < *flagFirst+int64(n); seed++ {
		s := newSim(seed, false)
		if err := s.run(); err != nil {
			r := newSim(seed, true) // the same run again, logged
			r.run()
			t.Fatalf("seed %d: %v\n%s\nreplay: go test ./heartbeat -run 'TestSim$' -seed=%d -v", seed, err, r.logText(err), seed)
		}
		steps += s.steps
	}
	t.Logf("%d seeds, %d steps", n, steps)
}

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

// simError is a violated invariant: which observer and member, and what.
type simError struct {
	at  time.Time
	o   int
	k   key
	msg string
}

func (e *simError) Error() string {
	return fmt.Sprintf("%s o%d %s/%s: %s", simT(e.at), e.o, e.k.service, e.k.instance, e.msg)
}

func simT(t time.Time) string { return fmt.Sprintf("%8.3fs", t.Sub(t0).Seconds()) }

type simInst struct {
	k    key
	inc  uint64
	proc *simProc
}

// simProc is one incarnation of an instance: a process.
type simProc struct {
	inst        *simInst
	inc, seq    uint64
	iv          time.Duration
	alive       bool
	conn        *simConn // nil while disconnected
	pausedUntil time.Time
}

// simConn is one connection of a process to the server, under one nick at
// a time.
type simConn struct {
	id     int
	p      *simProc
	nick   string
	quitAt time.Time // the server's QUIT; zero while connected
	side   int       // its side of a netsplit
	// Per observer: nothing of this connection arrives before fence (the
	// presence line it must follow); last is its latest delivery so far.
	fence, last []time.Time
}

type dKind uint8

const (
	dBeat dKind = iota
	dGone
	dRename
	dSuspend
	dResume
	dCheck  // convergence (b)
	dFinal  // everyone gone and forgotten
	dSplit  // the server's split QUIT (sim_split_test.go)
	dRejoin // the JOIN of the netjoin's burst
)

// delivery is one input to one observer (o < 0: a check of all of them).
type delivery struct {
	at       time.Duration // since t0
	n        int32
	o        int8
	kind     dKind
	c        *simConn
	inc, seq uint64 // the beat's (its connection says the rest)
	iv       time.Duration
	nick     string  // the sender (beat, gone) or the old nick (rename)
	more     *dExtra // gone, rename, check, split
	lost     bool    // dropped by a netsplit: the observer never gets it
}

type dExtra struct {
	to  string // the new nick (rename)
	why string // the QUIT reason
	// near and far name the split's servers (dSplit).
	near, far string
	// truth (dCheck): the running instances then.
	truth map[key]simTruth
}

func (d *delivery) beat() Beat {
	k := d.c.p.inst.k
	return Beat{Service: k.service, Instance: k.instance, Incarnation: d.inc, Seq: d.seq, IntervalMillis: uint32(d.iv / ms)}
}

type simTruth struct {
	inc  uint64
	nick string
}

type simObs struct {
	i         int
	v         *View
	down      bool // cut off: deliveries are lost
	downUntil time.Time
	suspended bool
	resumedAt time.Time
	side      int // its side of a netsplit
	known     int // members the event model knows
	// notBefore is a lower bound of ob.v.Next(): the last Next(), lowered
	// by every input to the earliest deadline an input can set.
	notBefore time.Time
	m         map[key]*obsMember
}

// obsMember is what an observer should know of a member: from its events
// (the state a user of the view sees) and from its delivered schedule.
type obsMember struct {
	known bool
	state State
	inc   uint64
	since time.Time
	// The freshest beat delivered, by (incarnation, seq): when, its
	// interval, its connection, and the nick the member has had since.
	freshInc, freshSeq uint64
	freshAt            time.Time
	freshIv            time.Duration
	lastConn           *simConn
	nick               string
	renameMissed       bool      // lastConn changed nick while the observer was cut off
	departed           bool      // it left by the server's word (QUIT, not a split)
	rejoinedAt         time.Time // brought back by a netjoin's JOIN: a fresh interval
}

type worldEv struct {
	t time.Time
	n int
	f func()
}

type worldQ []worldEv

func (q worldQ) Len() int { return len(q) }
func (q worldQ) Less(i, j int) bool {
	if !q[i].t.Equal(q[j].t) {
		return q[i].t.Before(q[j].t)
	}
	return q[i].n < q[j].n
}
func (q worldQ) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *worldQ) Push(x any)   { *q = append(*q, x.(worldEv)) }
func (q *worldQ) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type simLine struct {
	t    time.Time
	o    int // -1: the world
	k    key
	text string
}

type sim struct {
	seed    int64
	rng     *rand.Rand
	logging bool
	lines   []simLine
	cfg     Config
	// Faults, as probabilities per beat and observer.
	jitter, loss, dup, reorder float64
	obs                        []*simObs
	insts                      []*simInst
	conns                      int
	nicks                      map[string]*simConn // the server's: lower-case nick → holder
	freed                      []string            // nicks free for reuse
	freedAt                    map[string][]time.Time
	fresh                      int // for new nicks
	faults                     [][2]time.Time
	q                          worldQ
	n                          int
	now, end                   time.Time
	dl                         []delivery // in the order made; run sorts them by time
	steps                      int
	soonest                    time.Duration // the earliest deadline an input sets, from its time
	split                      *simSplit     // the netsplit in progress, or nil
}

var simIntervals = []time.Duration{300 * ms, 500 * ms, time.Second, 1500 * ms}

const simMaxIv = 1500 * ms

// simBuf is the previous run's delivery slice, reused: most of a run's
// allocation.
var simBuf []delivery

func newSim(seed int64, logging bool) *sim {
	s := &sim{
		dl:      simBuf[:0],
		seed:    seed,
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x6865617274)),
		logging: logging,
		nicks:   map[string]*simConn{},
		freedAt: map[string][]time.Time{},
	}
	r := s.rng
	sa := []float64{2, 2.5, 3}[r.IntN(3)]
	s.cfg = Config{
		SuspectAfter: sa,
		DeadAfter:    sa + []float64{1, 1.5, 2}[r.IntN(3)],
		Forget:       time.Duration(1+r.IntN(5)) * time.Second,
		SplitTimeout: time.Duration(1+r.IntN(5)) * time.Second,
	}.withDefaults()
	s.soonest = min(time.Duration(s.cfg.SuspectAfter*float64(simIntervals[0])), s.cfg.Forget, s.cfg.SplitTimeout)
	s.jitter, s.loss, s.dup, s.reorder = s.u(0, 0.25), s.u(0, 0.06), s.u(0, 0.05), s.u(0, 0.1)
	// Mostly small namespaces, sometimes up to 30 instances.
	nInst := 3 + r.IntN(1+r.IntN(28))
	nObs := 2 + r.IntN(3)
	for i := range nObs {
		s.obs = append(s.obs, &simObs{i: i, v: New(s.cfg), m: map[key]*obsMember{}})
	}
	s.logf(t0, -1, key{}, "seed %d: %d instances, %d observers, SuspectAfter %g, DeadAfter %g, Forget %v, jitter %.2f, loss %.3f, dup %.3f, reorder %.3f",
		seed, nInst, nObs, s.cfg.SuspectAfter, s.cfg.DeadAfter, s.cfg.Forget, s.jitter, s.loss, s.dup, s.reorder)

	// Rounds of faults then quiet; then everyone quits.
	quiet := time.Duration((s.cfg.DeadAfter+1)*float64(simMaxIv)) + 2*simMaxIv
	t := t0.Add(time.Second)
	rounds := 1 + r.IntN(3)
	var checks []time.Time
	for range rounds {
		fe := t.Add(time.Duration(4+r.IntN(7)) * time.Second)
		s.faults = append(s.faults, [2]time.Time{t, fe})
		t = fe.Add(quiet)
		checks = append(checks, t)
	}
	final := t
	s.end = final.Add(simMaxIv/2 + quiet + s.cfg.Forget + s.cfg.SplitTimeout + time.Second)

	for range nInst {
		s.at(t0.Add(s.dur(time.Second, 0, 1)), func() { s.start(s.newInst()) })
	}
	for _, f := range s.faults {
		for range 2 + r.IntN(4+nInst/3) {
			s.at(f[0].Add(s.dur(f[1].Sub(f[0]), 0, 1)), func() { s.fault(f[1]) })
		}
	}
	for _, c := range checks {
		s.at(c, func() {
			truth := map[key]simTruth{}
			for _, p := range s.alive() {
				truth[p.inst.k] = simTruth{p.inc, p.conn.nick}
			}
			s.deliver(c, delivery{o: -1, kind: dCheck, more: &dExtra{truth: truth}})
		})
	}
	s.at(final.Add(time.Millisecond), func() {
		s.logf(s.now, -1, key{}, "final: every instance quits")
		for _, in := range s.insts {
			if p := in.proc; p != nil && p.alive {
				s.crash(p, "Quit: shutdown")
			}
		}
	})
	s.deliver(s.end, delivery{o: -1, kind: dFinal})
	for s.q.Len() > 0 {
		ev := heap.Pop(&s.q).(worldEv)
		s.now = ev.t
		ev.f()
	}
	return s
}

func (s *sim) u(a, b float64) float64 { return a + (b-a)*s.rng.Float64() }

func (s *sim) dur(d time.Duration, a, b float64) time.Duration {
	return time.Duration(s.u(a, b) * float64(d))
}

func (s *sim) at(t time.Time, f func()) {
	if t.After(s.end) {
		return
	}
	heap.Push(&s.q, worldEv{t, s.n, f})
	s.n++
}

func (s *sim) deliver(t time.Time, d delivery) {
	d.at, d.n = t.Sub(t0), int32(s.n)
	s.n++
	s.dl = append(s.dl, d)
}

func (s *sim) logf(t time.Time, o int, k key, format string, args ...any) {
	if s.logging {
		s.lines = append(s.lines, simLine{t, o, k, fmt.Sprintf(format, args...)})
	}
}

func (s *sim) inFault(t time.Time) bool {
	for _, f := range s.faults {
		if !t.Before(f[0]) && t.Before(f[1]) {
			return true
		}
	}
	return false
}

func (s *sim) newInst() *simInst {
	i := len(s.insts)
	in := &simInst{k: key{fmt.Sprint("svc", i%4), fmt.Sprint("i", i)}}
	s.insts = append(s.insts, in)
	return in
}

func (s *sim) alive() []*simProc {
	var ps []*simProc
	for _, in := range s.insts {
		if in.proc != nil && in.proc.alive {
			ps = append(ps, in.proc)
		}
	}
	return ps
}

// pickNick takes a free nick: often one freed earlier (maybe another
// instance's, maybe in another case), else a new one.
func (s *sim) pickNick() string {
	if len(s.freed) > 0 && s.rng.IntN(2) == 0 {
		i := s.rng.IntN(len(s.freed))
		n := s.freed[i]
		s.freed = slices.Delete(s.freed, i, i+1)
		if s.rng.IntN(4) == 0 {
			n = strings.ToUpper(n)
		}
		return n
	}
	s.fresh++
	return fmt.Sprint("n", s.fresh)
}

// takeNick gives c nick: the server's table, and the fences that make c's
// later lines follow the line that freed the nick, at every observer.
func (s *sim) takeNick(c *simConn, nick string) {
	if h := s.nicks[strings.ToLower(nick)]; h != nil {
		panic(fmt.Sprintf("sim: %s is conn %d's", nick, h.id)) // a bug of the model's
	}
	c.nick = nick
	s.nicks[strings.ToLower(nick)] = c
	if fa := s.freedAt[strings.ToLower(nick)]; fa != nil {
		for o := range s.obs {
			if c.fence[o].Before(fa[o]) {
				c.fence[o] = fa[o].Add(1)
			}
		}
	}
}

func (s *sim) freeNick(nick string, at []time.Time) {
	delete(s.nicks, strings.ToLower(nick))
	s.freedAt[strings.ToLower(nick)] = at
	s.freed = append(s.freed, strings.ToLower(nick))
}

func (s *sim) start(in *simInst) {
	in.inc++
	p := &simProc{inst: in, inc: in.inc, iv: simIntervals[s.rng.IntN(len(simIntervals))], alive: true}
	in.proc = p
	s.connect(p)
	s.logf(s.now, -1, in.k, "start %s/%s#%d interval %v as %s", in.k.service, in.k.instance, p.inc, p.iv, p.conn.nick)
	var loop func()
	loop = func() {
		if !p.alive {
			return
		}
		if s.now.Before(p.pausedUntil) {
			s.at(p.pausedUntil, loop)
			return
		}
		if p.conn != nil {
			p.seq++
			s.sendBeat(p)
		}
		s.at(s.now.Add(s.dur(p.iv, 1-s.jitter, 1+s.jitter)), loop)
	}
	s.at(s.now.Add(s.dur(p.iv, 0, 1)), loop)
}

func (s *sim) connect(p *simProc) {
	s.conns++
	c := &simConn{id: s.conns, p: p, fence: make([]time.Time, len(s.obs)), last: make([]time.Time, len(s.obs))}
	if s.split != nil {
		c.side = s.rng.IntN(2) // a process that reconnects lands on either side
	}
	s.takeNick(c, s.pickNick())
	p.conn = c
}

func (s *sim) sendBeat(p *simProc) {
	c := p.conn
	faulty := s.inFault(s.now)
	for o := range s.obs {
		if s.apart(c, o) {
			continue // a netsplit: nothing of the other side arrives
		}
		copies := 1
		if faulty && s.rng.Float64() < s.dup {
			copies = 2
		}
		for i := range copies {
			if faulty && s.rng.Float64() < s.loss {
				if s.logging {
					s.logf(s.now, o, p.inst.k, "beat %s seq %d lost", c.nick, p.seq)
				}
				continue
			}
			t := s.now.Add(s.dur(p.iv, 0, 0.4))
			if faulty && (i > 0 || s.rng.Float64() < s.reorder) {
				t = t.Add(s.dur(p.iv, 0.5, 1.5)) // held back, or a late duplicate
			}
			if t.Before(c.fence[o]) {
				t = c.fence[o]
			}
			if t.After(c.last[o]) {
				c.last[o] = t
			}
			s.deliver(t, delivery{o: int8(o), kind: dBeat, c: c, inc: p.inc, seq: p.seq, iv: p.iv, nick: c.nick})
		}
	}
}

// presence schedules a line of the server's about c to every observer, in
// order after everything c sent before it; it returns the delivery times.
func (s *sim) presence(c *simConn, d delivery) []time.Time {
	ts := make([]time.Time, len(s.obs))
	for o := range s.obs {
		t := s.now.Add(s.dur(c.p.iv, 0, 0.4))
		if !t.After(c.last[o]) {
			t = c.last[o].Add(1)
		}
		if t.Before(c.fence[o]) {
			t = c.fence[o]
		}
		c.last[o], c.fence[o], ts[o] = t, t.Add(1), t
		d.o = int8(o)
		d.lost = s.apart(c, o)
		s.deliver(t, d)
	}
	return ts
}

// quit: the server's QUIT for c, lag after now.
func (s *sim) quit(c *simConn, lag time.Duration, why string) {
	s.at(s.now.Add(lag), func() {
		c.quitAt = s.now
		s.logf(s.now, -1, c.p.inst.k, "server: %s quits (conn %d of %s/%s#%d): %s", c.nick, c.id, c.p.inst.k.service, c.p.inst.k.instance, c.p.inc, why)
		s.freeNick(c.nick, s.presence(c, delivery{kind: dGone, c: c, nick: c.nick, more: &dExtra{why: why}}))
	})
}

func (s *sim) crash(p *simProc, why string) {
	p.alive = false
	s.logf(s.now, -1, p.inst.k, "crash %s/%s#%d", p.inst.k.service, p.inst.k.instance, p.inc)
	if c := p.conn; c != nil {
		p.conn = nil
		s.quit(c, s.dur(p.iv, 0, 0.5), why)
	}
}

// fault injects one fault now; whatever it starts is over by end.
func (s *sim) fault(end time.Time) {
	ps := s.alive()
	clamp := func(t time.Time) time.Time {
		if t.After(end) {
			return end
		}
		return t
	}
	r := s.rng.IntN(100)
	if len(ps) == 0 || r >= 95 {
		s.start(s.newInst())
		return
	}
	p := ps[s.rng.IntN(len(ps))]
	k := p.inst.k
	switch {
	case r < 25: // crash, restart as the same instance
		s.crash(p, "Quit: Ping timeout: 120 seconds")
		s.at(clamp(s.now.Add(s.dur(time.Second, 0, 3))), func() { s.start(p.inst) })
	case r < 35: // crash, maybe replaced by a new instance id
		s.crash(p, "Quit: killed")
		if s.rng.IntN(2) == 0 {
			s.at(clamp(s.now.Add(s.dur(time.Second, 0, 3))), func() { s.start(s.newInst()) })
		}
	case r < 45: // fast restart: the new process beats before the old one's QUIT
		s.crash(p, "Quit: Connection reset by peer")
		s.start(p.inst)
	case r < 55: // the connection drops, the process reconnects
		if c := p.conn; c != nil {
			s.logf(s.now, -1, k, "disconnect %s/%s#%d (%s)", k.service, k.instance, p.inc, c.nick)
			p.conn = nil
			s.quit(c, s.dur(p.iv, 0, 0.5), "Quit: Connection reset")
			s.at(clamp(s.now.Add(s.dur(time.Second, 0.1, 2))), func() {
				if p.alive && p.conn == nil {
					s.connect(p)
					s.logf(s.now, -1, k, "reconnect %s/%s#%d as %s", k.service, k.instance, p.inc, p.conn.nick)
				}
			})
		}
	case r < 75: // pause
		p.pausedUntil = clamp(s.now.Add(s.dur(p.iv, 0.5, 6)))
		s.logf(s.now, -1, k, "pause %s/%s#%d until %s", k.service, k.instance, p.inc, simT(p.pausedUntil))
	case r < 85: // nick change
		if c := p.conn; c != nil {
			old, nick := c.nick, s.pickNick()
			s.takeNick(c, nick)
			s.logf(s.now, -1, k, "server: %s is now %s (%s/%s#%d)", old, nick, k.service, k.instance, p.inc)
			s.freeNick(old, s.presence(c, delivery{kind: dRename, c: c, nick: old, more: &dExtra{to: nick}}))
		}
	case r < 90: // a netsplit
		s.netsplit(end)
	default: // an observer is cut off for a while
		ob := s.obs[s.rng.IntN(len(s.obs))]
		if ob.downUntil.After(s.now) {
			return
		}
		ob.downUntil = clamp(s.now.Add(s.dur(time.Second, 0.3, 6)))
		s.deliver(s.now, delivery{o: int8(ob.i), kind: dSuspend})
		s.deliver(ob.downUntil, delivery{o: int8(ob.i), kind: dResume})
	}
}

// run feeds every observer its schedule and checks the invariants.
func (s *sim) run() error {
	defer func() { simBuf = s.dl }()
	slices.SortFunc(s.dl, func(a, b delivery) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return int(a.n - b.n)
	})
	for i := range s.dl {
		d := &s.dl[i]
		t := t0.Add(d.at)
		if d.o < 0 {
			for _, ob := range s.obs {
				if err := s.catchUp(ob, t); err != nil {
					return err
				}
			}
			var err error
			if d.kind == dCheck {
				err = s.checkConverged(t, d.more.truth)
			} else {
				err = s.checkEmpty(t)
			}
			if err != nil {
				return err
			}
			continue
		}
		ob := s.obs[d.o]
		if err := s.catchUp(ob, t); err != nil {
			return err
		}
		if err := s.step(ob, t, d); err != nil {
			return err
		}
	}
	return nil
}

// catchUp ticks ob at every Next() up to t, as the runtime's timer would.
func (s *sim) catchUp(ob *simObs, t time.Time) error {
	if t.Before(ob.notBefore) {
		return nil // nothing can be due yet: spare a Next()
	}
	defer func() { ob.notBefore = ob.v.Next() }()
	for n := ob.v.Next(); !n.IsZero() && !n.After(t); n = ob.v.Next() {
		if r := s.rng.IntN(8); r < 2 {
			early := n.Add(-1) // a tick with nothing due
			if r == 1 {
				early = n.Add(-s.dur(time.Second, 0, 1))
			}
			if evs := ob.v.Tick(early); len(evs) > 0 {
				return &simError{early, ob.i, evKey(evs[0]), "Tick before Next() gave " + fmtEvents(evs)}
			}
		}
		s.steps++
		before := len(ob.v.members)
		evs := ob.v.Tick(n)
		if s.logging {
			for _, e := range evs {
				s.logf(n, ob.i, evKey(e), "tick → %s", fmtEvents([]Event{e}))
			}
			if len(evs) == 0 {
				s.logf(n, ob.i, key{}, "tick: forgets the long dead")
			}
		}
		if err := s.checkEvents(ob, n, nil, evs); err != nil {
			return err
		}
		for k, om := range ob.m {
			if om.known && om.state == Dead && !n.Before(om.since.Add(s.cfg.Forget)) {
				om.known = false
				ob.known--
				if ob.v.members[k] != nil {
					return &simError{n, ob.i, k, "dead since " + simT(om.since) + " and not forgotten"}
				}
			}
		}
		if len(evs) == 0 && len(ob.v.members) == before {
			return &simError{n, ob.i, key{}, "Tick at Next() did nothing"}
		}
		if m := ob.v.Next(); !m.IsZero() && !m.After(n) {
			return &simError{n, ob.i, key{}, "after Tick(now), Next() is " + simT(m)}
		}
		if len(ob.v.members) != ob.known {
			return &simError{n, ob.i, key{}, fmt.Sprintf("view holds %d members, its events say %d", len(ob.v.members), ob.known)}
		}
	}
	return nil
}

func evKey(e Event) key { return key{e.Member.Service, e.Member.Instance} }

func (ob *simObs) member(k key) *obsMember {
	om := ob.m[k]
	if om == nil {
		om = &obsMember{}
		ob.m[k] = om
	}
	return om
}

// step applies one delivery to one observer and checks what it did.
func (s *sim) step(ob *simObs, now time.Time, d *delivery) error {
	fail := func(k key, format string, args ...any) error {
		return &simError{now, ob.i, k, fmt.Sprintf(format, args...)}
	}
	if (ob.down || d.lost) && d.kind != dResume {
		if d.kind == dGone || d.kind == dRename {
			s.logf(now, ob.i, d.c.p.inst.k, "cut off: missed %s's presence line", d.nick)
		}
		if om := ob.m[d.c.p.inst.k]; d.kind == dRename && om != nil && om.lastConn == d.c {
			om.renameMissed = true
		}
		return nil
	}
	s.steps++
	if soon := now.Add(s.soonest); ob.notBefore.IsZero() || soon.Before(ob.notBefore) {
		ob.notBefore = soon
	}
	switch d.kind {
	case dSplit, dRejoin:
		return s.stepSplit(ob, now, d)
	case dSuspend:
		ob.down, ob.suspended = true, true
		ob.v.Suspend()
		s.logf(now, ob.i, key{}, "cut off: suspend")
		return nil
	case dResume:
		ob.down, ob.suspended, ob.resumedAt = false, false, now
		ob.v.Resume(now)
		s.logf(now, ob.i, key{}, "back: resume")
		return nil
	case dRename:
		k := d.c.p.inst.k
		to := d.more.to
		ob.v.Renamed(d.nick, to)
		s.logf(now, ob.i, k, "rename %s → %s", d.nick, to)
		om := ob.member(k)
		if om.lastConn == d.c && strings.EqualFold(om.nick, d.nick) {
			om.nick = to
			if m := ob.v.members[k]; m != nil && !strings.EqualFold(m.Nick, to) {
				return fail(k, "renamed %s → %s, but the view calls it %s", d.nick, to, m.Nick)
			}
		}
		return nil
	case dGone:
		k := d.c.p.inst.k
		evs := ob.v.Gone(d.nick, d.more.why, now)
		if s.logging {
			s.logf(now, ob.i, k, "gone %s (conn %d of %s/%s#%d) → %s", d.nick, d.c.id, k.service, k.instance, d.c.p.inc, fmtEvents(evs))
		}
		if err := s.checkEvents(ob, now, d, evs); err != nil {
			return err
		}
		// (c) The server's word kills the member at once, if this observer
		// knows it by this connection and nick.
		om := ob.member(k)
		if om.lastConn == d.c && strings.EqualFold(om.nick, d.nick) {
			if m := ob.v.members[k]; m != nil && m.State != Dead {
				return fail(k, "%s quit but the member is %s (nick %s)", d.nick, m.State, m.Nick)
			}
		}
		return nil
	}

	// A beat.
	bv := d.beat()
	b := &bv
	k := key{b.Service, b.Instance}
	om := ob.member(k)
	fresh := b.Incarnation > om.freshInc || b.Incarnation == om.freshInc && b.Seq > om.freshSeq
	var before Member
	if m := ob.v.members[k]; m != nil {
		before = *m
	}
	evs := ob.v.Heartbeat(d.nick, b, now)
	if s.logging {
		s.logf(now, ob.i, k, "beat %s %s/%s#%d seq %d (conn %d, %v)%s → %s", d.nick, k.service, k.instance, b.Incarnation, b.Seq, d.c.id, b.Interval(),
			map[bool]string{true: "", false: " stale"}[fresh], fmtEvents(evs))
	}
	want := ""
	switch {
	case !om.known:
		want = "joined"
	case !fresh:
	case b.Incarnation > om.inc:
		want = "restarted"
	case om.state != Alive:
		want = "recovered"
	}
	if got := kinds(evs); got != want {
		return fail(k, "beat gave %q, want %q", got, want)
	}
	if err := s.checkEvents(ob, now, d, evs); err != nil {
		return err
	}
	m := ob.v.members[k]
	if fresh || want == "joined" {
		// (d) One member, the beat's incarnation, alive now.
		if m == nil || m.Incarnation != b.Incarnation || m.Beat.Seq != b.Seq || m.State != Alive || !m.LastBeat.Equal(now) || m.Nick != d.nick {
			return fail(k, "after a fresh beat the view holds %+v", m)
		}
	} else if m == nil || m.Incarnation != before.Incarnation || m.Beat.Seq != before.Beat.Seq || !m.LastBeat.Equal(before.LastBeat) || m.Nick != before.Nick {
		return fail(k, "a stale beat changed the member: %+v", m)
	}
	if fresh {
		om.freshInc, om.freshSeq, om.freshAt, om.freshIv = b.Incarnation, b.Seq, now, b.Interval()
		om.lastConn, om.nick, om.renameMissed = d.c, d.nick, false
	}
	if len(ob.v.members) != ob.known {
		return fail(k, "view holds %d members, its events say %d", len(ob.v.members), ob.known)
	}
	return nil
}

func kinds(evs []Event) string {
	var ks []string
	for _, e := range evs {
		ks = append(ks, e.Kind.String())
	}
	return strings.Join(ks, ",")
}

// checkEvents checks the events of one step (in == nil: a Tick) against
// the observer's model, and applies them to it.
func (s *sim) checkEvents(ob *simObs, now time.Time, in *delivery, evs []Event) error {
	for i := 1; i < len(evs); i++ {
		a, b := evKey(evs[i-1]), evKey(evs[i])
		if a.service > b.service || a.service == b.service && a.instance >= b.instance {
			return &simError{now, ob.i, b, "events not sorted: " + fmtEvents(evs)}
		}
	}
	for _, e := range evs {
		k := evKey(e)
		om := ob.member(k)
		fail := func(format string, args ...any) error {
			return &simError{now, ob.i, k, fmt.Sprintf("%s: ", fmtEvents([]Event{e})) + fmt.Sprintf(format, args...)}
		}
		wantState := map[EventKind]State{Joined: Alive, Restarted: Alive, Recovered: Alive, Suspected: Suspect, Left: Dead, SplitAway: Unreachable}[e.Kind]
		if e.Member.State != wantState || !e.Member.Since.Equal(now) {
			return fail("member %s since %s", e.Member.State, simT(e.Member.Since))
		}
		fromBeat := in != nil && in.kind == dBeat && k == in.c.p.inst.k
		// The freshest delivered evidence of life: a beat, or a Resume.
		last := om.freshAt
		if ob.resumedAt.After(last) && om.state != Unreachable {
			last = ob.resumedAt
		}
		if om.rejoinedAt.After(last) {
			last = om.rejoinedAt
		}
		switch e.Kind {
		case Joined:
			if !fromBeat || om.known {
				return fail("not from a beat of an unknown member")
			}
		case Restarted:
			if !fromBeat || !om.known || e.Member.Incarnation <= om.inc {
				return fail("not from a beat of a newer incarnation (had #%d)", om.inc)
			}
		case Recovered:
			if in != nil && in.kind == dRejoin {
				if err := s.checkRejoined(ob, now, in, e, om); err != nil {
					return fail("%v", err)
				}
				break
			}
			if !fromBeat || !om.known || om.state == Alive || e.Member.Incarnation != om.inc {
				return fail("not from a beat of a %s member", om.state)
			}
		case Suspected:
			if in != nil || !om.known || om.state != Alive || ob.suspended {
				return fail("not from a tick of an alive member (suspended %v)", ob.suspended)
			}
			// (a) Safety: suspected only after SuspectAfter intervals of
			// silence in the delivered schedule; and, as ticks come at
			// Next(), exactly then.
			if lim := time.Duration(s.cfg.SuspectAfter * float64(om.freshIv)); now.Sub(last) != lim {
				return fail("the last fresh beat arrived at %s, interval %v: silent %v, want %v", simT(last), om.freshIv, now.Sub(last), lim)
			}
		case Left:
			if !om.known || om.state == Dead {
				return fail("already %s", om.state)
			}
			if in == nil && om.state == Unreachable {
				// Unreachable for SplitTimeout: dead, exactly then.
				if !strings.HasPrefix(e.Reason, "unreachable for ") || now.Sub(om.since) != s.cfg.SplitTimeout {
					return fail("unreachable since %s, dead at %s (split timeout %v)", simT(om.since), simT(now), s.cfg.SplitTimeout)
				}
				break
			}
			if in == nil {
				if e.Reason != "heartbeats stopped" || ob.suspended {
					return fail("by a tick (suspended %v)", ob.suspended)
				}
				// (a) Safety: dead by the clock only after DeadAfter (and
				// exactly then).
				if lim := time.Duration(s.cfg.DeadAfter * float64(om.freshIv)); now.Sub(last) != lim {
					return fail("the last fresh beat arrived at %s, interval %v: silent %v, want %v", simT(last), om.freshIv, now.Sub(last), lim)
				}
				break
			}
			if in.kind != dGone || e.Reason != in.more.why || !strings.EqualFold(e.Member.Nick, in.nick) {
				return fail("not from the quit of its nick")
			}
			// The server killed the member by its nick: the connection the
			// observer last heard it on is this one, or has quit by now,
			// or renamed without the observer hearing of it.
			if lc := om.lastConn; lc != nil && lc != in.c && (lc.quitAt.IsZero() || lc.quitAt.After(now)) && !om.renameMissed {
				return fail("killed by the quit of conn %d, but the observer last heard it on conn %d, still connected", in.c.id, lc.id)
			}
			om.departed = true
		case SplitAway:
			if in == nil || in.kind != dSplit || !strings.EqualFold(e.Member.Nick, in.nick) || om.departed || om.state == Unreachable {
				return fail("not from the split QUIT of its nick (was %s, departed %v)", om.state, om.departed)
			}
			if e.Split.Near != in.more.near || e.Split.Far != in.more.far || e.Split.Since.After(now) {
				return fail("split %+v, the QUIT named %s %s", e.Split, in.more.near, in.more.far)
			}
			if want := last.Add(time.Duration(s.cfg.SuspectAfter * float64(om.freshIv))); !e.Member.Fence.Equal(want) {
				return fail("fence %s, want %s (its last evidence %s plus %g intervals)", simT(e.Member.Fence), simT(want), simT(last), s.cfg.SuspectAfter)
			}
		}
		if !om.known {
			ob.known++
		}
		if e.Kind == Joined || e.Kind == Restarted || e.Kind == Recovered && fromBeat {
			om.departed = false
		}
		om.known, om.state, om.inc, om.since = true, e.Member.State, e.Member.Incarnation, now
	}
	return nil
}

// checkConverged is (b): after a quiet phase every observer holds exactly
// the running instances, alive, with their incarnations and nicks, and its
// events describe its view.
func (s *sim) checkConverged(now time.Time, truth map[key]simTruth) error {
	for _, ob := range s.obs {
		fail := func(k key, format string, args ...any) error {
			return &simError{now, ob.i, k, "not converged: " + fmt.Sprintf(format, args...)}
		}
		ms := ob.v.Members("")
		for _, m := range ms {
			k := key{m.Service, m.Instance}
			p, ok := truth[k]
			if !ok {
				return fail(k, "%s#%d is %s but is not running", m.Instance, m.Incarnation, m.State)
			}
			if m.State != Alive || m.Incarnation != p.inc || m.Nick != p.nick {
				return fail(k, "%s#%d %s as %s, want #%d alive as %s", m.Instance, m.Incarnation, m.State, m.Nick, p.inc, p.nick)
			}
		}
		if len(ms) != len(truth) {
			for k, p := range truth {
				if m := ob.v.members[k]; m == nil || m.State == Dead {
					return fail(k, "running #%d as %s, not a member", p.inc, p.nick)
				}
			}
		}
		for k, m := range ob.v.members {
			om := ob.m[k]
			if om == nil || !om.known || om.state != m.State || om.inc != m.Incarnation {
				return fail(k, "the view has %s#%d, its events say %+v", m.State, m.Incarnation, om)
			}
		}
		if k, err := nickTableErr(ob.v); err != nil {
			return fail(k, "%v", err)
		}
	}
	s.logf(now, -1, key{}, "converged: %d members", len(truth))
	return nil
}

// checkEmpty: after everyone quit, every observer forgets everything.
func (s *sim) checkEmpty(now time.Time) error {
	for _, ob := range s.obs {
		if all := ob.v.All(); len(all) > 0 || len(ob.v.byNick) > 0 {
			return &simError{now, ob.i, key{}, fmt.Sprintf("everyone quit long ago, the view still holds %s; nicks %v", fmtMembers(all), ob.v.byNick)}
		}
	}
	return nil
}

// logText renders the log: all of it (err == nil), or what concerns the
// failing observer and member plus the observer's last lines.
func (s *sim) logText(err error) string {
	var se *simError
	if e, ok := err.(*simError); ok {
		se = e
	}
	slices.SortStableFunc(s.lines, func(a, b simLine) int { return a.t.Compare(b.t) })
	var b strings.Builder
	var tail []string
	for _, l := range s.lines {
		who := "world"
		if l.o >= 0 {
			who = fmt.Sprint("o", l.o)
		}
		line := fmt.Sprintf("%s %-5s %s\n", simT(l.t), who, l.text)
		if se == nil {
			b.WriteString(line)
			continue
		}
		if l.t.After(se.at) {
			break
		}
		if l.k == se.k && (l.o < 0 || l.o == se.o) || l.k == (key{}) && l.o < 0 {
			b.WriteString(line)
		}
		if l.o == se.o {
			tail = append(tail, line)
		}
	}
	if se != nil {
		b.WriteString(fmt.Sprintf("--- the last lines of o%d:\n", se.o))
		b.WriteString(strings.Join(tail[max(0, len(tail)-40):], ""))
	}
	return b.String()
}

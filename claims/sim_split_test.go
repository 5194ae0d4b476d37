package claims

import (
	"time"

	"github.com/meshbot/meshbot/heartbeat"
)

// Partitions in the simulation (sim_test.go): for a while the network is
// cut in two sides. Membership does not change while it is (members pause
// and fail handlers, but do not crash, restart or reconnect), and a split
// does not start while a member is down or has just come back: the rule
// of §6.14 holds for splits of a group whose members both sides know. Each member is on one side (it stays there if it
// restarts meanwhile), and so is the publisher (a member of the namespace
// too, outside the group: its split QUIT tells the group of a split even
// when no member of the group is on its side). Nothing sent on one side
// reaches the other: events, claims, acks, beats, QUITs. Two kinds:
//
//   - a cut link (or a killed middle server): every member gets the split
//     QUIT of each member of the other side at once, and its JOIN when the
//     network joins again;
//   - a frozen middle server: the other side just goes silent; when the
//     server is restarted the split QUITs come, and the JOINs a moment
//     later.
//
// With refill, every member replays the record once the network is whole
// again (the union of both sides' recorders, as they are once each filled
// its hole from the other), as a member with history does (§6.14). The
// views keep what heartbeat.View keeps: unreachable members (with their
// fence) until the split timeout, dead-by-silence ones until they are
// forgotten; members that left for certain are out of the majority at
// once. The partitions end before the faults do, so that everything must
// settle at the end.
//
// A frozen server is a split nobody notices until its links time out:
// until then the side with the majority may commit past events published
// on the other side, which are completed once the network joins
// (docs/PROTOCOL.md §6.14 says so), and either side may run an event of
// the other before the silence is noticed, at the same epoch too, and
// complete it otherwise. Events published during a freeze are left out
// of the committed-offset check, of the check that a member never changes
// its mind about a completion, and of the one-start-per-epoch check;
// every other check holds.

const (
	simSplitTimeout = 6 * time.Second // heartbeat.Config.SplitTimeout
	simForget       = 8 * time.Second // heartbeat.Config.Forget
)

type partKind uint8

const (
	partCut partKind = iota + 1
	partFreeze
)

// simPart is a partition in progress.
type simPart struct {
	kind    partKind
	pubSide int       // the publisher's side
	quits   bool      // the split QUITs were sent (a cut: at once)
	quitAt  time.Time // when
}

// apart reports whether lines from member from (-1: the publisher) do not
// reach member to.
func (s *sim) apart(from, to int) bool {
	if s.part == nil {
		return false
	}
	side := s.part.pubSide
	if from >= 0 {
		side = s.ms[from].side
	}
	return side != s.ms[to].side
}

// connected reports whether a member's process runs and holds a connection.
func (s *sim) connected(m *simMember) bool { return m.up && !s.now.Before(m.discoTil) }

// partition cuts the network in two for a while.
func (s *sim) partition() {
	if s.part != nil {
		return
	}
	for _, m := range s.ms {
		knowsAll := true
		for _, o := range s.ms {
			knowsAll = knowsAll && (o == m || m.incs[o.idx] == o.inc)
		}
		if !m.up || !knowsAll || s.now.Sub(m.startedAt) < 3*simBeat || s.now.Before(m.discoTil.Add(3*simBeat)) {
			// A member that is down, reconnecting or whose view is still
			// forming would come back during the split knowing only its
			// side, or be known to have left by one side only: each side
			// may then take itself for the majority (docs/PROTOCOL.md
			// §6.14, limits). Later.
			s.after(time.Second, s.partition)
			return
		}
	}
	kind := partCut
	if s.rng.IntN(3) == 0 {
		kind = partFreeze
	}
	for _, m := range s.ms {
		m.side = s.rng.IntN(2)
	}
	s.part = &simPart{kind: kind, pubSide: s.rng.IntN(2)}
	s.parted = true
	s.parts++
	d := time.Duration(500+s.rng.IntN(5500)) * time.Millisecond
	if end := simEpoch.Add(simFaults); s.now.Add(d).After(end) {
		d = max(end.Sub(s.now), 100*time.Millisecond)
	}
	s.logf("partition (%s) for %s: sides %v, the publisher's %d", map[partKind]string{partCut: "cut", partFreeze: "frozen"}[kind], d, s.sides(), s.part.pubSide)
	if kind == partCut {
		s.splitQuits()
	}
	s.after(d, s.heal)
}

func (s *sim) sides() []int {
	out := make([]int, len(s.ms))
	for i, m := range s.ms {
		out[i] = m.side
	}
	return out
}

// splitQuits sends every member the split QUIT of each connected member
// (and of the publisher) of the other side.
func (s *sim) splitQuits() {
	s.part.quits, s.part.quitAt = true, s.now
	for _, m := range s.ms {
		if m.side != s.part.pubSide {
			s.sendTo(-1, m, simLine{kind: lSplit, from: -1})
		}
		for _, o := range s.ms {
			if o != m && o.side != m.side && s.connected(o) {
				s.sendTo(o.idx, m, simLine{kind: lSplit, from: o.idx})
			}
		}
	}
}

// heal ends the partition: the split QUITs first for a frozen server, then
// (a moment later) the JOINs of every connected member at the members of
// the other side, then the replays.
func (s *sim) heal() {
	p := s.part
	if p == nil {
		return
	}
	join := func() {
		for _, m := range s.ms {
			if m.side != p.pubSide {
				s.sendTo(-1, m, simLine{kind: lJoin, from: -1})
			}
			for _, o := range s.ms {
				if o != m && o.side != m.side && s.connected(o) {
					s.sendTo(o.idx, m, simLine{kind: lJoin, from: o.idx})
				}
			}
		}
		s.part = nil
		s.logf("the network joins again")
		if s.refill {
			s.after(200*time.Millisecond, func() {
				for _, m := range s.ms {
					if s.connected(m) && !m.paused {
						s.replayRecord(m, false)
					}
				}
			})
		}
	}
	if p.kind == partFreeze {
		s.logf("the frozen server restarts: its links time out")
		s.splitQuits()
		s.after(time.Duration(500+s.rng.IntN(2000))*time.Millisecond, join)
		return
	}
	join()
}

// deliverSplit takes a split QUIT or a JOIN into a member's view.
func (s *sim) deliverSplit(m *simMember, l simLine) {
	j := l.from
	if j < 0 {
		m.pubSplit = l.kind == lSplit
		s.members(m)
		return
	}
	if j == m.idx || m.quit[j] {
		return // a member that left for certain comes back only with a beat
	}
	if l.kind == lSplit {
		if m.splitAt[j].IsZero() {
			m.splitAt[j] = s.now
		}
	} else if mem, known := s.viewOf(m, j, m.incs[j]); known && (mem.State == heartbeat.Unreachable || mem.State == heartbeat.Dead) {
		m.splitAt[j], m.joinedAt[j] = time.Time{}, s.now // back, with a fresh interval
	}
	s.members(m)
}

// viewOf is what member m's heartbeat view says of member j (incarnation
// inc), and false once it has forgotten it.
func (s *sim) viewOf(m *simMember, j int, inc uint64) (Member, bool) {
	mem := Member{Claimant: Claimant{Incarnation: inc}, State: heartbeat.Alive}
	if j == m.idx {
		return mem, true
	}
	last := m.beats[j]
	if m.joinedAt[j].After(last) {
		last = m.joinedAt[j]
	}
	age := s.now.Sub(last)
	switch {
	case m.quit[j]:
		mem.State, mem.Departed = heartbeat.Dead, true
	case !m.splitAt[j].IsZero():
		if over := s.now.Sub(m.splitAt[j]) - simSplitTimeout; over >= 0 {
			mem.State = heartbeat.Dead
			if over >= simForget {
				return Member{}, false
			}
			break
		}
		mem.State, mem.Fence = heartbeat.Unreachable, last.Add(2*simBeat)
	case age >= 3*simBeat:
		mem.State = heartbeat.Dead
		if age >= 3*simBeat+simForget {
			return Member{}, false
		}
	case age >= 2*simBeat:
		mem.State = heartbeat.Suspect
	}
	return mem, true
}

// pubMember is the publisher as member m's heartbeat view holds it: alive,
// or unreachable after its split QUIT.
func (s *sim) pubMember(m *simMember) heartbeat.Member {
	pm := heartbeat.Member{Service: "pub", Instance: "1", Incarnation: 1, State: heartbeat.Alive}
	if m.pubSplit {
		pm.State = heartbeat.Unreachable
	}
	return pm
}

// silentEvent reports whether an event is published during a frozen
// server's partition before its split QUITs: the committed-offset check
// leaves it out (see above).
func (s *sim) silentEvent() bool { return s.part != nil && !s.part.quits }

// checkSides: once every member has had the split's QUITs (a link's delay
// after they were sent) and its view settled, at most one side holds the
// group's majority: only it claims (§6.14).
func (s *sim) checkSides() {
	p := s.part
	if p == nil || !p.quits || s.now.Sub(p.quitAt) < 2*simBeat {
		return
	}
	var with [2]int
	for _, m := range s.ms {
		if s.connected(m) && !m.paused && m.g.Quorum() {
			with[m.side]++
		}
	}
	if with[0] > 0 && with[1] > 0 {
		s.fatalf("both sides of a split hold the majority: sides %v, %d and %d members", s.sides(), with[0], with[1])
	}
}

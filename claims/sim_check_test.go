package claims

import (
	"errors"
	"strconv"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// What the simulated members do with their Groups' outputs — send, start
// handlers, write to the ledger — and the invariants (sim_test.go runs the
// schedules): checked at every start, every completion and every change of
// a committed offset, and at the end.

// start1 checks and runs one handler start.
func (s *sim) start1(m *simMember, st StartHandler) {
	id, who := st.Event.Envelope.ID, m.g.self
	s.logf("w%d start %s e%d a%d", m.idx, id.Short(), st.Epoch, st.Attempt)
	if o := m.outcome[id]; o != Pending {
		s.fatalf("w%d starts %s, which it saw %s", m.idx, id.Short(), o)
	}
	seen, ok := m.ownSeen[ownKey{id, st.Epoch}]
	top := m.topClaim[id]
	switch {
	case !ok:
		s.fatalf("w%d starts %s@%d before its claim came back", m.idx, id.Short(), st.Epoch)
	case s.now.Sub(seen) < m.g.cfg.Settle:
		s.fatalf("w%d starts %s@%d %s after its claim came back, before settling", m.idx, id.Short(), st.Epoch, s.now.Sub(seen))
	case top.who != who || top.epoch != st.Epoch:
		s.fatalf("w%d starts %s@%d though %v@%d claimed higher", m.idx, id.Short(), st.Epoch, top.who, top.epoch)
	case !s.now.Before(m.lastBeat.Add(2*simBeat - 250*time.Millisecond)):
		s.fatalf("w%d starts %s@%d with its session expired", m.idx, id.Short(), st.Epoch)
	}
	if !m.g.Quorum() {
		s.fatalf("w%d starts %s@%d without the group's majority", m.idx, id.Short(), st.Epoch)
	}
	if st.Token != Token(st.Epoch, Weight(id, who.ID)) {
		s.fatalf("w%d starts %s@%d with token %#x", m.idx, id.Short(), st.Epoch, st.Token)
	}
	if _, dup := m.running[id]; dup {
		s.fatalf("w%d starts %s twice", m.idx, id.Short())
	}
	// Two handlers of one event at one epoch, anywhere: what a split must
	// never cause (§6.14).
	k := ownKey{id, st.Epoch}
	if other, ok := s.startedBy[k]; ok && other != who && (!s.linked || s.delay < m.g.cfg.Settle) && !s.silent[id] {
		s.fatalf("w%d starts %s@%d, which %v started at that epoch too", m.idx, id.Short(), st.Epoch, other)
	}
	s.startedBy[k] = who
	m.running[id] = st.Epoch
	s.handle(m, st)
}

func (s *sim) checkOne(m *simMember, id envelope.ID) {
	o, by, ep, ok := m.g.Status(id)
	if !ok || o == Pending {
		if e := m.g.core.events[id]; ok && e != nil && !e.hasEvent {
			// Forgotten behind the committed offset, then a late claim
			// (a replay, the other side of a split) brought it back,
			// pending without the event: harmless, gone after Retain.
			return
		}
		if prev := m.outcome[id]; prev != Pending && ok {
			s.fatalf("w%d: %s went back from %s to pending", m.idx, id.Short(), prev)
		}
		return
	}
	if prev := m.outcome[id]; prev != Pending && (prev != o || m.completed[id] != by || m.doneEpoch[id] != ep) && !s.silent[id] {
		s.fatalf("w%d: %s completed twice: %s by %v@%d, then %s by %v@%d", m.idx, id.Short(), prev, m.completed[id], m.doneEpoch[id], o, by, ep)
	}
	m.outcome[id], m.completed[id], m.doneEpoch[id] = o, by, ep
	s.done[id] = true
	if _, run := m.running[id]; run {
		s.fatalf("w%d: %s completed while its handler runs uncancelled", m.idx, id.Short())
	}
}

// checkCommitted holds a member's committed offset to the consensus
// invariants (§6.13): it only grows, and it never passes an event some
// member received that no member completed. An event is passed when its
// line comes before the committed one in the server's order (one server)
// or was relayed more than the network's delay before it (linked servers:
// members see lines of different senders in different orders only that
// close together). Every event counts: members resume from the record.
func (s *sim) checkCommitted(m *simMember) {
	c := m.g.Committed()
	if c == m.committed {
		return
	}
	if !offsetBefore(m.committed, c) {
		s.fatalf("w%d: the committed offset went from %s back to %s", m.idx, s.offName(m.committed), s.offName(c))
		return
	}
	s.logf("w%d committed %s", m.idx, s.offName(c))
	m.committed = c
	s.commits++
	for _, id := range s.events {
		off, ok := s.eventOff[id]
		if !ok || s.done[id] || !s.passes(c, off) || s.silent[id] {
			continue
		}
		s.fatalf("w%d: the committed offset %s passes %s (%s), which no member completed", m.idx, s.offName(c), id.Short(), s.offName(off))
		return
	}
}

// offsetBefore orders the simulation's offsets exactly: by the server's
// relay order (msgids are its sequence numbers).
func offsetBefore(a, b envelope.Offset) bool {
	if a.IsZero() {
		return !b.IsZero()
	}
	x, _ := strconv.ParseUint(a.MsgID, 10, 64)
	y, _ := strconv.ParseUint(b.MsgID, 10, 64)
	return x < y
}

// passes reports whether committed offset c covers the event line at off.
func (s *sim) passes(c, off envelope.Offset) bool {
	if !s.linked {
		return !offsetBefore(c, off)
	}
	return off.Time+int64(s.delay) < c.Time
}

// final: with the faults over, every event some member saw and kept must be
// completed at every member, and applied once unless dead-lettered; every
// live member counts the same committed offset.
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
		tombed := false // completed, forgotten, its id kept (tombs.go)
		for _, m := range s.ms {
			if !m.up {
				continue
			}
			o, b, e, ok := m.g.Status(id)
			if (!ok || o == Pending) && m.outcome[id] != Pending {
				// Forgotten once the committed offset passed it (a late
				// claim may have brought it back, pending without the
				// event).
				o, b, e, ok = m.outcome[id], m.completed[id], m.doneEpoch[id], true
			}
			if !ok {
				tombed = tombed || m.g.core.tombs.has(id)
				continue
			}
			if o == Pending {
				// (A late claim can make a forgotten event pending again
				// without the event: harmless, and gone after Retain.)
				if e := m.g.core.events[id]; e != nil && e.hasEvent {
					s.fatalf("%s still pending at w%d at the end", id.Short(), m.idx)
				}
				continue
			}
			if outcome != Pending && !s.linked && !s.parted && (o != outcome || b != by || e != ep) {
				s.fatalf("%s: members disagree on one server: %s by %v@%d vs %s by %v@%d", id.Short(), outcome, by, ep, o, b, e)
			}
			outcome, by, ep = o, b, e
		}
		if required && outcome == Pending && !tombed {
			s.fatalf("%s lost: seen by a live member, never completed", id.Short())
		}
		switch {
		case outcome == DeadLettered && !s.poison[id]:
			// Allowed only after MaxAttempts real failures: flaky
			// handlers and takeovers. The dead-letter check enforces it.
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
	if s.settled.IsZero() {
		return // it did not settle: the pending check above said why
	}
	var ref *simMember
	for _, m := range s.ms {
		if !m.up {
			continue
		}
		if ref != nil && m.g.Committed() != ref.g.Committed() {
			s.fatalf("at quiescence w%d counts the committed offset %s, w%d %s", ref.idx, s.offName(ref.g.Committed()), m.idx, s.offName(m.g.Committed()))
		}
		ref = m
	}
}

// apply carries out what a member's Group asks for and checks the
// invariants.
func (s *sim) apply(m *simMember) {
	rd := m.g.Ready()
	for _, bad := range rd.Malformed {
		s.fatalf("w%d: a %s from %s did not decode: %v", m.idx, bad.Kind, bad.From, bad.Err)
	}
	var touched []envelope.ID
	for _, c := range rd.Cancel {
		s.logf("w%d cancel %s e%d %s", m.idx, c.Event.Short(), c.Epoch, c.Reason)
		if m.running[c.Event] == c.Epoch {
			delete(m.running, c.Event)
		}
		touched = append(touched, c.Event)
	}
	for _, st := range rd.Start {
		s.start1(m, st)
		touched = append(touched, st.Event.Envelope.ID)
	}
	for _, env := range rd.Send {
		if s.tracing {
			s.logf("w%d %s %s", m.idx, env.Kind, s.describe(env))
		}
		if env.Kind == envelope.KindAck && !s.now.Before(m.lastBeat.Add(2*simBeat-250*time.Millisecond)) && !s.resent(m, env) {
			s.fatalf("w%d acks %s with its session expired: others may have taken over", m.idx, s.describe(env))
		}
		s.send(m.idx, simLine{kind: lEnv, from: m.idx, env: env})
	}
	for _, d := range rd.DeadLetters {
		id := d.Letter.Event.ID
		s.logf("w%d dead-letters %s after %d attempts", m.idx, id.Short(), d.Letter.Attempts)
		if !s.poison[id] && int(d.Letter.Attempts) < m.g.cfg.MaxAttempts {
			s.fatalf("w%d dead-letters %s after %d attempts", m.idx, id.Short(), d.Letter.Attempts)
		}
		if s.partOnly && s.failures[id] == 0 {
			// Partitions alone count no attempt: only a handler's failure.
			s.fatalf("w%d dead-letters %s, whose handler never failed (attempts %d: %q)", m.idx, id.Short(), d.Letter.Attempts, d.Letter.Reasons)
		}
		if d.Letter.Topic != simTopic || d.Letter.Group != simGroup || d.Marker.Correlation != id {
			s.fatalf("w%d: dead letter %+v with marker %+v", m.idx, d.Letter, d.Marker)
		}
		s.send(m.idx, simLine{kind: lEnv, from: m.idx, env: d.Marker})
		touched = append(touched, id)
	}
	for _, id := range touched {
		s.checkOne(m, id)
	}
	s.checkCommitted(m)
	s.schedTick(m)
}

// handle runs a handler: it takes a while, writes to the ledger (fenced by
// the token) and reports.
func (s *sim) handle(m *simMember, st StartHandler) {
	id := st.Event.Envelope.ID
	d := time.Duration(1+s.rng.IntN(200)) * time.Millisecond
	if s.rng.IntN(20) == 0 {
		d = simLease + time.Duration(s.rng.IntN(3000))*time.Millisecond // longer than a lease: renewed
	}
	g := m.g
	var fail error
	if s.poison[id] || s.rng.Float64() < s.flakyP {
		fail = errors.New("handler failed")
	}
	var finish func()
	finish = func() {
		if !m.up || m.g != g {
			return
		}
		if m.paused {
			s.after(100*time.Millisecond, finish) // frozen: finishes after it resumes
			return
		}
		if m.running[id] != st.Epoch {
			return // cancelled: its result is not reported
		}
		if fail == nil {
			s.write(id, st.Token)
		} else {
			s.failures[id]++
		}
		delete(m.running, id)
		g.Done(id, st.Epoch, fail, 300*time.Millisecond, s.now)
		s.apply(m)
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

// resent reports whether every item of an ack is one the member completed
// already, at that epoch: acks sent again for a member back from a split
// (§6.14), which complete only what it did complete.
func (s *sim) resent(m *simMember, env *envelope.Envelope) bool {
	items, err := DecodeItems(env.Payload)
	if err != nil {
		return false
	}
	for _, it := range items {
		if o, by, ep, ok := m.g.Status(it.Event); !ok || o != Acked || by != m.g.self || ep != it.Epoch {
			return false
		}
	}
	return true
}

package claims

import (
	"cmp"
	"slices"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
)

// Splits (docs/PROTOCOL.md §6.14). A linked network can split in two; each
// side then sees the other's members leave (unreachable) or fall silent,
// and both would take over each other's claims with their own owners: two
// handlers at one epoch. The rule:
//
//   - The group is every member not known to be gone: alive, suspect,
//     unreachable, or dead by silence, and for AbsentFor (2 min) a member
//     the heartbeat view forgot after it went away that way (a frozen
//     server's link may take that long to time out). A member claims
//     — first claims and takeovers alike — only while it sees more than
//     half of it present, alive or suspect (exactly half: the half
//     holding the lowest id): a suspect may only be late, and a busy
//     moment must not take the majority away.
//     Two sides of a split cannot both hold a majority, so only one side
//     claims.
//   - Without the majority a member judges no claim failed but by the
//     server's word (a departure, a restart), passes no epoch on, and gives
//     back its own claims at once (releases, handlers cancelled); it sends
//     those releases again when it regains the majority.
//   - Owners are ranked over the whole group; the epoch of an owner away
//     (unreachable, silent) passes on at once, a suspect's after the
//     claim timeout: each side claims only epochs whose owners it sees, so
//     the two never claim one epoch.
//   - With the majority, the claim of an unreachable member is taken over
//     at its fence (its last beat plus SuspectAfter intervals: by then its
//     own side has fenced it) and counts no attempt: no handler failed.
//   - When a member comes back (from unreachable, or from silence), every
//     member sends again the acks and dead markers of the events it
//     completed since that member went away, and its claims, so that the
//     two sides agree on what each did; for Rejoin after that, and after
//     regaining the majority, it claims nothing, so that the others'
//     resync arrives first.
//   - For Rejoin after a member goes away (unreachable, silent), it
//     claims nothing and judges no claim failed: the others' split QUITs
//     or silences reach it one by one, and a view half way could grant it
//     a majority it does not have.

// rejoinMargin is how far before a member went away a resync reaches:
// lines sent just before a split was noticed may not have crossed.
const rejoinMargin = 5 * time.Second

// absent reports whether a member may be alive on the other side of a
// split: unreachable, or dead by silence.
func absent(m Member) bool {
	return m.State == heartbeat.Unreachable || (m.State == heartbeat.Dead && !m.Departed)
}

// inGroup reports whether a member counts in the group's majority.
func inGroup(m Member) bool {
	return m.State == heartbeat.Alive || m.State == heartbeat.Suspect || absent(m)
}

// absence updates when each member went away and returns the earliest
// time a member that is back now went away (zero: nobody came back). A
// member that goes away (unreachable, or dead by silence) starts a
// Rejoin: a split's QUITs, or the silences of a partition, reach this
// member one by one, and it claims nothing until its view settled.
func (c *Core) absence(ms []Member, now time.Time) time.Time {
	var back time.Time
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		seen[m.ID] = true
		if prev, ok := c.members[m.ID]; ok && !absent(prev) && absent(m) && prev.Incarnation == m.Incarnation {
			c.holdClaims(now)
		}
		since, was := c.absentAt[m.ID]
		switch {
		case absent(m):
			if !was {
				c.absentAt[m.ID] = now
			}
		case was:
			delete(c.absentAt, m.ID)
			if m.State == heartbeat.Alive && (back.IsZero() || since.Before(back)) {
				back = since
			}
		}
	}
	for id, since := range c.absentAt {
		if !seen[id] && now.Sub(since) >= c.cfg.AbsentFor {
			delete(c.absentAt, id) // gone for good, as far as we can tell
		}
	}
	return back
}

// hasQuorum reports whether ms, as this member sees them, hold a majority
// of the group present (alive or suspect: a suspect may only be late);
// the members away, and those away that the view forgot (absentAt, not in
// ms), count against it.
func (c *Core) hasQuorum(ms []Member) bool {
	group, alive := 0, 0
	lowest, lowestAlive := "", false
	seen := make(map[string]bool, len(ms))
	count := func(id string, isAlive bool) {
		group++
		if isAlive {
			alive++
		}
		if lowest == "" || id < lowest {
			lowest, lowestAlive = id, isAlive
		}
	}
	for _, m := range ms {
		seen[m.ID] = true
		if inGroup(m) {
			count(m.ID, !absent(m))
		}
	}
	for id := range c.absentAt {
		if !seen[id] {
			count(id, false)
		}
	}
	return group > 0 && (2*alive > group || 2*alive == group && lowestAlive)
}

// setQuorum recomputes the majority after the members changed and carries
// out what a change asks: giving claims back on losing it, sending them
// again and waiting Rejoin on regaining it, and a resync when a member
// that went away at back is back.
func (c *Core) setQuorum(ms []Member, back, now time.Time) {
	q := c.hasQuorum(ms)
	switch {
	case c.quorum && !q:
		c.quorum, c.lostQuorum = false, true
		c.stats.QuorumLost++
		c.giveBack(now)
	case !c.quorum && q:
		c.quorum = true
		if c.lostQuorum {
			c.lostQuorum = false
			for _, it := range c.released {
				c.emit(Action{Kind: SendNack, Event: it.Event, Epoch: it.Epoch, Release: true, Reason: "released: lost the group's majority"})
				c.stats.Resent++
			}
			c.released = c.released[:0]
			c.holdClaims(now)
		}
	}
	if !back.IsZero() {
		c.resync(back.Add(-rejoinMargin), now)
		c.holdClaims(now)
	}
}

// giveBack: this member lost the group's majority. Its running handlers
// are cancelled and its claims released (the other side takes them over,
// or gets the releases when the network joins again); a dead letter it
// was posting is left to the next owner.
func (c *Core) giveBack(now time.Time) {
	for _, e := range c.pendingMine() {
		m := e.mine
		if m.running {
			c.stats.Cancelled++
			c.emit(Action{Kind: Cancel, Event: e.id, Epoch: m.epoch, Reason: "lost the group's majority"})
			m.running = false
		}
		if !m.dead && !m.acking {
			c.emit(Action{Kind: SendNack, Event: e.id, Epoch: m.epoch, Release: true, Reason: "released: lost the group's majority"})
			c.released = append(c.released, Item{Event: e.id, Epoch: m.epoch})
			e.nacked = ownNack{at: now, epoch: m.epoch, reason: "released: lost the group's majority", release: true}
			if w := e.win; w != nil && !e.winFailed && w.who == c.cfg.Self && w.epoch == m.epoch {
				// Given back, not failed: no attempt (our release, when
				// it comes back, is then stale).
				c.stats.Released++
				c.handOver(e, c.cfg.Self.ID+": released: lost the group's majority", false, now)
			}
		}
		c.dropMine(e)
	}
}

// pendingMine returns the pending events holding a claim of ours, in the
// order they were seen.
func (c *Core) pendingMine() []*event {
	var out []*event
	for _, e := range c.events {
		if e.mine != nil && e.outcome == Pending {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *event) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// holdClaims starts a Rejoin during which this member claims nothing;
// events without a live winner get their claim timeout from its end
// (eval).
func (c *Core) holdClaims(now time.Time) {
	c.rejoinUntil = now.Add(c.cfg.Rejoin)
}

// resync sends again what this member did since since, for a member that
// comes back from a split: the acks and dead markers of the events it
// completed, the claims it holds, and its NACKs and releases of events
// still pending (a NACK implies its claim: the other side learns which
// epochs were used).
func (c *Core) resync(since, now time.Time) {
	var done []*event
	for _, e := range c.events {
		if e.outcome != Pending && e.by == c.cfg.Self && !e.doneAt.Before(since) {
			done = append(done, e)
		}
	}
	slices.SortFunc(done, func(a, b *event) int { return cmp.Compare(a.seq, b.seq) })
	for _, e := range done {
		kind := SendAck
		if e.outcome == DeadLettered {
			kind = SendDead
		}
		c.emit(Action{Kind: kind, Event: e.id, Epoch: e.byEpoch, Attempt: e.attempts, Reasons: e.reasons, Resend: true})
		c.stats.Resent++
	}
	for _, e := range c.pendingMine() {
		if m := e.mine; !m.dead && !m.acking && !m.seen.IsZero() {
			c.emit(Action{Kind: SendClaim, Event: e.id, Epoch: m.epoch, Attempt: m.attempt, Lease: c.cfg.Lease})
			c.stats.Resent++
		}
	}
	var nacked []*event
	for _, e := range c.events {
		if e.outcome == Pending && !e.nacked.at.IsZero() && !e.nacked.at.Before(since) {
			nacked = append(nacked, e)
		}
	}
	slices.SortFunc(nacked, func(a, b *event) int { return cmp.Compare(a.seq, b.seq) })
	for _, e := range nacked {
		k := e.nacked
		c.emit(Action{Kind: SendNack, Event: e.id, Epoch: k.epoch, Lease: k.retry, Reason: k.reason, Release: k.release, Resend: true})
		c.stats.Resent++
	}
}

// Quorum reports whether this member sees a majority of its group alive:
// whether it may claim (§6.14).
func (c *Core) Quorum() bool { return c.quorum }

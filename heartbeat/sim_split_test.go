package heartbeat

import (
	"fmt"
	"strings"
	"time"
)

// Netsplits in the simulation (sim_test.go): for a while the network is cut
// in two sides. Every observer and every connection is on one side; a
// connection made during the split lands on either (a process that
// reconnects may come back on the other side, as a bot that fails over to
// another server). At the split each observer gets the split QUIT of every
// connection of the other side, in order after what that connection sent
// before; meanwhile nothing of the other side reaches it (beats, QUITs,
// nick changes are lost); at the netjoin it gets the JOIN of every
// connection of the other side, before anything that connection sends
// after.

// simSplit is a netsplit in progress.
type simSplit struct {
	until time.Time
}

// apart reports whether connection c and observer o are on the two sides
// of the split in progress.
func (s *sim) apart(c *simConn, o int) bool {
	return s.split != nil && c.side != s.obs[o].side
}

// sideName is the server of a side, as a split QUIT names it.
func sideName(side int) string { return fmt.Sprintf("s%d.meshbot.test", side+1) }

// netsplit starts a split that heals before end.
func (s *sim) netsplit(end time.Time) {
	if s.split != nil {
		return
	}
	until := s.now.Add(s.dur(time.Second, 0.5, 5))
	if until.After(end) {
		until = end
	}
	s.split = &simSplit{until: until}
	for _, ob := range s.obs {
		ob.side = s.rng.IntN(2)
	}
	var conns []*simConn
	for _, p := range s.alive() {
		if c := p.conn; c != nil {
			c.side = s.rng.IntN(2)
			conns = append(conns, c)
		}
	}
	s.logf(s.now, -1, key{}, "netsplit until %s: observers %v", simT(until), s.sides())
	for _, c := range conns {
		for o, ob := range s.obs {
			if c.side != ob.side {
				s.presenceTo(c, o, delivery{kind: dSplit, c: c, nick: c.nick,
					more: &dExtra{near: sideName(ob.side), far: sideName(c.side)}})
			}
		}
	}
	s.at(until, s.netjoin)
}

func (s *sim) sides() string {
	var b strings.Builder
	for i, ob := range s.obs {
		fmt.Fprintf(&b, " o%d:%s", i, sideName(ob.side))
	}
	return b.String()
}

// netjoin ends the split: every connection of a side joins again at the
// observers of the other.
func (s *sim) netjoin() {
	sp := s.split
	if sp == nil {
		return
	}
	var joins [][2]int
	for _, p := range s.alive() {
		if c := p.conn; c != nil {
			for o := range s.obs {
				if s.apart(c, o) {
					joins = append(joins, [2]int{c.id, o})
					s.presenceTo(c, o, delivery{kind: dRejoin, c: c, nick: c.nick})
				}
			}
		}
	}
	s.split = nil
	s.logf(s.now, -1, key{}, "netjoin: %d joins", len(joins))
}

// presenceTo schedules a line of the server's about c to observer o, in
// order after everything c sent o before it.
func (s *sim) presenceTo(c *simConn, o int, d delivery) time.Time {
	t := s.now.Add(s.dur(c.p.iv, 0, 0.4))
	if !t.After(c.last[o]) {
		t = c.last[o].Add(1)
	}
	if t.Before(c.fence[o]) {
		t = c.fence[o]
	}
	c.last[o], c.fence[o] = t, t.Add(1)
	d.o = int8(o)
	s.deliver(t, d)
	return t
}

// stepSplit applies a split QUIT or a netjoin's JOIN to one observer.
func (s *sim) stepSplit(ob *simObs, now time.Time, d *delivery) error {
	k := d.c.p.inst.k
	var evs []Event
	if d.kind == dSplit {
		evs = ob.v.SplitAway(d.nick, d.more.near, d.more.far, now)
	} else {
		evs = ob.v.Rejoined(d.nick, now)
	}
	if s.logging {
		what := map[dKind]string{dSplit: "split", dRejoin: "rejoin"}[d.kind]
		s.logf(now, ob.i, k, "%s %s (conn %d of %s/%s#%d) → %s", what, d.nick, d.c.id, k.service, k.instance, d.c.p.inc, fmtEvents(evs))
	}
	if err := s.checkEvents(ob, now, d, evs); err != nil {
		return err
	}
	om := ob.member(k)
	if d.kind == dSplit && om.lastConn == d.c && strings.EqualFold(om.nick, d.nick) {
		// (c) The split QUIT of the connection it knows the member by:
		// unreachable now (or dead already).
		if m := ob.v.members[k]; m != nil && m.State != Dead && m.State != Unreachable {
			return &simError{now, ob.i, k, fmt.Sprintf("%s quit in a split but the member is %s", d.nick, m.State)}
		}
	}
	if len(ob.v.members) != ob.known {
		return &simError{now, ob.i, k, fmt.Sprintf("view holds %d members, its events say %d", len(ob.v.members), ob.known)}
	}
	return nil
}

// checkRejoined: a netjoin's JOIN brings back only a member lost in a
// split or to silence (never one the server said left), under the JOIN's
// nick, as the incarnation it knew; it is the joining connection's member,
// or the observer last heard it on a connection that has quit or changed
// nick unseen since (another took the nick). It gets a fresh interval.
func (s *sim) checkRejoined(ob *simObs, now time.Time, in *delivery, e Event, om *obsMember) error {
	switch {
	case !om.known || (om.state != Unreachable && om.state != Dead):
		return fmt.Errorf("a JOIN brought back a member that was %s", om.state)
	case om.departed:
		return fmt.Errorf("a JOIN brought back a member the server said left")
	case !strings.EqualFold(e.Member.Nick, in.nick) || e.Member.Incarnation != om.inc:
		return fmt.Errorf("the JOIN of %s brought back #%d as %s (knew #%d)", in.nick, e.Member.Incarnation, e.Member.Nick, om.inc)
	case !e.Member.LastBeat.Equal(now) || !e.Member.Fence.IsZero() || !e.Member.Split.IsZero():
		return fmt.Errorf("back without a fresh interval: %+v", e.Member)
	}
	if lc := om.lastConn; lc != nil && lc != in.c && (lc.quitAt.IsZero() || lc.quitAt.After(now)) && !om.renameMissed {
		return fmt.Errorf("the JOIN of conn %d brought back the member the observer last heard on conn %d, still connected", in.c.id, lc.id)
	}
	om.rejoinedAt = now
	return nil
}

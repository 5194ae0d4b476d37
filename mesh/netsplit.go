package mesh

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Netsplits (docs/PROTOCOL.md §5.5, §6.14, §7.10). On a network of linked
// servers a QUIT that names two servers is a split: its member is
// unreachable, not dead (heartbeat.View.SplitAway). When the network joins
// again the server sends the JOINs of the other side before any of its
// lines: a JOIN of the heartbeat channel brings such a member back at once
// (Rejoined), and its return — an event naming the split — tells the node
// that lines of that side sent since the split never reached it. Once the
// burst of returns has settled, the node fills that gap where it can: its
// multicast subscriptions from history (at once, then again 3, 10 and 30 s
// later, while the recorders fill their own holes from each other), its
// anycast subscriptions by replaying the split in the group's record (at
// once and 3 s later), and its gap
// observers (recorders) with a gap that says since when. Without history
// the gap is logged and counted (SplitStats).

// netjoinSettle is how long after the first return of a split's members
// the node waits for the rest of the netjoin's burst before it fills.
const netjoinSettle = 250 * time.Millisecond

// netjoinRefill is when, after the netjoin, a multicast subscription fills
// the split's gap again: the recorder it reads may itself still be filling
// its hole from the other side's (§7.10), which usually takes a moment and
// takes longer when the network breaks again meanwhile. A pass delivers
// only what the earlier ones did not.
var netjoinRefill = []time.Duration{3 * time.Second, 10 * time.Second, 30 * time.Second}

// anycastRefill is when an anycast group replays the split again. Only
// once: a replay long after the netjoin brings back events the group has
// forgotten it completed, and its member ran them again (seen in the
// netsplit chaos run).
var anycastRefill = netjoinRefill[:1]

// refillPasses waits for each of delays after start and runs fill, until
// ctx or done ends.
func refillPasses(ctx context.Context, done <-chan struct{}, start time.Time, delays []time.Duration, fill func(pass int)) {
	for i, d := range delays {
		t := time.NewTimer(time.Until(start.Add(d)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		case <-done:
			t.Stop()
			return
		}
		fill(i + 2)
	}
}

// splitMargin is how far before a split's first QUIT its gap starts: lines
// sent just before the link broke may not have crossed it.
const splitMargin = 2 * time.Second

// netsplits is a node's record of the splits it saw and the netjoins it is
// filling. mu guards pending; it is a leaf lock.
type netsplits struct {
	mu      sync.Mutex
	pending time.Time // the earliest split start of the returns not dispatched yet
	waiting bool      // a dispatch is scheduled

	splits, netjoins, gaps, missed, filled atomic.Uint64
}

// SplitStats counts what a node saw of netsplits.
type SplitStats struct {
	// Splits counts the members the node saw leave in a netsplit;
	// Netjoins the times the network joined again (the returns of one
	// burst count once).
	Splits, Netjoins uint64
	// Gaps counts the gaps a netjoin left in subscriptions and gap
	// observers; Missed those that could not be filled (no history);
	// Filled the events delivered from history into them.
	Gaps, Missed, Filled uint64
}

// SplitStats returns what the node saw of netsplits.
func (n *Node) SplitStats() SplitStats {
	s := &n.splits
	return SplitStats{Splits: s.splits.Load(), Netjoins: s.netjoins.Load(), Gaps: s.gaps.Load(),
		Missed: s.missed.Load(), Filled: s.filled.Load()}
}

// memberQuit takes the server's QUIT of nick: a split's (its text names
// two servers) makes the member unreachable, any other its death.
func (n *Node) memberQuit(nick, text string) {
	if near, far, ok := heartbeat.ParseSplitQuit(text); ok {
		n.applyMemberEvents(func(v *heartbeat.View) []heartbeat.Event { return v.SplitAway(nick, near, far, time.Now()) })
		return
	}
	n.memberGone(nick, "quit: "+text)
}

// memberJoined takes a JOIN of another nick: in the heartbeat channel it
// brings back a member lost in a split or to silence (a netjoin's burst).
func (n *Node) memberJoined(l *line) {
	if len(l.params) == 0 || !strings.EqualFold(l.params[0], HeartbeatChannel(n.cfg.Namespace)) {
		return
	}
	n.applyMemberEvents(func(v *heartbeat.View) []heartbeat.Event { return v.Rejoined(l.nick, time.Now()) })
}

// noteSplits counts the splits among evs and schedules the filling of the
// gaps of the netjoins among them (members back from a split).
func (n *Node) noteSplits(evs []heartbeat.Event) {
	s := &n.splits
	for _, ev := range evs {
		switch {
		case ev.Kind == heartbeat.SplitAway:
			s.splits.Add(1)
			n.splitSeen() // failover.go: a node split away from most of the mesh moves
			n.log.Info("member unreachable: netsplit", "member", ev.Member.ID(),
				"nick", ev.Member.Nick, "servers", ev.Reason)
		case (ev.Kind == heartbeat.Recovered || ev.Kind == heartbeat.Restarted) && !ev.Split.Since.IsZero():
			// Back from a split, or from silence (a split this node did
			// not see: it moved servers meanwhile).
			s.mu.Lock()
			if s.pending.IsZero() || ev.Split.Since.Before(s.pending) {
				s.pending = ev.Split.Since
			}
			start := !s.waiting
			s.waiting = true
			s.mu.Unlock()
			if start {
				n.wg.Add(1)
				go n.netjoin()
			}
		}
	}
}

// netjoin waits for the burst of returns to settle, then tells the
// subscriptions and the gap observers.
func (n *Node) netjoin() {
	defer n.wg.Done()
	select {
	case <-time.After(netjoinSettle):
	case <-n.done:
		return
	}
	s := &n.splits
	s.mu.Lock()
	since := s.pending
	s.pending, s.waiting = time.Time{}, false
	s.mu.Unlock()
	if n.closing.Load() || since.IsZero() {
		return
	}
	s.netjoins.Add(1)
	n.log.Info("the network joined again: filling what the split kept from this node", "split since", since)
	for _, m := range n.modes() {
		if j, ok := m.(netjoiner); ok {
			j.netjoin(since)
		}
	}
	n.observeSplitGaps(since)
}

// netjoiner is a delivery mode that fills what a split kept from it.
type netjoiner interface {
	// netjoin: the network joined again; lines of the other side sent
	// since since (less splitMargin) never reached this node.
	netjoin(since time.Time)
}

// observeSplitGaps gives every observer that asked for gaps one that says
// since when lines are missing.
func (n *Node) observeSplitGaps(since time.Time) {
	n.mu.Lock()
	var gaps []*Observer
	for _, list := range n.observers {
		for _, o := range list {
			if o.gaps {
				gaps = append(gaps, o)
			}
		}
	}
	n.mu.Unlock()
	for _, o := range gaps {
		n.splits.gaps.Add(1)
		ob := o.gap(time.Now())
		ob.GapSince = since.Add(-splitMargin)
		select {
		case o.q <- ob:
		default:
			o.gapLost.Store(true)
		}
	}
}

// netjoin: a multicast subscription fills the split's gap from history,
// at once and again at each netjoinRefill; without history it is missed.
func (sub *Subscription) netjoin(since time.Time) {
	n := sub.n
	n.splits.gaps.Add(1)
	if sub.catch == nil {
		n.splits.missed.Add(1)
		n.log.Warn("the network joined again after a split: events published on the other side meanwhile are missing (set Config.History to fill them)",
			"topic", sub.topic, "since", since)
		return
	}
	from := since.Add(-splitMargin)
	start := time.Now()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.fillSplit(sub, from, 1)
		refillPasses(sub.ctx, n.done, start, netjoinRefill, func(pass int) { n.fillSplit(sub, from, pass) })
	}()
}

// fillSplit delivers to sub the events of its topic recorded since from
// that it has not delivered yet (pass 1 at the netjoin, the others at
// netjoinRefill).
func (n *Node) fillSplit(sub *Subscription, from time.Time, pass int) {
	ctx, cancel := context.WithTimeout(sub.ctx, n.cfg.BackfillTimeout)
	defer cancel()
	go func() {
		select {
		case <-n.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	filled, count, err := n.deliverRecorded(ctx, n.cfg.History, sub, from)
	n.stats.backfilled.Add(filled)
	n.splits.filled.Add(filled)
	n.warnRejected("filling a netsplit's gap", sub.topic, count)
	if err != nil {
		n.log.Warn("filling a netsplit's gap failed: events published on the other side may be missing", "topic", sub.topic,
			"since", from, "pass", pass, "filled", filled, "err", err)
		return
	}
	n.log.Info("filled a netsplit's gap", "topic", sub.topic, "since", from, "pass", pass, "filled", filled)
}

// netjoin: an anycast member with history replays the split in the
// group's record (the other side's events, claims and acks), at once and
// again at anycastRefill; without history the resync of §6.14 is what
// it learns of the other side.
func (a *anycast) netjoin(since time.Time) {
	n, b := a.n, a.n.cfg.History
	n.splits.gaps.Add(1)
	if b == nil || a.s.ctx.Err() != nil {
		if b == nil {
			n.splits.missed.Add(1)
		}
		return
	}
	from := since.Add(-splitMargin)
	start := time.Now()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		a.replaySplit(b, from)
		refillPasses(a.s.ctx, n.done, start, anycastRefill, func(int) { a.replaySplit(b, from) })
	}()
}

// replaySplit replays the topic's record from from into the Group
// (claims.Group.Resume, Replay, Replayed): what the other side did during
// the split; the group's committed offset is kept.
func (a *anycast) replaySplit(b HistorySource, from time.Time) {
	a.resuming.Lock()
	defer a.resuming.Unlock()
	ctx, cancel := context.WithTimeout(a.s.ctx, a.n.cfg.BackfillTimeout)
	defer cancel()
	a.step(func(now time.Time) { a.g.Resume(envelope.Offset{}, now) })
	events, lines, count, err := a.replayRecord(ctx, b, from)
	a.n.warnRejected("anycast: replaying a netsplit", a.s.topic, count)
	a.step(func(now time.Time) {
		if err == nil {
			a.g.Replayed(now)
		} else {
			a.g.ReplayFailed(now) // claims again; its hole stays
		}
	})
	if err != nil {
		a.n.log.Warn("anycast: the netsplit could not be replayed from history", "topic", a.s.topic, "group", a.group, "since", from, "err", err)
		return
	}
	a.n.log.Info("anycast: replayed a netsplit", "topic", a.s.topic, "group", a.group, "since", from, "events", events, "claims-lines", lines)
}

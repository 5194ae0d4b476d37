package claims

import (
	"cmp"
	"slices"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Claimant identifies one incarnation of a member: ID is "service/instance".
type Claimant struct {
	ID          string
	Incarnation uint64
}

// Member is a member of the group as the heartbeat view sees it.
type Member struct {
	Claimant
	State heartbeat.State
	// Departed: the server said it left (heartbeat.Member.Departed). A
	// member dead otherwise (by silence), or unreachable, may be alive on
	// the other side of a split: it still counts in the group's majority
	// (§6.14).
	Departed bool
	// Fence is, for an unreachable member, when its claims may be taken
	// over (heartbeat.Member.Fence).
	Fence time.Time
}

// Config sets a Core's identity and timings. Zero fields take the defaults.
type Config struct {
	// Self is this member.
	Self Claimant
	// Lease is how long a claim holds without renewal (30 s). A claimant
	// renews at half the lease while its handler runs.
	Lease time.Duration
	// Settle is how long a claimant waits after seeing its own claim before
	// it starts the handler, for a conflicting claim to arrive (50 ms).
	Settle time.Duration
	// ClaimTimeout is how long the owner of an epoch has to claim before the
	// epoch passes to the next member (2 s).
	ClaimTimeout time.Duration
	// Skew is added to other members' leases for clock drift (1 s).
	Skew time.Duration
	// MaxAttempts failed attempts send the event to the dead-letter topic (5).
	MaxAttempts int
	// Retain is how long a completed event is remembered (2 min).
	Retain time.Duration
	// MaxEvents bounds the events tracked, pending and completed (100,000).
	// Completed ones are forgotten first; past the bound new events are
	// refused and counted.
	MaxEvents int
	// MaxInFlight bounds this member's own claims not yet completed
	// (0 = no bound). A member at its bound lets the epoch pass on.
	MaxInFlight int
	// Rejoin is how long a member claims nothing after a member of its
	// group came back from a split or from silence, or after it regained
	// the group's majority, so that the others' resync arrives first
	// (1 s; §6.14).
	Rejoin time.Duration
	// AbsentFor is how long a member that went away without leaving for
	// certain (unreachable, or silent) still counts in the group's
	// majority once the heartbeat view forgot it (2 min; §6.14).
	AbsentFor time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Lease, 30*time.Second)
	c.Lease = min(c.Lease, maxLease)
	def(&c.Settle, 50*time.Millisecond)
	def(&c.ClaimTimeout, 2*time.Second)
	def(&c.Skew, time.Second)
	def(&c.Retain, 2*time.Minute)
	def(&c.Rejoin, time.Second)
	def(&c.AbsentFor, 2*time.Minute)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = 100_000
	}
	return c
}

// ActionKind says what an Action asks for.
type ActionKind uint8

// The actions a Core asks its owner to carry out.
const (
	// SendClaim: post a CLAIM for Event at Epoch, Attempt, with Lease.
	SendClaim ActionKind = iota + 1
	// SendAck: post an ACK for Event at Epoch.
	SendAck
	// SendNack: post a NACK for Event at Epoch, retry after Lease, Reason.
	SendNack
	// SendDead: publish Event to the dead-letter topic with Reasons, then
	// post a DEAD marker for it at Epoch.
	SendDead
	// Start: run the handler for Event with fencing Token.
	Start
	// Cancel: the claim on Event was lost; cancel its handler (Reason).
	Cancel
)

func (k ActionKind) String() string {
	return [...]string{"", "claim", "ack", "nack", "dead", "start", "cancel"}[k]
}

// Action is one output of a Core.
type Action struct {
	Kind    ActionKind
	Event   envelope.ID
	Epoch   uint64
	Attempt uint32
	Token   uint64
	Lease   time.Duration
	Reason  string
	Reasons []string
	// Release marks a SendNack that gives the claim back without failing.
	Release bool
	// Resend marks a SendAck or SendDead sent again when a member of the
	// group comes back from a split (§6.14): of a SendDead only the marker
	// is sent (the dead letter was published).
	Resend bool
}

// claim is a claim seen for an event.
type claim struct {
	who      Claimant
	epoch    uint64
	attempt  uint32
	weight   uint64
	received time.Time
	until    time.Time // lease end on this observer's clock, with skew
}

func (a *claim) less(b *claim) bool {
	if a.epoch != b.epoch {
		return a.epoch < b.epoch
	}
	if a.weight != b.weight {
		return a.weight < b.weight
	}
	if a.who.ID != b.who.ID {
		return a.who.ID < b.who.ID
	}
	return a.who.Incarnation < b.who.Incarnation
}

// own is this member's claim on an event.
type own struct {
	epoch    uint64
	attempt  uint32
	sent     time.Time
	leaseEnd time.Time // by our clock, from the last (re)claim sent
	renewAt  time.Time
	seen     time.Time // our claim came back from the server
	running  bool      // handler started
	acking   bool      // ack or nack sent
	dead     bool      // this is a dead-letter posting, not a claim
}

// ownNack is a NACK or release this member sent.
type ownNack struct {
	at      time.Time
	epoch   uint64
	retry   time.Duration
	reason  string
	release bool
}

// Outcome is how an event ended.
type Outcome uint8

// Outcomes.
const (
	Pending Outcome = iota
	Acked
	DeadLettered
)

func (o Outcome) String() string { return [...]string{"pending", "acked", "dead"}[o] }

// event is what a member knows of one event. It is small once the event
// is completed (what is kept for the retention: who completed it, when,
// how); the state of a pending event lives in its pend, dropped at
// completion.
type event struct {
	id       envelope.ID
	seq      uint64 // order of arrival
	key      string
	first    time.Time
	doneAt   time.Time
	epoch    uint64 // the current epoch: the next claim's, or the winner's
	attempts uint32 // failed attempts known
	hasEvent bool
	outcome  Outcome
	// winFailed: this observer judged the winner failed.
	winFailed bool
	reasons   []string
	by        Claimant // who completed it
	byEpoch   uint64
	win       *claim // highest claim seen; nil once completed
	mine      *own
	*pend     // nil once completed
}

// pend is the part of an event's state that matters only while it is
// pending.
type pend struct {
	slotStart time.Time // when the current epoch began waiting for a claim
	notBefore time.Time // after a nack: no claim before
	due       time.Time
	nacked    ownNack // our last NACK or release of it, sent again in a resync (§6.14)
}

// Stats counts what a Core saw.
type Stats struct {
	Pending, Completed int    // events tracked now
	Claims, Renewals   uint64 // claims sent by this member (first, renewal)
	Acked, Dead        uint64 // events completed, by ack and by dead letter
	Takeovers          uint64 // winners judged failed
	Stale              uint64 // acks, nacks and claims that lost or came late
	Released           uint64 // claims given back by members shutting down
	Started, Cancelled uint64 // handlers
	Refused            uint64 // events not tracked: over MaxEvents
	// Evicted counts completed events forgotten before their retention
	// ended, to make room under MaxEvents: a late line about one is then
	// taken for a new event's.
	Evicted   uint64
	Malformed uint64 // lines of the group that did not decode (Group only)
	// QuorumLost counts the times this member lost the group's majority
	// (§6.14); Resent the acks, dead markers and claims it sent again
	// because a member came back from a split.
	QuorumLost, Resent uint64
}

// Core is one member's claims state for one (topic, group).
type Core struct {
	cfg       Config
	events    map[envelope.ID]*event
	peak      int // the most events held since the map was last rebuilt (shrink.go)
	timers    timerHeap
	timerSeq  uint64
	eventSeq  uint64
	ranked    []ranked                  // scratch for owner
	forgotten int                       // completed events Forget dropped, still in done
	tombs     tombs                     // the ids of the events Forget dropped, for their retention (tombs.go)
	abandoned map[envelope.ID]abandoned // our claims Reset dropped, for their retention (tombs.go)
	done      []*event                  // completed, in completion order, from doneHead
	doneHead  int
	members   map[string]Member
	alive     []string // the ids of the members not known gone, sorted: the owners (§6.3)
	session   time.Time
	ready     bool
	inFlight  int
	out       []Action
	stats     Stats
	// Splits (split.go, §6.14).
	quorum      bool                 // this member sees a majority of its group
	lostQuorum  bool                 // it had lost it since
	absentAt    map[string]time.Time // members unreachable or dead by silence, since when
	rejoinUntil time.Time            // no claim before: a resync may be on its way
	released    []Item               // own claims given back on losing the majority
	reconnected bool                 // Reset since the last session: hold claims at the next
}

// New returns an empty Core.
func New(cfg Config) *Core {
	return &Core{
		cfg:      cfg.withDefaults(),
		events:   make(map[envelope.ID]*event),
		members:  make(map[string]Member),
		absentAt: make(map[string]time.Time),
	}
}

// Config returns the configuration in use, defaults filled in.
func (c *Core) Config() Config { return c.cfg }

// Forget drops a completed event before its retention ends (the group's
// committed offset passed it); it reports whether it did. Pending events
// are kept. Its id stays until the retention ends (tombs.go): a line of
// it seen again meanwhile is ignored, as a completed event's.
func (c *Core) Forget(id envelope.ID) bool {
	e := c.events[id]
	if e == nil || e.outcome == Pending {
		return false
	}
	delete(c.events, id)
	c.stats.Evicted += uint64(c.tombs.add(id, e.doneAt.Add(c.cfg.Retain), c.cfg.MaxEvents))
	c.forgotten++
	c.popForgotten()
	return true
}

// popForgotten drops the events Forget dropped from the front of the
// completion queue, which would otherwise hold them until the retention of
// the first one still remembered.
func (c *Core) popForgotten() {
	for c.doneHead < len(c.done) {
		e := c.done[c.doneHead]
		if c.events[e.id] == e {
			return
		}
		c.done[c.doneHead] = nil
		c.doneHead++
		c.forgotten--
	}
}

// pendingCount is the number of pending events tracked.
func (c *Core) pendingCount() int {
	return len(c.events) - (len(c.done) - c.doneHead - c.forgotten)
}

// Stats returns the counters.
func (c *Core) Stats() Stats {
	s := c.stats
	s.Completed = len(c.done) - c.doneHead - c.forgotten
	s.Pending = len(c.events) - s.Completed
	return s
}

func (c *Core) begin() { c.out = c.out[:0] }

func (c *Core) emit(a Action) { c.out = append(c.out, a) }

// get returns the event's state, creating it. It returns nil when the
// event is new and the bound is reached, or when Forget dropped it
// (completed: nothing of it is tracked again).
func (c *Core) get(id envelope.ID, now time.Time) *event {
	if e := c.events[id]; e != nil {
		return e
	}
	if c.tombs.has(id) {
		return nil
	}
	if len(c.events) >= c.cfg.MaxEvents {
		c.forget(now, true)
		if len(c.events) >= c.cfg.MaxEvents {
			c.stats.Refused++
			return nil
		}
	}
	c.eventSeq++
	e := &event{id: id, seq: c.eventSeq, first: now, epoch: 1, pend: &pend{slotStart: now}}
	c.events[id] = e
	c.reclaimed(e, now)
	return e
}

// pending returns the event's state for a completion, or nil when it is
// refused (over MaxEvents) or already completed (counted as stale).
func (c *Core) pending(id envelope.ID, now time.Time) *event {
	e := c.get(id, now)
	if e != nil && e.outcome != Pending {
		c.stats.Stale++
		return nil
	}
	return e
}

// fromWinner returns the event's state for a NACK or release from who, or
// nil (counted as stale) unless it comes from the current winner's claim at
// its epoch: the event is unknown or completed, the claim is not the
// winner's, or the winner was already judged failed here (and that attempt
// is counted once). A NACK of a claim at an epoch above any claim this
// member saw implies that claim (its line was lost to a disconnect or a
// split; the NACK came in a resync, §6.14): it is the winner the NACK
// ends.
func (c *Core) fromWinner(who Claimant, it Item, now time.Time) *event {
	e := c.events[it.Event]
	if e != nil && e.outcome == Pending {
		if e.win == nil || it.Epoch > e.win.epoch {
			cl := &claim{who: who, epoch: it.Epoch, weight: Weight(it.Event, who.ID), received: now, until: now}
			e.win, e.winFailed = cl, false
			e.epoch = max(e.epoch, cl.epoch)
		}
	}
	if e == nil || e.outcome != Pending || e.win == nil || e.winFailed || e.win.who != who || e.win.epoch != it.Epoch {
		c.stats.Stale++
		return nil
	}
	return e
}

// Event: an event was seen in the topic's channel. key routes it (ByKey);
// "" routes by id.
func (c *Core) Event(id envelope.ID, key string, now time.Time) []Action {
	c.begin()
	e := c.get(id, now)
	if e == nil || e.hasEvent {
		return c.out
	}
	e.hasEvent, e.key = true, key
	if e.win == nil {
		e.slotStart = now
	}
	c.eval(e, now)
	return c.out
}

// Claim: a CLAIM item from who was seen (our own included, which is how a
// claimant learns its claim is safe to act on).
func (c *Core) Claim(who Claimant, it Item, lease time.Duration, now time.Time) []Action {
	c.begin()
	e := c.get(it.Event, now)
	if e == nil {
		return c.out
	}
	if e.outcome != Pending {
		if who == c.cfg.Self {
			c.dropMine(e)
		}
		c.stats.Stale++
		return c.out
	}
	cl := &claim{who: who, epoch: it.Epoch, attempt: it.Attempt, weight: Weight(it.Event, who.ID), received: now,
		until: now.Add(min(lease, maxLease) + c.cfg.Skew)}
	if it.Attempt > 0 {
		e.attempts = max(e.attempts, it.Attempt-1)
	}
	switch {
	case e.win == nil || e.win.less(cl):
		e.win, e.winFailed = cl, false
		e.epoch = max(e.epoch, cl.epoch)
	case !cl.less(e.win): // the same claim again: a renewal or a duplicate
		e.win.until = cl.until
	default:
		c.stats.Stale++
	}
	if who == c.cfg.Self && e.mine != nil && !e.mine.dead && e.mine.epoch == it.Epoch && e.mine.seen.IsZero() {
		e.mine.seen = now
	}
	c.eval(e, now)
	return c.out
}

// Ack: an ACK item from who was seen. It completes the event when it comes
// from the highest claim seen (an ACK implies its sender's claim, so one
// whose claim line was missed still counts).
func (c *Core) Ack(who Claimant, it Item, now time.Time) []Action {
	c.begin()
	e := c.pending(it.Event, now)
	if e == nil {
		return c.out
	}
	cl := &claim{who: who, epoch: it.Epoch, weight: Weight(it.Event, who.ID)}
	if e.win != nil && cl.less(e.win) {
		c.stats.Stale++
		return c.out
	}
	c.complete(e, Acked, who, it.Epoch, now)
	return c.out
}

// Nack: a NACK from who was seen: the attempt failed; retry after retry.
func (c *Core) Nack(who Claimant, it Item, retry time.Duration, reason string, now time.Time) []Action {
	c.begin()
	e := c.fromWinner(who, it, now)
	if e == nil {
		return c.out
	}
	if reason == "" {
		reason = "nack"
	}
	c.fail(e, who.ID+": "+reason, now)
	e.notBefore = now.Add(retry)
	e.slotStart = e.notBefore
	c.eval(e, now)
	return c.out
}

// Released: who gave its claim back without failing (it is shutting
// down): the next epoch opens at once and no attempt is counted.
func (c *Core) Released(who Claimant, it Item, now time.Time) []Action {
	c.begin()
	e := c.fromWinner(who, it, now)
	if e == nil {
		return c.out
	}
	c.stats.Released++
	c.handOver(e, who.ID+": released", false, now)
	c.eval(e, now)
	return c.out
}

// ReleaseAll gives back every claim of ours not yet acked (we are shutting
// down, and no handler of ours runs any more): SendNack actions with
// Release set, so that others take the events over at once.
func (c *Core) ReleaseAll(now time.Time) []Action {
	c.begin()
	c.ready = false
	ids := make([]*event, 0)
	for _, e := range c.events {
		if m := e.mine; m != nil && !m.dead && !m.acking && e.outcome == Pending {
			ids = append(ids, e)
		}
	}
	slices.SortFunc(ids, func(a, b *event) int { return cmp.Compare(a.seq, b.seq) })
	for _, e := range ids {
		m := e.mine
		m.acking, m.running = true, false
		c.emit(Action{Kind: SendNack, Event: e.id, Epoch: m.epoch, Release: true, Reason: "released"})
		e.nacked = ownNack{at: now, epoch: m.epoch, reason: "released", release: true}
	}
	return c.out
}

// Dead: a DEAD marker from who was seen: the event was dead-lettered.
func (c *Core) Dead(who Claimant, it Item, now time.Time) []Action {
	c.begin()
	c.markDead(who, it, 0, nil, now)
	return c.out
}

// markDead completes an event as dead-lettered; attempts and reasons are
// what the marker says, kept where this member knew less.
func (c *Core) markDead(who Claimant, it Item, attempts uint32, reasons []string, now time.Time) {
	e := c.pending(it.Event, now)
	if e == nil {
		return
	}
	c.complete(e, DeadLettered, who, it.Epoch, now)
	e.attempts = max(e.attempts, attempts)
	if len(e.reasons) == 0 && len(reasons) > 0 {
		e.reasons = slices.Clone(reasons[:min(len(reasons), 2*c.cfg.MaxAttempts)])
	}
}

// Done: our handler for the event at epoch returned. err nil acks; else the
// event is nacked with err's text and a retry delay.
func (c *Core) Done(id envelope.ID, epoch uint64, err error, retry time.Duration, now time.Time) []Action {
	c.begin()
	e := c.events[id]
	if e == nil || e.mine == nil || e.mine.epoch != epoch || !e.mine.running || e.mine.acking {
		return c.out // a lost claim's result: dropped
	}
	if !c.mineValid(e, now) {
		c.eval(e, now)
		return c.out
	}
	e.mine.running = false
	e.mine.acking = true
	if err == nil {
		c.emit(Action{Kind: SendAck, Event: id, Epoch: epoch})
	} else {
		c.emit(Action{Kind: SendNack, Event: id, Epoch: epoch, Lease: retry, Reason: err.Error()})
		e.nacked = ownNack{at: now, epoch: epoch, retry: retry, reason: err.Error()}
	}
	return c.out
}

// Members: the group's members changed (all of them, any state).
func (c *Core) Members(ms []Member, now time.Time) []Action {
	c.begin()
	rejoined := c.absence(ms, now)
	clear(c.members)
	c.alive = c.alive[:0]
	for _, m := range ms {
		c.members[m.ID] = m
		if inGroup(m) {
			c.alive = append(c.alive, m.ID)
		}
	}
	slices.Sort(c.alive)
	c.alive = slices.Compact(c.alive)
	c.setQuorum(ms, rejoined, now)
	c.evalAll(now)
	return c.out
}

// Session: our heartbeats keep us alive in others' eyes until until. Our
// claims are worth nothing after it.
func (c *Core) Session(until, now time.Time) []Action {
	c.begin()
	grew := until.After(c.session)
	c.session = until
	if c.reconnected && until.After(now) {
		// The first beat after a Reset: the others held us for gone
		// (our QUIT), and rank the group without us until this beat
		// reaches them. Claim nothing for Rejoin, as after a split
		// (§6.14).
		c.reconnected = false
		c.holdClaims(now)
		grew = false
	}
	if !grew {
		c.evalAll(now)
	}
	return c.out
}

// SetReady says whether this member may claim: it has been in the group
// long enough to know the other members, and they to know it.
func (c *Core) SetReady(ready bool, now time.Time) []Action {
	c.begin()
	if c.ready != ready {
		c.ready = ready
		c.evalAll(now)
	}
	return c.out
}

// Reset: this member lost its connection and may have missed lines. Every
// handler is cancelled and every pending event forgotten: another member
// completes them (acting on what it may have missed could run an event
// twice). Its claims are released (SendNack with Release, for the driver
// to send once connected again: a member that comes back before the
// others judged its claims failed would otherwise hold them until their
// lease ends). Completed events are kept.
func (c *Core) Reset(now time.Time) []Action {
	c.begin()
	var mine []*event
	for _, e := range c.events {
		if e.outcome == Pending && e.mine != nil {
			mine = append(mine, e)
		}
	}
	slices.SortFunc(mine, func(a, b *event) int { return cmp.Compare(a.seq, b.seq) })
	c.abandon(now)
	for _, e := range mine {
		if m := e.mine; !m.dead && !m.acking && !m.seen.IsZero() {
			c.emit(Action{Kind: SendNack, Event: e.id, Epoch: m.epoch, Release: true, Reason: "released: disconnected"})
		}
	}
	for id, e := range c.events {
		if e.outcome != Pending {
			continue
		}
		if e.mine != nil {
			if e.mine.running {
				c.stats.Cancelled++
				c.emit(Action{Kind: Cancel, Event: id, Epoch: e.mine.epoch, Reason: "disconnected"})
			}
			c.dropMine(e)
		}
		delete(c.events, id)
	}
	c.timers = c.timers[:0]
	c.reconnected = true
	return c.out
}

// Tick advances time: leases, timeouts, settles, renewals, retention.
func (c *Core) Tick(now time.Time) []Action {
	c.begin()
	for len(c.timers) > 0 && !c.timers[0].at.After(now) {
		t := c.timers.pop()
		e := c.events[t.id]
		if e == nil || e.outcome != Pending || !e.due.Equal(t.at) {
			continue
		}
		e.due = time.Time{}
		c.eval(e, now)
	}
	c.forget(now, false)
	return c.out
}

// Next returns when Tick has work, or the zero time.
func (c *Core) Next() time.Time {
	var next time.Time
	if len(c.timers) > 0 {
		next = c.timers[0].at
	}
	if c.doneHead < len(c.done) {
		if t := c.done[c.doneHead].doneAt.Add(c.cfg.Retain); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// forget drops completed events past retention (all the oldest, with
// force, until there is room).
func (c *Core) forget(now time.Time, force bool) {
	for c.doneHead < len(c.done) {
		e := c.done[c.doneHead]
		if c.events[e.id] != e { // forgotten already (Forget)
			c.done[c.doneHead] = nil
			c.doneHead++
			c.forgotten--
			continue
		}
		if now.Sub(e.doneAt) < c.cfg.Retain {
			if !force || len(c.events) < c.cfg.MaxEvents {
				break
			}
			c.stats.Evicted++ // dropped before its retention to make room
		}
		delete(c.events, e.id)
		c.done[c.doneHead] = nil
		c.doneHead++
	}
	if c.doneHead > 1024 && c.doneHead > len(c.done)/2 {
		n := copy(c.done, c.done[c.doneHead:])
		clear(c.done[n:])
		c.done = c.done[:n]
		c.doneHead = 0
	}
	c.tombs.expire(now)
	c.expireAbandoned(now)
	c.shrink() // shrink.go: return what a burst left
}

// evalAll evaluates every pending event, in the order they were first
// seen (handlers start in that order).
func (c *Core) evalAll(now time.Time) {
	pending := make([]*event, 0, max(0, len(c.events)-(len(c.done)-c.doneHead-c.forgotten)))
	for _, e := range c.events {
		if e.outcome == Pending {
			pending = append(pending, e)
		}
	}
	slices.SortFunc(pending, func(a, b *event) int { return cmp.Compare(a.seq, b.seq) })
	for _, e := range pending {
		c.eval(e, now)
	}
}

func (c *Core) complete(e *event, o Outcome, who Claimant, epoch uint64, now time.Time) {
	e.outcome, e.by, e.byEpoch, e.doneAt = o, who, epoch, now
	if o == Acked {
		c.stats.Acked++
	} else {
		c.stats.Dead++
	}
	if m := e.mine; m != nil {
		if m.running {
			c.stats.Cancelled++
			c.emit(Action{Kind: Cancel, Event: e.id, Epoch: m.epoch, Reason: "completed by " + who.ID})
		}
		c.dropMine(e)
	}
	if o == Acked {
		e.reasons = nil // a dead-lettered event keeps them: tools show why
	}
	e.win, e.pend = nil, nil // what only a pending event needs
	c.done = append(c.done, e)
}

func (c *Core) dropMine(e *event) {
	if e.mine != nil {
		e.mine = nil
		c.inFlight--
	}
}

// fail records that the current winner's attempt failed and opens the next
// epoch.
func (c *Core) fail(e *event, reason string, now time.Time) {
	c.handOver(e, reason, true, now)
}

// handOver ends the winner's claim and opens the next epoch; counted says
// whether it was a failed attempt (a release, or a claimant split away, is
// not).
func (c *Core) handOver(e *event, reason string, counted bool, now time.Time) {
	if counted {
		c.stats.Takeovers++
		e.attempts++
	}
	if len(e.reasons) < 2*c.cfg.MaxAttempts {
		e.reasons = append(e.reasons, reason)
	}
	e.epoch = max(e.epoch, e.win.epoch+1)
	e.winFailed = true
	e.slotStart = now
	if m := e.mine; m != nil && m.epoch <= e.win.epoch {
		if m.running {
			c.stats.Cancelled++
			c.emit(Action{Kind: Cancel, Event: e.id, Epoch: m.epoch, Reason: reason})
		}
		c.dropMine(e)
	}
}

// mineValid: our claim may still be acted on.
func (c *Core) mineValid(e *event, now time.Time) bool {
	m := e.mine
	if now.After(m.leaseEnd) {
		return false
	}
	return c.session.IsZero() || now.Before(c.session)
}

// winnerFailed says why the winning claim no longer holds, or "", and
// whether that counts as a failed attempt. Without the group's majority a
// member judges only what the server told it for certain (a departure, a
// restart): the others' silence may be a split (§6.14).
func (c *Core) winnerFailed(e *event, now time.Time) (string, bool) {
	w := e.win
	if w.who == c.cfg.Self {
		if e.mine == nil || e.mine.epoch != w.epoch {
			// Our claim from before a restart of this Core, or one we
			// dropped: it is nobody's.
			return "claim abandoned", true
		}
		if !c.mineValid(e, now) {
			if now.After(e.mine.leaseEnd) {
				return "lease expired", true
			}
			return "session expired", true
		}
		return "", false
	}
	m, ok := c.members[w.who.ID]
	switch {
	case ok && m.Incarnation > w.who.Incarnation:
		return w.who.ID + " restarted", true
	case ok && m.State == heartbeat.Dead && m.Departed:
		return w.who.ID + " left", true
	case !c.quorum || now.Before(c.rejoinUntil):
		// Without the majority, or while a resync may be on its way.
		return "", false
	case !ok && now.Sub(w.received) >= c.cfg.ClaimTimeout:
		return w.who.ID + " unknown", true
	case ok && m.State == heartbeat.Dead:
		return w.who.ID + " left", true
	case ok && m.State == heartbeat.Unreachable && !now.Before(m.Fence):
		// Split away: its own side cannot act on the claim any more (it
		// lost the majority, or its session ended); no handler failed.
		return w.who.ID + " unreachable", false
	case ok && m.State == heartbeat.Suspect:
		return w.who.ID + " suspected", true
	case now.After(w.until):
		return w.who.ID + " lease expired", true
	}
	return "", false
}

// skipAway passes on at once the epochs whose owners are away
// (unreachable, dead by silence): they cannot claim where this member
// sees it, and their epochs stay theirs (§6.14). It counts no attempt. A
// suspect owner keeps its epoch for the claim timeout: it may only be
// late.
func (c *Core) skipAway(e *event, now time.Time) {
	for range len(c.alive) {
		o := c.owner(e)
		if o == "" || !absent(c.members[o]) {
			return
		}
		e.epoch++
		e.slotStart = now
	}
}

// owner returns the member whose turn epoch is, or "": the group's members
// not known gone, ranked.
func (c *Core) owner(e *event) string {
	if len(c.alive) == 0 {
		return ""
	}
	c.ranked = c.ranked[:0]
	for _, id := range c.alive {
		w := Weight(e.id, id)
		if e.key != "" {
			w = heartbeat.Weight(e.key, id)
		}
		c.ranked = append(c.ranked, ranked{id, w})
	}
	slices.SortFunc(c.ranked, func(a, b ranked) int {
		if a.w != b.w {
			return cmp.Compare(b.w, a.w)
		}
		return cmp.Compare(a.id, b.id)
	})
	return c.ranked[(e.epoch-1)%uint64(len(c.ranked))].id
}

type ranked struct {
	id string
	w  uint64
}

// eval brings one pending event up to date and sets its next timer.
func (c *Core) eval(e *event, now time.Time) {
	if e.outcome != Pending {
		return
	}
	if !e.hasEvent && e.mine == nil && now.Sub(e.first) >= c.cfg.Retain {
		// Claims for an event this member never saw, gone quiet.
		delete(c.events, e.id)
		return
	}
	var due time.Time
	at := func(t time.Time) {
		if due.IsZero() || t.Before(due) {
			due = t
		}
	}
	if !e.hasEvent {
		at(e.first.Add(c.cfg.Retain))
	}
	// The winner.
	if e.win != nil && !e.winFailed {
		if reason, counted := c.winnerFailed(e, now); reason != "" {
			if !counted {
				c.stats.Takeovers++ // split away: taken over, no attempt counted
			}
			c.handOver(e, reason, counted, now)
		} else if e.win.who != c.cfg.Self && c.quorum {
			if now.Before(c.rejoinUntil) {
				at(c.rejoinUntil)
			}
			at(e.win.until.Add(time.Millisecond))
			m, known := c.members[e.win.who.ID]
			if !known {
				at(e.win.received.Add(c.cfg.ClaimTimeout))
			} else if m.State == heartbeat.Unreachable {
				at(m.Fence)
			}
		}
	}
	// Our own claim.
	if m := e.mine; m != nil {
		won := e.win != nil && !e.winFailed && e.win.who == c.cfg.Self && e.win.epoch == m.epoch
		waiting := !won && (m.dead || m.seen.IsZero())
		switch {
		case !m.dead && e.win != nil && !e.winFailed && !won && m.epoch <= e.win.epoch:
			// A higher claim won.
			if m.running {
				c.stats.Cancelled++
				c.emit(Action{Kind: Cancel, Event: e.id, Epoch: m.epoch, Reason: "claim lost to " + e.win.who.ID})
			}
			c.dropMine(e)
		case waiting && now.Sub(m.sent) >= c.cfg.ClaimTimeout:
			// Our claim or dead-letter marker never came back: let the
			// epoch pass on.
			c.dropMine(e)
		case waiting:
			at(m.sent.Add(c.cfg.ClaimTimeout))
		case !won:
			c.dropMine(e)
		case won:
			if !m.running && !m.acking && !m.seen.IsZero() {
				if start := m.seen.Add(c.cfg.Settle); !now.Before(start) {
					m.running = true
					c.stats.Started++
					c.emit(Action{Kind: Start, Event: e.id, Epoch: m.epoch, Attempt: m.attempt,
						Token: Token(m.epoch, Weight(e.id, c.cfg.Self.ID))})
				} else {
					at(start)
				}
			}
			if !now.Before(m.renewAt) {
				c.renew(e, now)
			}
			at(m.renewAt)
			at(m.leaseEnd.Add(time.Millisecond))
			if !c.session.IsZero() {
				at(c.session)
			}
		}
	}
	// No live winner: whose turn is it?
	if e.mine == nil && (e.win == nil || e.winFailed) {
		switch {
		case now.Before(e.notBefore):
			at(e.notBefore)
		default:
			if !c.quorum {
				break // nobody on this side may claim: the epoch does not pass
			}
			if e.slotStart.Before(c.rejoinUntil) {
				// Nobody claims during a rejoin: the owner's time starts
				// after it (§6.14).
				e.slotStart = c.rejoinUntil
			}
			if now.Sub(e.slotStart) >= c.cfg.ClaimTimeout {
				// The owner of this epoch did not claim: pass it on.
				e.epoch++
				e.slotStart = now
			}
			c.skipAway(e, now)
			at(e.slotStart.Add(c.cfg.ClaimTimeout))
			if c.owner(e) == c.cfg.Self.ID {
				if c.mayClaim(e, now) {
					c.claim(e, now)
					at(now.Add(c.cfg.ClaimTimeout))
				} else if now.Before(c.rejoinUntil) {
					at(c.rejoinUntil)
				}
			}
		}
	}
	if !due.IsZero() && !due.After(now) {
		due = now.Add(time.Millisecond) // never a timer in the past: Tick would spin
	}
	if !due.IsZero() && !due.Equal(e.due) && !(e.due.After(now) && e.due.Before(due)) {
		// (An earlier timer already set stays: it re-evaluates then.)
		e.due = due
		c.timerSeq++
		c.timers.push(timer{at: due, seq: c.timerSeq, id: e.id})
		if len(c.timers) > 2*c.pendingCount()+1024 {
			c.compactTimers()
		}
	}
}

func (c *Core) mayClaim(e *event, now time.Time) bool {
	if !c.ready || !e.hasEvent || !c.quorum || now.Before(c.rejoinUntil) {
		return false
	}
	if !c.session.IsZero() && !now.Before(c.session) {
		return false
	}
	return c.cfg.MaxInFlight <= 0 || c.inFlight < c.cfg.MaxInFlight
}

func (c *Core) claim(e *event, now time.Time) {
	c.inFlight++
	if int(e.attempts) >= c.cfg.MaxAttempts {
		e.mine = &own{epoch: e.epoch, sent: now, dead: true}
		c.emit(Action{Kind: SendDead, Event: e.id, Epoch: e.epoch, Attempt: e.attempts, Reasons: slices.Clone(e.reasons)})
		return
	}
	e.mine = &own{epoch: e.epoch, attempt: e.attempts + 1, sent: now}
	c.stats.Claims++
	c.renew(e, now)
}

// renew (re)posts our claim and extends our lease from now.
func (c *Core) renew(e *event, now time.Time) {
	m := e.mine
	if !m.sent.Equal(now) {
		c.stats.Renewals++
	}
	m.leaseEnd = now.Add(c.cfg.Lease)
	m.renewAt = now.Add(c.cfg.Lease / 2)
	c.emit(Action{Kind: SendClaim, Event: e.id, Epoch: m.epoch, Attempt: m.attempt, Lease: c.cfg.Lease})
}

// Info describes one tracked event, for tools.
type Info struct {
	Event    envelope.ID
	Key      string
	Seen     bool // the event itself was seen
	Outcome  Outcome
	Epoch    uint64
	Attempts uint32
	// Owner is the winning claimant (or who completed it); Until its lease.
	Owner   Claimant
	Until   time.Time
	Mine    bool // this member holds the claim
	Running bool
	Reasons []string
	First   time.Time
}

// Snapshot returns every tracked event, oldest first.
func (c *Core) Snapshot() []Info {
	out := make([]Info, 0, len(c.events))
	for _, e := range c.events {
		in := Info{Event: e.id, Key: e.key, Seen: e.hasEvent, Outcome: e.outcome, Epoch: e.epoch,
			Attempts: e.attempts, Reasons: slices.Clone(e.reasons), First: e.first}
		switch {
		case e.outcome != Pending:
			in.Owner, in.Epoch = e.by, e.byEpoch
		case e.win != nil && !e.winFailed:
			in.Owner, in.Until = e.win.who, e.win.until
		}
		if e.mine != nil {
			in.Mine, in.Running = true, e.mine.running
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := a.First.Compare(b.First); c != 0 {
			return c
		}
		return cmp.Compare(a.Event.String(), b.Event.String())
	})
	return out
}

// Status returns what is known of one event.
func (c *Core) Status(id envelope.ID) (Outcome, Claimant, uint64, bool) {
	e := c.events[id]
	if e == nil {
		return Pending, Claimant{}, 0, false
	}
	return e.outcome, e.by, e.byEpoch, true
}

type timer struct {
	at  time.Time
	seq uint64 // timers due at once fire in the order they were set
	id  envelope.ID
}

// compactTimers drops the timers that no longer match their event's due
// time (superseded, or of events completed or forgotten): they pile up at
// high rates until their time comes.
func (c *Core) compactTimers() {
	live := c.timers[:0]
	for _, t := range c.timers {
		if e := c.events[t.id]; e != nil && e.outcome == Pending && e.due.Equal(t.at) {
			live = append(live, t)
		}
	}
	clear(c.timers[len(live):])
	c.timers = live
	slices.SortFunc(c.timers, func(a, b timer) int { // a sorted slice is a heap
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
}

// timerHeap is a min-heap of timers (typed: no boxing per push).
type timerHeap []timer

func (h timerHeap) less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}

func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *timerHeap) pop() timer {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q.less(l, m) {
			m = l
		}
		if r < len(q) && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

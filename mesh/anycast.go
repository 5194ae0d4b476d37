package mesh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Anycast delivery: each event of the topic is completed by exactly one
// live member of the group (docs/PROTOCOL.md §6). The node runs one
// claims.Core per anycast subscription; the connection's reader feeds it
// events and the group's claims, acks, nacks and dead-letter markers, the
// heartbeat loop feeds it membership and the node's own session, and a
// goroutine per subscription sends what it asks for, batched, and runs its
// timers.

// AnycastSubscription is an anycast subscription to one topic: each event
// is completed by exactly one live member of its group. Topic, Delivered,
// Dropped, Failed, Pending and Unsubscribe are those of every subscription.
type AnycastSubscription struct {
	*subscription
	a *anycast
}

// SubscribeAnycast joins topic's channel as a member of an anycast group
// (default: the service's name; see Group) and runs h for the events of
// the topic this member claims: each event is delivered to exactly one
// live member of the group, which claims it, runs the handler and
// acknowledges it (docs/PROTOCOL.md §6). A handler error (or panic) nacks
// the event: it is retried, by another member when there is one, after
// RetryDelay, and after MaxAttempts failed attempts it goes to the
// dead-letter topic <topic>._dead. A member that dies, freezes or leaves
// has its claims taken over. With Config.History the member first replays
// the group's record from its committed offset, so events published while
// the whole group was away are completed once.
//
// It returns once the server confirmed the join; the member starts
// claiming once the group has heard of it (about a heartbeat interval).
func (n *Node) SubscribeAnycast(ctx context.Context, topic string, h Handler, opts ...SubOption) (*AnycastSubscription, error) {
	o := n.options(opts)
	if o.group == "" {
		o.group = n.cfg.Service
	}
	if err := ValidateGroup(o.group); err != nil {
		return nil, err
	}
	sub := &AnycastSubscription{}
	s, err := n.subscribe(ctx, topic, h, &o, func(s *subscription) (mode, error) {
		sub.a = newAnycast(n, s, &o)
		return sub.a, nil
	})
	if err != nil {
		return nil, err
	}
	sub.subscription = s
	return sub, nil
}

// Group names the anycast group (default: the service name). Instances of
// any service that subscribe to a topic with the same group share its
// events.
func Group(name string) SubOption {
	return func(o *subOptions) { o.group = name; o.anycastOnly("Group") }
}

// ByKey routes events by key instead of by id: while membership is stable,
// every event with the same key goes to the same instance, so with
// Concurrency(1) events of one key are handled in order (like a
// partition).
func ByKey(key func(*Message) string) SubOption {
	return func(o *subOptions) { o.key = key; o.anycastOnly("ByKey") }
}

// ClaimLease is how long a claim holds without renewal (default 30 s);
// the node renews it at half the lease while the handler runs, so it
// bounds only how long a member that stopped renewing blocks the event.
func ClaimLease(d time.Duration) SubOption {
	return func(o *subOptions) { o.lease = d; o.anycastOnly("ClaimLease") }
}

// MaxAttempts is how many failed attempts send an event to the dead-letter
// topic (default 5).
func MaxAttempts(n int) SubOption {
	return func(o *subOptions) { o.maxAttempts = n; o.anycastOnly("MaxAttempts") }
}

// RetryDelay is how long a nacked event waits before its next attempt
// (default 1 s). A handler can choose per event by returning RetryAfter.
func RetryDelay(d time.Duration) SubOption {
	return func(o *subOptions) { o.retry = d; o.anycastOnly("RetryDelay") }
}

// RetryAfter wraps a handler error to ask for the next attempt after d.
func RetryAfter(d time.Duration, err error) error { return &retryError{d: d, err: err} }

type retryError struct {
	d   time.Duration
	err error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// RetryDelayOf returns the delay a RetryAfter error asks for.
func RetryDelayOf(err error) (time.Duration, bool) {
	var re *retryError
	if errors.As(err, &re) {
		return re.d, true
	}
	return 0, false
}

// Claim is what an anycast handler holds: its Token is the fencing token
// to hand to the stores it writes to, which should refuse a token lower
// than one they have seen for the event (docs/PROTOCOL.md §6.6).
type Claim struct {
	Group string
	// Epoch grows with every takeover; Attempt counts attempts, from 1.
	Epoch   uint64
	Attempt uint32
	// Token orders claims of one event as they win.
	Token uint64
}

// ClaimStats counts an anycast subscription's claims work.
type ClaimStats = claims.Stats

// codeReleased in a NACK's error says the claimant gave the event back
// without failing it (it is shutting down): no attempt is counted.
const codeReleased = 1

// maxGroupLen bounds group names.
const maxGroupLen = 64

// ValidateGroup checks an anycast group name: 1 to 64 bytes, no spaces,
// commas or control characters.
func ValidateGroup(g string) error {
	if g == "" || len(g) > maxGroupLen {
		return fmt.Errorf("mesh: group %q: 1 to %d bytes", g, maxGroupLen)
	}
	for _, r := range g {
		if r <= ' ' || r == 0x7f || r == ',' {
			return fmt.Errorf("mesh: group %q: no spaces, commas or control characters", g)
		}
	}
	return nil
}

type anycast struct {
	n     *Node
	s     *subscription
	group string
	key   func(*Message) string
	retry time.Duration
	lease time.Duration

	mu       sync.Mutex
	core     *claims.Core
	msgs     map[envelope.ID]*Message
	cancels  map[envelope.ID]context.CancelFunc
	claimOut []claims.Item
	ackOut   []claims.Item
	others   []claims.Action // nacks and dead letters
	connCtx  context.Context
	connStop context.CancelFunc
	wake     chan struct{}
	quit     chan struct{} // closed when the subscription's workers are done
	done     chan struct{} // closed when run returns
	sent     atomic.Uint64 // claim-protocol envelopes sent
	finish   func(*Message, error)

	lastMembers []claims.Member

	// Consensus offsets (docs/PROTOCOL.md §6.13), guarded by mu.
	prefix      *claims.Prefix
	cons        claims.Consensus
	claimedOff  envelope.Offset   // our last HistoryClaim
	claimedComm envelope.Offset   // the committed offset it carried
	behind      []envelope.Offset // offsets of events passed by the prefix, oldest first
	behindIDs   []envelope.ID
	votesOut    []vote // acks and rejects to send

	resumed ResumeInfo // guarded by mu
}

// ResumeInfo says how an anycast subscription resumed from history
// (docs/PROTOCOL.md §6.12) before it claimed anything.
type ResumeInfo struct {
	// Done: the history was replayed into the claims core.
	Done bool
	// FromCommitted: the replay started at the group's committed offset
	// found in the record (less a margin); else at Config.ResumeWindow ago.
	FromCommitted bool
	// Committed is that offset (zero without one).
	Committed     envelope.Offset
	Since         time.Time
	Events, Lines int // events and claims lines replayed
	Err           error
}

// vote is a HistoryAck or HistoryReject to send.
type vote struct {
	claim  envelope.ID
	offset envelope.Offset
	ok     bool
}

func newAnycast(n *Node, s *subscription, o *subOptions) *anycast {
	a := &anycast{
		n:       n,
		s:       s,
		group:   o.group,
		key:     o.key,
		retry:   o.retry,
		msgs:    make(map[envelope.ID]*Message),
		cancels: make(map[envelope.ID]context.CancelFunc),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if a.retry <= 0 {
		a.retry = time.Second
	}
	a.core = claims.New(claims.Config{
		Self:        a.self(),
		Lease:       o.lease,
		MaxAttempts: o.maxAttempts,
		MaxInFlight: cap(s.q),
	})
	a.lease = a.core.Config().Lease
	a.prefix = claims.NewPrefix(a.core.Config().MaxEvents)
	a.connCtx, a.connStop = context.WithCancel(context.Background())
	a.finish = a.finished
	go a.run()
	return a
}

// line takes the topic's events and the claims lines of the group.
func (a *anycast) line(in *inbound) bool {
	switch in.env.Kind {
	case envelope.KindEvent:
		a.event(newMessage(a.s.topic, in))
	case envelope.KindClaim, envelope.KindAck, envelope.KindNack, envelope.KindDeadLetter,
		envelope.KindHistoryClaim, envelope.KindHistoryAck, envelope.KindHistoryReject:
		if in.env.Topic == a.group {
			a.claimsLine(in)
		}
	default:
		return false
	}
	return true
}

func (a *anycast) membership(all []heartbeat.Member, force bool) { a.members(all, force) }

func (a *anycast) session(until time.Time) {
	a.input(func(c *claims.Core, now time.Time) []claims.Action { return c.Session(until, now) })
}

func (a *anycast) connection(up bool, _ time.Time) {
	if !up {
		a.reset()
	}
}

func (a *anycast) announce() heartbeat.Sub { return heartbeat.Sub{Topic: a.s.topic, Group: a.group} }

// joined: announce the group now; claim once everyone has heard us and we
// them (a heartbeat interval and a bit), and once the group's recent
// history is replayed into the core, when there is history.
func (a *anycast) joined() {
	n := a.n
	n.beatSoon()
	warm := time.After(n.cfg.HeartbeatInterval * 6 / 5)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if b := n.cfg.History; b != nil {
			a.resume(b, time.Now().Add(-n.cfg.ResumeWindow))
		}
		select {
		case <-warm:
		case <-a.s.ctx.Done():
			return
		}
		a.input(func(c *claims.Core, now time.Time) []claims.Action { return c.SetReady(true, now) })
	}()
}

func (a *anycast) stopping() {
	a.input(func(c *claims.Core, now time.Time) []claims.Action { return c.SetReady(false, now) })
}

func (a *anycast) stopped() { a.stop() }

// offsetOf is the offset of an event's line.
func offsetOf(m *Message) envelope.Offset {
	at := m.ServerTime
	if at.IsZero() {
		at = time.Now()
	}
	return envelope.OffsetAt(at, m.MsgID)
}

// liveIDsLocked returns the alive members of the group. a.mu is held.
func (a *anycast) liveIDsLocked() []string {
	var ids []string
	for _, m := range a.lastMembers {
		if m.State == heartbeat.Alive {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// advanceLocked moves our completed prefix, and with a committed offset
// drops from the core the completed events behind it. It returns the
// prefix. a.mu is held.
func (a *anycast) advanceLocked() envelope.Offset {
	prefix, passed := a.prefix.Advance(func(id envelope.ID) bool {
		o, _, _, ok := a.core.Status(id)
		return !ok || o != claims.Pending
	})
	a.behindIDs = append(a.behindIDs, passed...)
	committed := a.cons.Commit(a.liveIDsLocked())
	n := claims.Covered(a.behind[:len(a.behindIDs)], committed)
	for _, id := range a.behindIDs[:n] {
		a.core.Forget(id)
	}
	a.behind, a.behindIDs = a.behind[n:], a.behindIDs[n:]
	return prefix
}

// Committed returns the group's committed offset as this member has seen
// it: every event of the topic up to that line is completed (zero: none
// yet). Members commit every Config.CommitInterval.
func (s *AnycastSubscription) Committed() envelope.Offset {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.a.cons.Committed()
}

func (a *anycast) self() claims.Claimant {
	return claims.Claimant{ID: a.n.cfg.Service + "/" + a.n.Instance(), Incarnation: a.n.incarnation}
}

// input runs f on the core and carries out its actions.
func (a *anycast) input(f func(c *claims.Core, now time.Time) []claims.Action) {
	a.mu.Lock()
	acts := f(a.core, time.Now())
	a.applyLocked(acts)
	a.mu.Unlock()
	if len(acts) > 0 {
		a.poke()
	}
}

func (a *anycast) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *anycast) applyLocked(acts []claims.Action) {
	for _, act := range acts {
		switch act.Kind {
		case claims.SendClaim:
			a.claimOut = append(a.claimOut, claims.Item{Event: act.Event, Epoch: act.Epoch, Attempt: act.Attempt})
		case claims.SendAck:
			a.ackOut = append(a.ackOut, claims.Item{Event: act.Event, Epoch: act.Epoch})
		case claims.SendNack, claims.SendDead:
			a.others = append(a.others, act)
		case claims.Start:
			m := a.msgs[act.Event]
			if m == nil {
				continue // cannot happen: the core starts only events it saw
			}
			ctx, cancel := context.WithCancel(a.s.ctx)
			a.cancels[act.Event] = cancel
			mm := *m
			mm.Claim = &Claim{Group: a.group, Epoch: act.Epoch, Attempt: act.Attempt, Token: act.Token}
			mm.ctx, mm.finish = ctx, a.finish
			select {
			case a.s.q <- &mm:
			default:
				// The queue holds MaxInFlight: the core never starts more.
				cancel()
				a.n.log.Error("anycast queue full", "topic", a.s.topic, "id", act.Event.Short())
			}
		case claims.Cancel:
			if cancel := a.cancels[act.Event]; cancel != nil {
				cancel()
				delete(a.cancels, act.Event)
			}
			a.n.log.Debug("claim lost", "topic", a.s.topic, "group", a.group, "id", act.Event.Short(), "reason", act.Reason)
		}
	}
}

// forgetDone drops the payload of an event the core no longer needs.
func (a *anycast) forgetDone(id envelope.ID) {
	if o, _, _, ok := a.core.Status(id); !ok || o != claims.Pending {
		delete(a.msgs, id)
	}
}

// event: an event arrived in the topic's channel.
func (a *anycast) event(m *Message) {
	key := ""
	if a.key != nil {
		key = a.safeKey(m)
	}
	a.mu.Lock()
	o, _, _, known := a.core.Status(m.ID)
	if known && o != claims.Pending {
		a.mu.Unlock()
		return // completed before we saw it: a late or repeated copy
	}
	a.msgs[m.ID] = m
	acts := a.core.Event(m.ID, key, time.Now())
	a.applyLocked(acts)
	if _, _, _, ok := a.core.Status(m.ID); !ok {
		delete(a.msgs, m.ID) // refused: over MaxEvents
	} else if !known {
		if off := offsetOf(m); a.prefix.Seen(m.ID, off) {
			a.behind = append(a.behind, off) // behindIDs follows as the prefix passes them
		}
	}
	a.mu.Unlock()
	if len(acts) > 0 {
		a.poke()
	}
}

func (a *anycast) safeKey(m *Message) (key string) {
	defer func() {
		if r := recover(); r != nil {
			a.n.log.Warn("ByKey function panicked; routing by id", "topic", a.s.topic, "id", m.ID.Short(), "panic", r)
			key = ""
		}
	}()
	return a.key(m)
}

// claimsLine: a claim, ack, nack or dead marker of our group arrived.
func (a *anycast) claimsLine(in *inbound) {
	env := in.env
	who := claims.Claimant{ID: env.Sender.Service + "/" + env.Sender.Instance, Incarnation: env.Sender.Incarnation}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck:
		items, err := claims.DecodeItems(env.Payload)
		if err != nil {
			a.n.stats.rejected.Add(1)
			a.n.countReject("malformed")
			a.n.log.Debug("bad claims line", "from", in.from, "err", err)
			return
		}
		lease := time.Duration(env.LeaseMillis) * time.Millisecond
		for _, it := range items {
			if env.Kind == envelope.KindClaim {
				a.applyLocked(a.core.Claim(who, it, lease, now))
			} else {
				a.applyLocked(a.core.Ack(who, it, now))
				a.forgetDone(it.Event)
			}
		}
	case envelope.KindNack:
		reason := ""
		if env.Error != nil {
			reason = env.Error.Message
		}
		it := claims.Item{Event: env.Correlation, Epoch: env.Epoch}
		if env.Error != nil && env.Error.Code == codeReleased {
			a.applyLocked(a.core.Released(who, it, now))
		} else {
			a.applyLocked(a.core.Nack(who, it, time.Duration(env.LeaseMillis)*time.Millisecond, reason, now))
		}
	case envelope.KindDeadLetter:
		it := claims.Item{Event: env.Correlation, Epoch: env.Epoch}
		a.applyLocked(a.core.Dead(who, it, now))
		a.forgetDone(it.Event)
	case envelope.KindHistoryClaim, envelope.KindHistoryAck, envelope.KindHistoryReject:
		var off envelope.Offset
		var err error
		if env.Kind == envelope.KindHistoryClaim {
			off, _, err = claims.DecodeHistoryClaim(env.Payload)
		} else {
			off, err = claims.DecodeOffset(env.Payload)
		}
		if err != nil {
			a.n.countReject("malformed")
			return
		}
		if env.Kind == envelope.KindHistoryClaim {
			a.cons.Claim(env.ID, who.ID, off)
		} else { // our own votes count too (they come back as echoes or confirms)
			a.cons.Vote(env.Correlation, who.ID, env.Kind == envelope.KindHistoryAck)
		}
		a.advanceLocked()
		if env.Kind == envelope.KindHistoryClaim && who.ID != a.self().ID {
			a.votesOut = append(a.votesOut, vote{claim: env.ID, offset: off, ok: a.prefix.Reaches(off)})
		}
	}
	a.poke()
}

// finished: a handler returned.
func (a *anycast) finished(m *Message, err error) {
	retry := a.retry
	if d, ok := RetryDelayOf(err); ok {
		retry = d
	}
	a.mu.Lock()
	if cancel := a.cancels[m.ID]; cancel != nil {
		cancel()
		delete(a.cancels, m.ID)
	}
	if err == nil || a.s.ctx.Err() == nil {
		a.applyLocked(a.core.Done(m.ID, m.Claim.Epoch, err, retry, time.Now()))
	}
	// Else the subscription is stopping and cut the handler short: not the
	// event's fault; stop releases the claim.
	a.mu.Unlock()
	a.poke()
}

// reset: the connection dropped; see claims.Core.Reset.
func (a *anycast) reset() {
	a.mu.Lock()
	a.applyLocked(a.core.Reset(time.Now()))
	clear(a.msgs)
	a.claimOut, a.ackOut, a.others, a.votesOut = nil, nil, nil, nil
	// What we saw before the drop may be incomplete: our prefix starts
	// again (the committed offset, known to all, stays).
	a.prefix = claims.NewPrefix(a.core.Config().MaxEvents)
	// Events the prefix passed are completed: they stay, to be dropped
	// once the committed offset passes them; the rest is forgotten.
	a.behind = a.behind[:len(a.behindIDs)]
	a.connStop()
	a.connCtx, a.connStop = context.WithCancel(context.Background())
	a.mu.Unlock()
}

// members feeds the group's members from the heartbeat view, when they
// changed or with force.
func (a *anycast) members(all []heartbeat.Member, force bool) {
	var ms []claims.Member
	for _, m := range all {
		for _, s := range m.Beat.Subs {
			if s.Group == a.group && strings.EqualFold(s.Topic, a.s.topic) {
				ms = append(ms, claims.Member{Claimant: claims.Claimant{ID: m.Service + "/" + m.Instance, Incarnation: m.Incarnation}, State: m.State})
				break
			}
		}
	}
	a.mu.Lock()
	same := slices.Equal(ms, a.lastMembers)
	a.lastMembers = ms
	a.mu.Unlock()
	if same && !force {
		return
	}
	a.input(func(c *claims.Core, now time.Time) []claims.Action { return c.Members(ms, now) })
}

// run sends what the core asks for and runs its timers, until the
// subscription stops.
func (a *anycast) run() {
	defer close(a.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	commit := time.NewTicker(a.n.cfg.CommitInterval)
	defer commit.Stop()
	for {
		a.mu.Lock()
		next := a.core.Next()
		a.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		t.Reset(wait)
		select {
		case <-a.wake:
		case <-t.C:
			a.input(func(c *claims.Core, now time.Time) []claims.Action { return c.Tick(now) })
		case <-commit.C:
			a.claimOffset()
		case <-a.quit:
			a.flush() // the acks of the last handlers
			return
		case <-a.n.done:
			return
		}
		a.flush()
	}
}

// claimOffset posts a HistoryClaim when our completed prefix moved.
func (a *anycast) claimOffset() {
	a.mu.Lock()
	prefix := a.advanceLocked()
	committed := a.cons.Committed()
	// A claim goes out when the prefix moved, and also when only the
	// committed offset did: the last claim in the record then carries the
	// group's latest commit, where a member resuming looks for it (§6.12).
	if prefix.IsZero() || (!a.claimedOff.Before(prefix) && !a.claimedComm.Before(committed)) {
		a.mu.Unlock()
		return
	}
	a.claimedOff, a.claimedComm = prefix, committed
	ctx := a.connCtx
	a.mu.Unlock()
	payload, err := claims.EncodeHistoryClaim(prefix, committed)
	if err != nil {
		return
	}
	env := envelope.New(envelope.KindHistoryClaim, a.n.sender(), a.group, payload, time.Now())
	a.mu.Lock()
	a.cons.Claim(env.ID, a.self().ID, prefix)
	a.mu.Unlock()
	if _, err := a.n.send(ctx, a.s.channel, env); err != nil {
		a.n.log.Debug("history claim not sent", "topic", a.s.topic, "err", err)
	}
}

// stop ends run once the subscription's workers are done; the acks they
// produced are sent first, and the claims we still hold are released so
// that the other members take them over at once.
func (a *anycast) stop() {
	a.input(func(c *claims.Core, now time.Time) []claims.Action { return c.ReleaseAll(now) })
	close(a.quit)
	<-a.done
}

// flush sends the queued claims and acks, as few envelopes as fit, and
// waits for the server to take them: what queues meanwhile goes out in the
// next batch (one batch in flight: batches grow with the rate).
func (a *anycast) flush() {
	a.mu.Lock()
	claimsOut, acks, others, votes, ctx := a.claimOut, a.ackOut, a.others, a.votesOut, a.connCtx
	a.claimOut, a.ackOut, a.others, a.votesOut = nil, nil, nil, nil
	a.mu.Unlock()
	var jobs []*job
	send := func(env *envelope.Envelope) {
		j, err := a.n.send(ctx, a.s.channel, env)
		if err != nil {
			a.n.log.Debug("claims line not sent", "topic", a.s.topic, "kind", env.Kind, "err", err)
			return
		}
		a.sent.Add(1)
		jobs = append(jobs, j)
	}
	now := time.Now()
	for _, batch := range []struct {
		kind  envelope.Kind
		items []claims.Item
	}{{envelope.KindClaim, claimsOut}, {envelope.KindAck, acks}} {
		kind, items := batch.kind, batch.items
		for len(items) > 0 {
			k := min(len(items), claims.MaxItems)
			payload, err := claims.EncodeItems(items[:k])
			items = items[k:]
			if err != nil {
				a.n.log.Error("encoding claims", "err", err)
				continue
			}
			env := envelope.New(kind, a.n.sender(), a.group, payload, now)
			if kind == envelope.KindClaim {
				env.LeaseMillis = uint32(a.lease / time.Millisecond)
			}
			send(env)
		}
	}
	for _, act := range others {
		switch act.Kind {
		case claims.SendNack:
			env := envelope.New(envelope.KindNack, a.n.sender(), a.group, nil, now)
			env.Correlation, env.Epoch = act.Event, act.Epoch
			env.LeaseMillis = uint32(min(act.Lease, time.Duration(1<<32-1)*time.Millisecond) / time.Millisecond)
			env.Error = &envelope.Error{Message: clipReason(act.Reason)}
			if act.Release {
				env.Error.Code = codeReleased
			}
			send(env)
		case claims.SendDead:
			a.deadLetter(ctx, act)
			env := envelope.New(envelope.KindDeadLetter, a.n.sender(), a.group, nil, now)
			env.Correlation, env.Epoch, env.Attempt = act.Event, act.Epoch, act.Attempt
			env.Error = &envelope.Error{Message: clipReason(strings.Join(act.Reasons, "; "))}
			send(env)
		}
	}
	for _, v := range votes {
		kind := envelope.KindHistoryReject
		if v.ok {
			kind = envelope.KindHistoryAck
		}
		payload, err := claims.EncodeOffset(v.offset)
		if err != nil {
			continue
		}
		env := envelope.New(kind, a.n.sender(), a.group, payload, now)
		env.Correlation = v.claim
		send(env)
	}
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-ctx.Done():
			return
		case <-a.n.done:
			return
		}
	}
}

// deadLetter publishes a given-up event on the dead-letter topic.
func (a *anycast) deadLetter(ctx context.Context, act claims.Action) {
	a.mu.Lock()
	m := a.msgs[act.Event]
	a.mu.Unlock()
	if m == nil {
		return
	}
	payload, err := claims.EncodeDeadLetter(&claims.DeadLetter{Topic: a.s.topic, Group: a.group, Event: m.Envelope,
		Attempts: act.Attempt, Reasons: act.Reasons})
	if err == nil {
		_, err = a.n.Publish(ctx, claims.DeadTopic(a.s.topic), payload)
	}
	if err != nil {
		a.n.log.Error("dead letter not published", "topic", a.s.topic, "id", act.Event.Short(), "err", err)
		return
	}
	a.n.log.Warn("event dead-lettered", "topic", a.s.topic, "group", a.group, "id", act.Event.Short(), "attempts", act.Attempt)
}

func clipReason(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// ClaimStats returns the subscription's claims counters.
func (s *AnycastSubscription) ClaimStats() ClaimStats {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.a.core.Stats()
}

// Resumed says how the subscription resumed from history (zero without
// Config.History, or before it finished).
func (s *AnycastSubscription) Resumed() ResumeInfo {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.a.resumed
}

// Group returns the anycast group.
func (s *AnycastSubscription) Group() string { return s.a.group }

// resumeMargin is how far before the committed offset a resume starts:
// lines near it may be in another order in the record than in the
// claimant's view (a linked network), and on a server without msgids an
// offset is only the claimant's clock. Events replayed from the margin
// come with their acks, so the group does not run them again.
const resumeMargin = 5 * time.Second

// resume replays the topic's history into the core before the member
// claims anything: from the group's committed offset in the record (less
// resumeMargin) when the backfiller finds one, else from the window's
// start. Events the group completed stay completed (their acks are in the
// record), and events nobody completed — published while the whole group
// was down, or held by members that died — are pending again and get
// claimed.
func (a *anycast) resume(b HistorySource, window time.Time) {
	ctx, cancel := context.WithTimeout(a.s.ctx, a.n.cfg.BackfillTimeout)
	defer cancel()
	since, start := window, "window"
	committed, err := b.Committed(ctx, a.n, a.s.topic, a.group)
	switch {
	case err != nil:
		a.n.log.Warn("anycast: no committed offset from history; resuming from the window", "topic", a.s.topic, "group", a.group, "err", err)
	case !committed.IsZero():
		a.mu.Lock()
		a.cons.Resume(committed)
		a.resumed.FromCommitted, a.resumed.Committed = true, committed
		a.mu.Unlock()
		since, start = committed.At().Add(-resumeMargin), "committed offset"
	}
	var events, lines int
	count, err := b.Replay(ctx, a.n, a.s.topic, since, func(r Recorded) error {
		env, at := r.Envelope, r.Offset.At()
		switch env.Kind {
		case envelope.KindEvent:
			events++
			a.event(&Message{Topic: a.s.topic, ID: env.ID, Payload: env.Payload, Headers: env.Headers,
				Sender: env.Sender, SentAt: env.SentAt(), ServerTime: at, MsgID: r.Offset.MsgID, From: r.Nick, Envelope: env})
		case envelope.KindClaim, envelope.KindAck, envelope.KindNack, envelope.KindDeadLetter:
			if env.Topic == a.group {
				lines++
				a.claimsLine(&inbound{env: env, from: r.Nick, target: a.s.channel, serverTime: at, msgid: r.Offset.MsgID})
			}
		}
		return nil
	})
	a.n.warnRejected("anycast: resuming from history", a.s.topic, count)
	a.mu.Lock()
	a.resumed.Since, a.resumed.Events, a.resumed.Lines = since, events, lines
	a.resumed.Done, a.resumed.Err = err == nil, err
	a.mu.Unlock()
	if err != nil {
		a.n.log.Warn("anycast: the group's history could not be replayed; events published while the group was away may be missing",
			"topic", a.s.topic, "group", a.group, "err", err)
		return
	}
	a.n.log.Info("anycast: resumed from history", "topic", a.s.topic, "group", a.group, "from", start, "since", since, "events", events, "claims-lines", lines)
}

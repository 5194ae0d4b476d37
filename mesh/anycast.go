package mesh

import (
	"context"
	"sync"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/wait"
)

// Anycast delivery: each event of the topic is completed by exactly one
// live member of the group (docs/PROTOCOL.md §6). The protocol is
// claims.Group, whole; this file is its driver. The connection's reader
// feeds the Group the channel's lines, the heartbeat loop the membership
// and the node's session, the workers their handlers' results; handlers
// are started and cancelled as soon as the Group says so, and one
// goroutine per subscription (run) sends what it asks for, one batch in
// flight, runs its timers and its commit tick.

// anycast drives one member's claims.Group. mu guards the Group, the
// handlers' cancel funcs, the connection's context and resumed; it is a
// leaf lock (nothing blocks under it: handler queueing never waits).
type anycast struct {
	n      *Node
	s      *subscription
	group  string
	key    func(*Message) string
	retry  time.Duration
	finish func(*Message, error)

	mu       sync.Mutex
	g        *claims.Group
	cancels  map[envelope.ID]running
	connCtx  context.Context // ends with the connection: its sends are dropped
	connStop context.CancelFunc
	holed    bool // reset since the last connection: refill from history
	resumed  ResumeInfo

	resuming sync.Mutex // one replay of the record at a time

	wake chan struct{}
	quit chan struct{} // closed when the subscription's workers are done
	done chan struct{} // closed when run returns
}

// running is a started handler: the epoch of its claim and its cancel.
type running struct {
	epoch  uint64
	cancel context.CancelFunc
}

func newAnycast(n *Node, s *subscription, o *subOptions) *anycast {
	a := &anycast{n: n, s: s, group: o.group, key: o.key, retry: o.retry,
		cancels: make(map[envelope.ID]running),
		wake:    make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if a.retry <= 0 {
		a.retry = time.Second
	}
	a.g = claims.NewGroup(claims.GroupConfig{
		Config: claims.Config{Lease: o.lease, MaxAttempts: o.maxAttempts, MaxInFlight: cap(s.q),
			Retain: o.retain, MaxEvents: o.maxTracked},
		Topic: s.topic, Group: o.group, Sender: n.sender(),
	})
	a.connCtx, a.connStop = context.WithCancel(context.Background())
	a.finish = a.finished
	go a.run()
	return a
}

// step runs one input of the Group at the time now, then starts and
// cancels the handlers it asks for, and wakes run to send the rest.
func (a *anycast) step(input func(now time.Time)) {
	a.mu.Lock()
	input(time.Now())
	a.handlersLocked(a.g.Handlers())
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// handlersLocked carries out rd's cancels, starts and malformed lines.
func (a *anycast) handlersLocked(rd claims.Ready) {
	for _, bad := range rd.Malformed {
		a.n.stats.rejected.Add(1)
		a.n.countReject("malformed")
		a.n.log.Debug("bad claims line", "from", bad.From, "kind", bad.Kind, "err", bad.Err)
	}
	for _, c := range rd.Cancel {
		if r, ok := a.cancels[c.Event]; ok && r.epoch == c.Epoch {
			r.cancel()
			delete(a.cancels, c.Event)
		}
		a.n.log.Debug("claim lost", "topic", a.s.topic, "group", a.group, "id", c.Event.Short(), "reason", c.Reason)
	}
	for _, st := range rd.Start {
		r := st.Event
		m := newMessage(a.s.topic, &inbound{env: r.Envelope, from: r.From, serverTime: r.ServerTime, msgid: r.MsgID})
		m.Claim = &Claim{Group: a.group, Epoch: st.Epoch, Attempt: st.Attempt, Token: st.Token}
		ctx, cancel := context.WithCancel(a.s.ctx)
		m.ctx, m.finish = ctx, a.finish
		select {
		case a.s.q <- m:
			a.cancels[m.ID] = running{st.Epoch, cancel}
		default:
			// The queue holds MaxInFlight: the Group never starts more.
			cancel()
			a.n.log.Error("anycast queue full", "topic", a.s.topic, "id", m.ID.Short())
		}
	}
}

// line takes the topic's events and the claims lines of the groups.
func (a *anycast) line(in *inbound) bool {
	if !claims.OfProtocol(in.env.Kind) {
		return false
	}
	r := a.received(in)
	a.step(func(now time.Time) { a.g.Receive(r, now) })
	return true
}

// received is a line as the Group takes it; an event gets its key (ByKey).
func (a *anycast) received(in *inbound) claims.Received {
	from, msgid := detach(in.from, in.msgid) // subscribe.go: the line's text is not kept
	r := claims.Received{Envelope: in.env, From: from, ServerTime: in.serverTime, MsgID: msgid}
	if in.env.Kind == envelope.KindEvent && a.key != nil {
		r.Key = a.safeKey(newMessage(a.s.topic, in))
	}
	return r
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

func (a *anycast) membership(all []heartbeat.Member, _ bool) {
	a.step(func(now time.Time) { a.g.Members(all, now) })
}

func (a *anycast) session(until time.Time) {
	a.step(func(now time.Time) { a.g.Session(until, now) })
}

// connection: a drop resets the Group (claims.Group.Reset) and drops what
// was being sent on the old connection; with history, the next connection
// replays the record to fill what the drop missed.
func (a *anycast) connection(up bool, _ time.Time) {
	if !up {
		a.step(func(now time.Time) {
			a.g.Reset(now)
			a.connStop()
			a.connCtx, a.connStop = context.WithCancel(context.Background())
			a.holed = true
		})
		return
	}
	n, b := a.n, a.n.cfg.History
	a.mu.Lock()
	refill := a.holed && b != nil && a.s.ctx.Err() == nil
	a.holed = false
	a.mu.Unlock()
	if refill {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			window := time.Now().Add(-n.cfg.ResumeWindow)
			if a.resume(b, window, false) != nil {
				a.retryResume(b, window)
			}
		}()
	}
}

func (a *anycast) announce() heartbeat.Sub { return heartbeat.Sub{Topic: a.s.topic, Group: a.group} }

// joined: announce the group now; claim once everyone has heard us and we
// them (a heartbeat interval and a bit), and once the group's recent
// history is replayed into the Group, when there is history.
func (a *anycast) joined() {
	n := a.n
	n.beatSoon()
	warm := time.After(n.cfg.HeartbeatInterval * 6 / 5)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if b := n.cfg.History; b != nil {
			window := time.Now().Add(-n.cfg.ResumeWindow)
			if a.resume(b, window, true) != nil {
				n.wg.Add(1)
				go func() {
					defer n.wg.Done()
					a.retryResume(b, window)
				}()
			}
		}
		select {
		case <-warm:
		case <-a.s.ctx.Done():
			return
		}
		a.step(func(now time.Time) { a.g.SetReady(true, now) })
	}()
}

func (a *anycast) stopping() { a.step(func(now time.Time) { a.g.SetReady(false, now) }) }

// stopped ends run once the subscription's workers are done; the acks they
// produced are sent first, and the claims we still hold are released so
// that the other members take them over at once.
func (a *anycast) stopped() {
	a.step(func(now time.Time) { a.g.ReleaseAll(now) })
	close(a.quit)
	<-a.done
}

// finished: a handler returned.
func (a *anycast) finished(m *Message, err error) {
	retry := a.retry
	if d, ok := RetryDelayOf(err); ok {
		retry = d
	}
	a.step(func(now time.Time) {
		if r, ok := a.cancels[m.ID]; ok && r.epoch == m.Claim.Epoch {
			r.cancel()
			delete(a.cancels, m.ID)
		}
		// A handler cut short because the subscription stops is not the
		// event's fault: no result; stopped releases the claim.
		if err == nil || a.s.ctx.Err() == nil {
			a.g.Done(m.ID, m.Claim.Epoch, err, retry, now)
		}
	})
}

// run sends what the Group asks for and runs its timers and commit tick,
// until the subscription stops.
func (a *anycast) run() {
	defer close(a.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	commit := time.NewTicker(a.n.cfg.CommitInterval)
	defer commit.Stop()
	for {
		a.mu.Lock()
		next := a.g.Next()
		a.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		t.Reset(wait)
		select {
		case <-a.wake:
		case <-t.C:
			a.step(func(now time.Time) { a.g.Tick(now) })
		case <-commit.C:
			a.step(func(now time.Time) { a.g.Commit(now) })
		case <-a.quit:
			a.flush() // the acks of the last handlers, and the releases
			return
		case <-a.n.done:
			return
		}
		a.flush()
	}
}

// flush sends what the Group gathered and waits for the server to take
// it: what gathers meanwhile goes out in the next batch (one batch in
// flight: batches grow with the rate).
func (a *anycast) flush() {
	a.mu.Lock()
	rd := a.g.Ready()
	a.handlersLocked(rd)
	ctx := a.connCtx
	a.mu.Unlock()
	send := append([]*envelope.Envelope(nil), rd.Send...)
	for _, d := range rd.DeadLetters {
		if a.deadLetter(ctx, &d.Letter) {
			send = append(send, d.Marker)
		}
	}
	var jobs []*job
	for _, env := range send {
		j, err := a.n.send(ctx, a.s.channel, env)
		if err != nil {
			a.n.log.Debug("claims line not sent", "topic", a.s.topic, "kind", env.Kind, "err", err)
			continue
		}
		jobs = append(jobs, j)
	}
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-ctx.Done():
			return
		case <-a.quit:
			// Stopping: what was sent is the writer's to confirm (Close
			// flushes it within its context); waiting here would hang a
			// node whose connection is gone for good (stopped waits for run).
			return
		case <-a.n.done:
			return
		}
	}
}

// deadLetter publishes a given-up event on the dead-letter topic.
func (a *anycast) deadLetter(ctx context.Context, d *claims.DeadLetter) bool {
	payload, err := claims.EncodeDeadLetter(d)
	if err == nil {
		_, err = a.n.Publish(ctx, claims.DeadTopic(a.s.topic), payload)
	}
	if err != nil {
		a.n.log.Error("dead letter not published", "topic", a.s.topic, "id", d.Event.ID.Short(), "err", err)
		return false
	}
	a.n.log.Warn("event dead-lettered", "topic", a.s.topic, "group", a.group, "id", d.Event.ID.Short(), "attempts", d.Attempts)
	return true
}

// resumeMargin is how far before the committed offset a resume starts:
// lines near it may be in another order in the record than in the
// claimant's view (a linked network), and on a server without msgids an
// offset is only the claimant's clock. Events replayed from the margin
// come with their acks, so the group does not run them again.
const resumeMargin = 5 * time.Second

// resume replays the topic's record into the Group (claims.Group.Resume,
// Replay, Replayed): when the subscription starts (first), before it
// claims anything, and after a reconnect, to fill what the member missed.
// It starts at the group's committed offset — the record's, or the
// member's own when later — less resumeMargin, else at the window's start.
// A replay that fails ends with claims.Group.ReplayFailed: the member
// claims again, vouching for no offset until a replay fills its hole; the
// error is returned for the caller to try again (retryResume).
func (a *anycast) resume(b HistorySource, window time.Time, first bool) error {
	a.resuming.Lock()
	defer a.resuming.Unlock()
	ctx, cancel := context.WithTimeout(a.s.ctx, a.n.cfg.BackfillTimeout)
	defer cancel()
	committed, err := b.Committed(ctx, a.n, a.s.topic, a.group)
	if err != nil {
		a.n.log.Warn("anycast: no committed offset from history; resuming from the window", "topic", a.s.topic, "group", a.group, "err", err)
	}
	a.step(func(now time.Time) {
		a.g.Resume(committed, now)
		committed = a.g.Committed()
		if first {
			a.resumed.FromCommitted, a.resumed.Committed = !committed.IsZero(), committed
		}
	})
	since, start := window, "window"
	if !committed.IsZero() {
		since, start = committed.At().Add(-resumeMargin), "committed offset"
	}
	events, lines, count, err := a.replayRecord(ctx, b, since)
	a.n.warnRejected("anycast: resuming from history", a.s.topic, count)
	a.step(func(now time.Time) {
		if err == nil {
			a.g.Replayed(now)
		} else {
			a.g.ReplayFailed(now)
		}
		if first || (err == nil && !a.resumed.Done) { // a retry that filled the first hole
			a.resumed.Since, a.resumed.Events, a.resumed.Lines = since, events, lines
			a.resumed.Done, a.resumed.Err = err == nil, err
		}
		a.resumed.Attempts++
	})
	if err != nil {
		a.n.log.Warn("anycast: the group's history could not be replayed; the member claims meanwhile and tries again",
			"topic", a.s.topic, "group", a.group, "err", err)
		return err
	}
	a.n.log.Info("anycast: replayed the group's history", "topic", a.s.topic, "group", a.group, "from", start, "since", since,
		"events", events, "claims-lines", lines, "reconnect", !first)
	return nil
}

// A failed resume is tried again resumeRetries times, the first
// resumeRetryDelay later, the delay doubling (1, 2, 4, 8, 16 s): a
// recorder that was restarting or busy answers by then.
const (
	resumeRetries    = 5
	resumeRetryDelay = time.Second
)

// retryResume replays the record from window again after a failed resume,
// until one succeeds, the retries run out (the hole then stays: the member
// vouches for no offset until the committed offset passes it, §6.13), or
// the subscription ends.
func (a *anycast) retryResume(b HistorySource, window time.Time) {
	delay := resumeRetryDelay
	for range resumeRetries {
		if !wait.Sleep(a.s.ctx, delay) {
			return
		}
		if a.resume(b, window, false) == nil {
			return
		}
		delay *= 2
	}
	a.n.log.Error("anycast: the group's history could not be replayed; events published while the member was away may be missing",
		"topic", a.s.topic, "group", a.group, "attempts", resumeRetries+1)
}

// replayRecord replays the topic's record from b since since into the
// Group (claims.Group.Replay) and counts the events and other lines it
// took.
func (a *anycast) replayRecord(ctx context.Context, b HistorySource, since time.Time) (events, lines int, count ReplayCount, err error) {
	count, err = b.Replay(ctx, a.n, a.s.topic, since, func(r Recorded) error {
		rc := a.received(&inbound{env: r.Envelope, from: r.Nick, target: a.s.channel, serverTime: r.Offset.At(), msgid: r.Offset.MsgID})
		a.step(func(now time.Time) {
			switch {
			case !a.g.Replay(rc, now):
			case rc.Envelope.Kind == envelope.KindEvent:
				events++
			default:
				lines++
			}
		})
		return nil
	})
	return events, lines, count, err
}

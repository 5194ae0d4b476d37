package mesh

import (
	"context"
	"sync"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/wait"
)

// Catch-up of multicast subscriptions after a reconnect (see history.go):
// each keeps the ids it delivered and the time of the last line it got;
// once the connection is back, the gap is filled from Config.History.
// Missed events may then be handled after newer ones that arrived live.

// catchUpIDs bounds the ids a subscription remembers against duplicates
// between a backfill and the live stream.
const catchUpIDs = 1 << 15

func newCatchUp() *catchUp { return &catchUp{ids: envelope.NewGuard(catchUpIDs, 0)} }

// backfillMargin is how far before the last line received a backfill
// starts: lines of one moment may be recorded in another order.
const backfillMargin = time.Second

// catchUp is a subscription's record of what it delivered, for
// de-duplication against a backfill. It is kept only with Config.History.
type catchUp struct {
	mu       sync.Mutex
	ids      *envelope.Guard
	last     time.Time // the last line received on the channel
	gapSince time.Time // set while a gap waits to be filled
}

// deliverOnce notes a line on s's channel at time at and reports whether
// its envelope is new to s.
func (c *catchUp) deliverOnce(id envelope.ID, at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.last) {
		c.last = at
	}
	return c.ids.Add(id)
}

// markGap: the connection dropped.
func (c *catchUp) markGap(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gapSince.IsZero() {
		c.gapSince = c.last
		if c.gapSince.IsZero() {
			c.gapSince = now
		}
	}
}

// takeGap returns the gap to fill, if any, and clears it.
func (c *catchUp) takeGap() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gapSince
	c.gapSince = time.Time{}
	return g
}

// backfill delivers to s the events of its topic recorded since since
// that it has not delivered yet. A replay that fails (no recorder live in
// this node's view yet, just after it moved servers; a recorder
// restarting) is tried again, as a resume is (1, 2, 4, 8, 16 s later),
// within BackfillTimeout: every try delivers only what s has not.
func (n *Node) backfill(b HistorySource, s *Subscription, since time.Time) {
	ctx, cancel := context.WithTimeout(s.ctx, n.cfg.BackfillTimeout)
	defer cancel()
	go func() {
		select {
		case <-n.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var total uint64
	delay := resumeRetryDelay
	for attempt := 1; ; attempt++ {
		filled, count, err := n.deliverRecorded(ctx, b, s, since)
		total += filled
		n.stats.backfilled.Add(filled)
		n.warnRejected("catching up after a reconnect", s.topic, count)
		if err == nil {
			n.log.Info("caught up after a reconnect", "topic", s.topic, "since", since, "filled", total, "attempts", attempt)
			return
		}
		if attempt > resumeRetries || !wait.Sleep(ctx, delay) {
			n.log.Warn("catching up after a reconnect failed: events published meanwhile may be missing",
				"topic", s.topic, "since", since, "filled", total, "attempts", attempt, "err", err)
			return
		}
		n.log.Debug("catching up after a reconnect: trying again", "topic", s.topic, "after", delay, "err", err)
		delay *= 2
	}
}

// deliverRecorded replays s's topic from b since since and delivers to s
// the events it has not delivered yet; it returns how many it delivered.
func (n *Node) deliverRecorded(ctx context.Context, b HistorySource, s *Subscription, since time.Time) (uint64, ReplayCount, error) {
	var filled uint64
	count, err := b.Replay(ctx, n, s.topic, since, func(r Recorded) error {
		env := r.Envelope
		at := r.Offset.At()
		if env.Kind != envelope.KindEvent || !s.catch.deliverOnce(env.ID, at) {
			return nil
		}
		filled++
		s.offer(&Message{Topic: s.topic, ID: env.ID, Payload: env.Payload, Headers: env.Headers, Sender: env.Sender,
			SentAt: env.SentAt(), ServerTime: at, MsgID: r.Offset.MsgID, From: r.Nick, Envelope: env})
		return nil
	})
	return filled, count, err
}

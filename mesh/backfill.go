package mesh

import (
	"context"
	"sync"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Catch-up: a channel forgets, so a multicast subscriber that was
// disconnected misses what was published meanwhile. With a Backfiller set
// (history.NewBackfiller: the history service's record), the node asks it,
// once the connection is back, for the events of each multicast
// subscription since the last line it received there, and delivers those
// it has not delivered yet (by envelope id). Missed events may then be
// handled after newer ones that arrived live.

// Backfiller replays what a topic's channel carried since a time.
type Backfiller interface {
	// Backfill calls fn for each envelope seen on topic since since, in
	// the order it was recorded, until the end of the record or ctx.
	Backfill(ctx context.Context, topic string, since time.Time, fn func(env *envelope.Envelope, from string, at time.Time) error) error
}

// CommitFinder is implemented by a Backfiller that can also find where an
// anycast group stopped (history.Backfiller does): the committed offset
// (docs/PROTOCOL.md §6.13) carried by the group's last HistoryClaim in the
// record.
type CommitFinder interface {
	// LastCommitted returns the time and msgid of the group's committed
	// offset on topic; a zero time when the record holds none.
	LastCommitted(ctx context.Context, topic, group string) (at time.Time, msgid string, err error)
}

// SetBackfiller makes the node fill the gaps of its multicast
// subscriptions after a reconnect from b (nil turns it off). Set it before
// subscribing: subscriptions made before keep no record of what they
// delivered and are not caught up.
func (n *Node) SetBackfiller(b Backfiller) {
	n.mu.Lock()
	n.backfiller = b
	n.mu.Unlock()
}

// catchUpIDs bounds the ids a subscription remembers against duplicates
// between a backfill and the live stream.
const catchUpIDs = 1 << 15

func newCatchUp() *catchUp { return &catchUp{ids: envelope.NewGuard(catchUpIDs, 0)} }

// backfillMargin is how far before the last line received a backfill
// starts: lines of one moment may be recorded in another order.
const backfillMargin = time.Second

// catchUp is a subscription's record of what it delivered, for
// de-duplication against a backfill. It is kept only while a backfiller is
// set.
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

// markGaps: the connection dropped; every multicast subscription has a gap.
func (n *Node) markGaps(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		if s.catch != nil {
			s.catch.markGap(now)
		}
	}
}

// fillGaps runs once a connection is ready: each subscription's gap is
// filled from the backfiller, in the background.
func (n *Node) fillGaps() {
	n.mu.Lock()
	b := n.backfiller
	var subs []*Subscription
	for _, s := range n.subs {
		if s.catch != nil {
			subs = append(subs, s)
		}
	}
	n.mu.Unlock()
	if b == nil {
		return
	}
	for _, s := range subs {
		since := s.catch.takeGap()
		if since.IsZero() {
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.backfill(b, s, since.Add(-backfillMargin))
		}()
	}
}

func (n *Node) backfill(b Backfiller, s *Subscription, since time.Time) {
	ctx, cancel := context.WithTimeout(s.ctx, n.cfg.BackfillTimeout)
	defer cancel()
	go func() {
		select {
		case <-n.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var filled uint64
	err := b.Backfill(ctx, s.topic, since, func(env *envelope.Envelope, from string, at time.Time) error {
		if env.Kind != envelope.KindEvent || !s.catch.deliverOnce(env.ID, at) {
			return nil
		}
		filled++
		s.offer(&Message{Topic: s.topic, ID: env.ID, Payload: env.Payload, Headers: env.Headers, Sender: env.Sender,
			SentAt: env.SentAt(), ServerTime: at, From: from, Envelope: env})
		return nil
	})
	n.stats.backfilled.Add(filled)
	if err != nil {
		n.log.Warn("catching up after a reconnect failed: events published meanwhile may be missing", "topic", s.topic, "since", since, "filled", filled, "err", err)
		return
	}
	n.log.Info("caught up after a reconnect", "topic", s.topic, "since", since, "filled", filled)
}

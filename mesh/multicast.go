package mesh

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Multicast delivery: every instance that subscribes gets every event of
// the topic, at least once; with Config.History, what it missed while
// disconnected is filled in after a reconnect, duplicates removed by id
// (backfill.go).

// Subscription is a multicast subscription to one topic: every event
// published there is handed to its handler. Topic, Delivered, Dropped,
// Failed, Pending and Unsubscribe are those of every subscription.
type Subscription struct {
	*subscription
	catch *catchUp // with Config.History: what was delivered, and the gap
}

// Subscribe joins topic's channel and runs h for every event published on
// it (multicast: every instance that subscribes gets every event; for
// exactly one instance of a group per event, see SubscribeAnycast). It
// returns once the server has confirmed the join, so every event published
// after that reaches h. With Config.History, events published while the
// node was disconnected are delivered after it reconnects.
//
// Overflow policy: events wait for a handler in a bounded queue. When the
// queue is full, the newest event is dropped and counted (Dropped, and the
// node's Stats), and ErrSlowConsumer is logged: the connection's reader
// never blocks on a handler, so a slow handler can never make the server
// drop the bot. Size QueueLen and Concurrency for the load.
//
// Only Concurrency and QueueLen apply; an anycast option is refused with
// ErrOption.
func (n *Node) Subscribe(ctx context.Context, topic string, h Handler, opts ...SubOption) (*Subscription, error) {
	o := n.options(opts)
	if len(o.anycastOpts) > 0 {
		return nil, fmt.Errorf("%w: %s apply to anycast subscriptions only: use SubscribeAnycast", ErrOption, strings.Join(o.anycastOpts, ", "))
	}
	sub := &Subscription{}
	// sub.subscription is set here, before the subscription is published
	// to the event loop and the heartbeat loop (which read it), never after.
	_, err := n.subscribe(ctx, topic, h, &o, func(s *subscription) (mode, error) {
		sub.subscription = s
		if n.cfg.History != nil {
			sub.catch = newCatchUp()
		}
		return sub, nil
	})
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// line: an event is queued for the handler unless a backfill delivered it.
func (sub *Subscription) line(in *inbound) bool {
	if in.env.Kind != envelope.KindEvent {
		return false
	}
	m := newMessage(sub.topic, in)
	if sub.catch != nil {
		at := in.serverTime
		if at.IsZero() {
			at = time.Now()
		}
		if !sub.catch.deliverOnce(m.ID, at) {
			return true // delivered by a backfill already
		}
	}
	sub.offer(m)
	return true
}

// connection: a drop opens a gap; a new connection fills it from history.
func (sub *Subscription) connection(up bool, at time.Time) {
	if sub.catch == nil {
		return
	}
	if !up {
		sub.catch.markGap(at)
		return
	}
	since := sub.catch.takeGap()
	if since.IsZero() {
		return
	}
	n := sub.n
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.backfill(n.cfg.History, sub, since.Add(-backfillMargin))
	}()
}

func (sub *Subscription) announce() heartbeat.Sub { return heartbeat.Sub{Topic: sub.topic} }

func (*Subscription) membership([]heartbeat.Member, bool) {}
func (*Subscription) session(time.Time)                   {}
func (*Subscription) joined()                             {}
func (*Subscription) stopping()                           {}
func (*Subscription) stopped()                            {}

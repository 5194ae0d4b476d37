package mesh

import (
	"slices"
	"strings"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/state"
)

// What a node can say about itself: the console's status (and anyone's
// dashboards) read it through these, never through the node's insides.

// Delivery modes of SubscriptionInfo.
const (
	ModeMulticast = "multicast"
	ModeAnycast   = "anycast"
	ModeState     = "state"
)

// SubscriptionInfo describes one subscription of the node now.
type SubscriptionInfo struct {
	Topic string
	// Mode is ModeMulticast, ModeAnycast (of Group) or ModeState (the
	// channel of a domain the node holds a copy of).
	Mode  string
	Group string
	// Queued events wait for a handler, of QueueCap at most.
	Queued, QueueCap int
	// Delivered, Dropped and Failed are the subscription's counters.
	Delivered, Dropped, Failed uint64
	// Held is how many events the node's handlers hold claims for
	// (anycast).
	Held int
	// Paused is set while the topic is paused (+m).
	Paused *Pause
	// Kicked is set when a channel operator removed the node from the
	// topic: it receives nothing of it.
	Kicked *Kick
}

// Subscriptions describes the node's subscriptions, sorted by topic.
func (n *Node) Subscriptions() []SubscriptionInfo {
	n.mu.Lock()
	subs := make([]*subscription, 0, len(n.subs))
	for _, s := range n.subs {
		subs = append(subs, s)
	}
	n.mu.Unlock()
	out := make([]SubscriptionInfo, 0, len(subs))
	for _, s := range subs {
		a := s.mode.announce()
		si := SubscriptionInfo{Topic: s.topic, Mode: ModeMulticast, Group: a.Group,
			Queued: len(s.q), QueueCap: cap(s.q),
			Delivered: s.delivered.Load(), Dropped: s.dropped.Load(), Failed: s.failed.Load()}
		switch m := s.mode.(type) {
		case *anycast:
			si.Mode = ModeAnycast
			m.mu.Lock()
			si.Held = len(m.cancels)
			m.mu.Unlock()
		default:
			if _, ok := state.DomainOfTopic(s.topic); ok {
				si.Mode = ModeState
			}
		}
		si.Paused, _ = n.talk.paused(s.channel)
		if k, ok := n.kick(s.channel); ok {
			si.Kicked = &k
		}
		out = append(out, si)
	}
	slices.SortFunc(out, func(a, b SubscriptionInfo) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// Methods returns the request methods the node answers, sorted.
func (n *Node) Methods() []string {
	n.mu.Lock()
	out := make([]string, 0, len(n.methods))
	for m := range n.methods {
		out = append(out, m)
	}
	n.mu.Unlock()
	slices.Sort(out)
	return out
}

// Started returns when the node was created (its incarnation).
func (n *Node) Started() time.Time { return time.Unix(0, int64(n.incarnation)) }

// LastConnectionError returns why the last connection (or attempt) ended,
// nil when none has.
func (n *Node) LastConnectionError() error {
	if e := n.lastErr.Load(); e != nil {
		return *e
	}
	return nil
}

// announceTalk completes a heartbeat: the methods the node answers, and
// the subscriptions it was kicked from moved from Subs to Kicked (it takes
// no part in them: others must not count it in their anycast group).
func (n *Node) announceTalk(b *heartbeat.Beat) {
	b.Methods = n.Methods()
	if len(b.Methods) > heartbeat.MaxMethods {
		b.Methods = b.Methods[:heartbeat.MaxMethods]
	}
	kicks := n.Kicks()
	if len(kicks) == 0 {
		return
	}
	b.Subs = slices.DeleteFunc(b.Subs, func(s heartbeat.Sub) bool {
		for _, k := range kicks {
			if strings.EqualFold(k.Topic, s.Topic) {
				b.Kicked = append(b.Kicked, s)
				return true
			}
		}
		return false
	})
}

package mesh

import (
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Routing. Every verified envelope is routed by where it arrived:
//
//   - the heartbeat channel: heartbeats, to the membership view;
//   - a private message: requests and responses, to the request layer;
//   - a subscribed topic's channel: everything, to the delivery mode of
//     that channel's subscription (multicast.go, anycast.go). A mode takes
//     the kinds of its protocol (events, and for anycast the claims lines
//     of its group) and refuses the rest, which the node counts.
//
// A delivery mode plugs in through the small mode interface below and
// nothing else: a new mode is a new file, not edits across the runtime.

// mode is one subscription's delivery protocol: how the envelopes of its
// channel become handler calls. The node calls its methods from the
// connection's reader (line) and from its own goroutines; implementations
// never block in them.
type mode interface {
	// line takes one verified envelope received on the channel (or our
	// own, confirmed, on servers without echo-message). It reports
	// whether the mode handles envelopes of that kind.
	line(in *inbound) bool
	// membership: the heartbeat view changed. all is every member now;
	// force asks for a refresh even when nothing changed.
	membership(all []heartbeat.Member, force bool)
	// session: our own heartbeat went out; others will not suspect us
	// before until.
	session(until time.Time)
	// connection: the connection dropped (up false), or a new one is ready
	// with every channel joined (up true).
	connection(up bool, at time.Time)
	// joined runs once, after the subscription's first join is confirmed.
	joined()
	// announce is what the subscription says of itself in heartbeats.
	announce() heartbeat.Sub
	// stopping: the subscription stops taking events (its handlers drain
	// next); stopped: no handler runs any more.
	stopping()
	stopped()
}

// route hands one verified envelope to where it belongs.
func (n *Node) route(in *inbound) {
	if n.closing.Load() {
		return
	}
	if !strings.HasPrefix(in.target, "#") {
		n.routeDirect(in)
		return
	}
	if strings.EqualFold(in.target, HeartbeatChannel(n.cfg.Namespace)) {
		if in.env.Kind == envelope.KindHeartbeat {
			n.onBeat(in)
			return
		}
		n.stats.unhandled.Add(1)
		return
	}
	s := n.subscription(in.target)
	switch {
	case s == nil:
		if in.env.Kind == envelope.KindEvent {
			n.stats.unrouted.Add(1)
		}
	case !s.mode.line(in):
		n.stats.unhandled.Add(1)
	}
}

// routeDirect handles a private message: a request to us, or the response
// to one of ours.
func (n *Node) routeDirect(in *inbound) {
	if in.echo {
		return
	}
	switch {
	case in.env.Kind == envelope.KindRequest:
		n.acceptRequest(in)
	case in.env.Kind == envelope.KindResponse:
		n.acceptResponse(in)
	default:
		n.stats.unhandled.Add(1)
	}
}

// subscription returns the subscription of channel, or nil.
func (n *Node) subscription(channel string) *subscription {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.subs[strings.ToLower(channel)]
}

// modes returns the delivery modes of every subscription.
func (n *Node) modes() []mode {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]mode, 0, len(n.subs))
	for _, s := range n.subs {
		out = append(out, s.mode)
	}
	return out
}

// feedModes gives every subscription the heartbeat view (with force, even
// when nothing changed).
func (n *Node) feedModes(force bool) {
	ms := n.modes()
	if len(ms) == 0 {
		return
	}
	n.hb.mu.Lock()
	all := n.hb.view.All()
	n.hb.mu.Unlock()
	for _, m := range ms {
		m.membership(all, force)
	}
}

// connectionChanged tells every subscription that the connection dropped or
// is ready again.
func (n *Node) connectionChanged(up bool, at time.Time) {
	for _, m := range n.modes() {
		m.connection(up, at)
	}
}

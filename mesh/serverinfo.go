package mesh

import (
	"maps"
	"slices"

	"github.com/meshbot/meshbot/envelope"
)

// ServerInfo is what the node's current connection learned about the
// server and how the node uses it: the capabilities it acknowledged, the
// ISUPPORT tokens, and the limits the node derives from them.
type ServerInfo struct {
	// Caps are the capabilities the server acknowledged, sorted.
	Caps []string
	// ISupport holds the server's ISUPPORT (005) tokens ("" for a token
	// without a value).
	ISupport map[string]string
	// Carrier is where envelopes ride: in a client tag (message-tags) or
	// in the message text.
	Carrier envelope.Carrier
	// Echo: the server echoes the node's own lines (echo-message), which
	// confirm publishes; without it a PING after the lines does.
	Echo bool
	// LineLen, ChanLen and NickLen are the limits in force (the server's
	// LINELEN, CHANNELLEN and NICKLEN, or the defaults when it announces
	// none).
	LineLen, ChanLen, NickLen int
	// Prefix is the node's nick!user@host as other clients see it.
	Prefix string
	// BodyBytes is the room for mesh text in one PRIVMSG to the
	// heartbeat channel (the line budget: LINELEN less the prefix the
	// server adds, the command and a margin); TagBytes the room for a
	// client tag, where the tag carrier is used.
	BodyBytes, TagBytes int
}

// ServerInfo returns what the current connection learned, and false while
// the node is not connected.
func (n *Node) ServerInfo() (ServerInfo, bool) {
	st := n.current()
	if st == nil {
		return ServerInfo{}, false
	}
	n.mu.Lock()
	caps := slices.Sorted(maps.Keys(n.caps))
	isupport := maps.Clone(n.isupport)
	n.mu.Unlock()
	lim := n.limits(st, HeartbeatChannel(n.cfg.Namespace))
	return ServerInfo{
		Caps: caps, ISupport: isupport, Carrier: st.carrier, Echo: st.echo,
		LineLen: st.lineLen, ChanLen: st.chanLen, NickLen: st.nickLen, Prefix: st.prefix,
		BodyBytes: lim.BodyBytes, TagBytes: lim.TagBytes,
	}, true
}

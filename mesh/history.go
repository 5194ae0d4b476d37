package mesh

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// A channel forgets: a subscriber that was away misses what was published
// meanwhile. With Config.History set (history.NewSource: the history
// service's record, and the server's CHATHISTORY where it has one), the
// node reads what it missed:
//
//   - a multicast subscription, after a reconnect, gets the events of its
//     topic since the last line it received, those it has not delivered
//     yet (by id);
//   - an anycast subscription, when it starts, replays its group's record
//     from the group's committed offset (docs/PROTOCOL.md §6.12) so that
//     events nobody completed are completed once.
//
// Everything read from history is decoded and verified with the node's own
// trust (Config.Keys, Config.RequireSigned: NewDecoder), exactly like live
// lines; there is no second place to configure it.

// HistorySource is where a node reads the recorded lines of its channels.
// history.NewSource returns the one meshbot ships. Implementations are
// safe for concurrent use: the node catches several subscriptions up at
// once.
type HistorySource interface {
	// Replay calls fn, in recorded order, for each envelope recorded on
	// topic at or after since, decoded and verified with n's trust
	// (n.NewDecoder), until the end of the record, an error from fn, or
	// ctx. It returns what it read; lines that were rejected (forged,
	// unsigned where signatures are required, signed by an unknown key,
	// malformed) are counted there, never handed to fn.
	Replay(ctx context.Context, n *Node, topic string, since time.Time, fn func(Recorded) error) (ReplayCount, error)
	// Committed returns the committed offset of group on topic, as
	// carried by the group's last HistoryClaim in the record that verifies
	// with n's trust (docs/PROTOCOL.md §6.12); the zero Offset when the
	// record holds none.
	Committed(ctx context.Context, n *Node, topic, group string) (envelope.Offset, error)
}

// Recorded is one envelope read from history.
type Recorded struct {
	// Offset is the line that carried it (its last line, for a fragmented
	// envelope).
	Offset envelope.Offset
	// Nick sent it.
	Nick     string
	Envelope *envelope.Envelope
}

// ReplayCount says what a HistorySource.Replay read.
type ReplayCount struct {
	// Lines read, and Envelopes handed on.
	Lines, Envelopes uint64
	// Rejected counts the mesh envelopes and lines refused by the node's
	// trust or as malformed, by reason (envelope.Reason: "forged",
	// "unsigned", "unknown-key", ...). Human chatter is not counted.
	Rejected map[string]uint64
}

// Reject counts one rejected line or envelope.
func (c *ReplayCount) Reject(err error) {
	if c.Rejected == nil {
		c.Rejected = map[string]uint64{}
	}
	c.Rejected[envelope.Reason(err)]++
}

// RejectedTotal sums Rejected.
func (c ReplayCount) RejectedTotal() uint64 {
	var t uint64
	for _, v := range c.Rejected {
		t += v
	}
	return t
}

// rejectedText renders Rejected for a log line: "forged=2 unknown-key=40".
func (c ReplayCount) rejectedText() string {
	reasons := make([]string, 0, len(c.Rejected))
	for r, v := range c.Rejected {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, v))
	}
	slices.Sort(reasons)
	return strings.Join(reasons, " ")
}

// warnRejected logs, loudly, history lines the node's trust refused: in a
// signed mesh they are events this node will not process.
func (n *Node) warnRejected(what, topic string, c ReplayCount) {
	if c.RejectedTotal() == 0 {
		return
	}
	n.stats.historyRejected.Add(c.RejectedTotal())
	n.log.Warn(what+": recorded lines were refused by this node's keys; the events they carry are not processed",
		"topic", topic, "refused", c.RejectedTotal(), "reasons", c.rejectedText(),
		"hint", "give this node the keyring (and signing key) of the mesh that recorded them")
}

// NewDecoder returns a decoder with the node's trust: its keyring, whether
// it requires signatures, its envelope limit, the sender binding (every
// envelope must come from its sender's nick, and with Config.Accounts from
// its account: give it the line's nick with Decode or OpenFrom) and its
// payload keys (Config.Crypter). It keeps no replay
// guard (recorded envelopes are old by nature; readers de-duplicate by id).
// Every path that reads lines outside the live connection — catch-up,
// resume, replay, the committed-offset lookup — decodes with one of these.
func (n *Node) NewDecoder() *envelope.Decoder {
	return envelope.NewDecoder(n.decoderConfig())
}

// History returns the node's history source (nil without one).
func (n *Node) History() HistorySource { return n.cfg.History }

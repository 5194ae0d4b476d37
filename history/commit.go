package history

import (
	"context"
	"fmt"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// Finding where an anycast group stopped (docs/PROTOCOL.md §7.5): every
// HistoryClaim carries the committed offset its claimant knew. A member
// of a group that was entirely away asks a recorder for the group's last
// HistoryClaim carrying one (method MethodCommitted); the recorder looks
// back from the end of the topic's record, a bounded number of lines per
// request, and answers with the line itself, which the member decodes and
// verifies with its own keys before trusting it. The recorder only finds
// candidates: what the member acts on is what its own trust accepts.

// ClaimedOffset returns the committed offset carried by a HistoryClaim of
// group in one recorded line, decoded with dec, if the line holds one with
// a committed offset (the highest, for a batch holding several). A line
// dec refuses holds none.
func ClaimedOffset(dec *envelope.Decoder, line *PageRecord, group string) (envelope.Offset, bool) {
	envs, isMesh, _ := dec.Decode(line.Nick, line.Tags, line.Body, time.Unix(0, line.Time))
	if !isMesh {
		return envelope.Offset{}, false
	}
	var found envelope.Offset
	for _, env := range envs {
		if env.Kind != envelope.KindHistoryClaim || env.Topic != group {
			continue
		}
		if _, c, err := claims.DecodeHistoryClaim(env.Payload); err == nil && !c.IsZero() && found.Before(c) {
			found = c
		}
	}
	return found, !found.IsZero()
}

// Committed implements mesh.HistorySource: it asks the history service
// for the group's last HistoryClaim that carries a committed offset,
// looking back page by page until one verifies with the node's trust, the
// record's start, or ctx.
func (*Source) Committed(ctx context.Context, n *mesh.Node, topic, group string) (envelope.Offset, error) {
	if err := checkRecorders(ctx, n); err != nil {
		return envelope.Offset{}, fmt.Errorf("history: finding the committed offset of %s/%s: %w", topic, group, err)
	}
	req := CommitRequest{Topic: topic, Group: group}
	recorder := ""
	for {
		body, err := req.Encode()
		if err != nil {
			return envelope.Offset{}, err
		}
		out, err := n.Request(ctx, Service, MethodCommitted, body, mesh.WithKey(topic))
		if err != nil {
			return envelope.Offset{}, fmt.Errorf("history: finding the committed offset of %s/%s: %w", topic, group, explain(err))
		}
		ans, err := DecodeCommitAnswer(out)
		if err != nil {
			return envelope.Offset{}, err
		}
		if f := ans.Found; f != nil {
			if c, ok := ClaimedOffset(n.NewDecoder(), f, group); ok {
				return c, nil
			}
			// The line did not verify here (forged, or signed by a key we
			// do not trust): look further back.
		}
		switch {
		case recorder != "" && ans.Recorder != recorder:
			// Another recorder answered: sequence numbers are each
			// recorder's own, so look again from its end.
			req.Before = 0
		case ans.Seq <= 1:
			return envelope.Offset{}, nil // the start of the record
		case req.Before != 0 && ans.Seq >= req.Before:
			return envelope.Offset{}, fmt.Errorf("%w: the recorder did not move back (%d)", ErrMalformedPage, ans.Seq)
		default:
			req.Before = ans.Seq
		}
		recorder = ans.Recorder
	}
}

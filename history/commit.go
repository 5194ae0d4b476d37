package history

import (
	"context"
	"fmt"
	"strings"
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
// verifies with its own keys before trusting it.

// MethodCommitted is the method that finds a group's last committed
// offset in the record.
const MethodCommitted = "history.committed"

// maxCommitScan bounds the lines one MethodCommitted request looks at.
var maxCommitScan = 50_000

// CommitRequest asks for the last line, before Before (a recorder's
// sequence number; 0: from the end), that carries a HistoryClaim of Group
// on Topic with a committed offset.
type CommitRequest struct {
	Topic  string `cbor:"1,keyasint"`
	Group  string `cbor:"2,keyasint"`
	Before uint64 `cbor:"3,keyasint,omitempty"`
}

// CommitAnswer is a recorder's answer to a CommitRequest.
type CommitAnswer struct {
	// Found is the line, when one was found.
	Found *PageRecord `cbor:"1,keyasint,omitempty"`
	// Seq is the found line's sequence number in the answering recorder;
	// without a line found, where to go on looking back from (0: the
	// start of the record was reached).
	Seq uint64 `cbor:"2,keyasint,omitempty"`
	// Recorder is the instance that answered (its sequence numbers).
	Recorder string `cbor:"3,keyasint,omitempty"`
}

// committed serves MethodCommitted.
func (r *Recorder) committed(ctx context.Context, q *mesh.Request) ([]byte, error) {
	var req CommitRequest
	if err := pageDec.Unmarshal(q.Payload, &req); err != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "history: %v", err)
	}
	if err := mesh.ValidateTopic(r.n.Namespace(), req.Topic, 0); err != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "history: %v", err)
	}
	if err := mesh.ValidateGroup(req.Group); err != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "history: %v", err)
	}
	ch := strings.ToLower(mesh.Channel(r.n.Namespace(), req.Topic))
	// A decoder of its own per request, with the recorder's trust (the
	// asking member checks the line it gets again with its own).
	dec := r.n.NewDecoder()
	ans := CommitAnswer{Recorder: r.n.Service() + "/" + r.n.Instance()}
	scanned := 0
	err := r.st.ScanBack(ch, req.Before, func(rec Record) bool {
		if ctx.Err() != nil {
			return false
		}
		if scanned++; scanned > maxCommitScan {
			ans.Seq = rec.Seq + 1 // go on from here
			return false
		}
		if _, ok := claimOf(dec, rec.Nick, rec.Tags, rec.Body, rec.Time, req.Group); ok {
			ans.Found = &PageRecord{Time: rec.Time.UnixNano(), MsgID: rec.MsgID, Nick: rec.Nick, Tags: rec.Tags, Body: rec.Body}
			ans.Seq = rec.Seq
			return false
		}
		return true
	})
	if err != nil {
		return nil, mesh.Errorf(mesh.CodeInternal, "history: %v", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return pageEnc.Marshal(&ans)
}

// claimOf returns the committed offset carried by a HistoryClaim of group
// in one recorded line, if the line holds one with a committed offset.
func claimOf(dec *envelope.Decoder, nick string, tags map[string]string, body string, at time.Time, group string) (envelope.Offset, bool) {
	envs, isMesh, err := dec.Decode(nick, tags, body, at)
	if !isMesh || err != nil {
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
	req := CommitRequest{Topic: topic, Group: group}
	recorder := ""
	for {
		body, err := pageEnc.Marshal(req)
		if err != nil {
			return envelope.Offset{}, err
		}
		out, err := n.Request(ctx, Service, MethodCommitted, body, mesh.WithKey(topic))
		if err != nil {
			return envelope.Offset{}, fmt.Errorf("history: finding the committed offset of %s/%s: %w", topic, group, err)
		}
		var ans CommitAnswer
		if err := pageDec.Unmarshal(out, &ans); err != nil {
			return envelope.Offset{}, fmt.Errorf("%w: %v", ErrMalformedPage, err)
		}
		if f := ans.Found; f != nil {
			if c, ok := claimOf(n.NewDecoder(), f.Nick, f.Tags, f.Body, time.Unix(0, f.Time), group); ok {
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

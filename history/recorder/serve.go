package recorder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// What a recorder answers (docs/PROTOCOL.md §7.3, §7.5). The handlers are
// thin: servePage and serveCommitted take the request's payload and the
// store and return the encoded answer, or an error — history.
// ErrMalformedPage for a request that does not decode, errBadRequest for
// one that names a topic or group that is not valid (both answered with
// mesh.CodeBadRequest), a store error (damage: mesh.CodeInternal) — so
// that they can be tested and fuzzed without a connection.

// errBadRequest marks a request that names what is not valid.
var errBadRequest = errors.New("history: bad request")

// isDomainTopic reports whether topic is a domain's channel
// (<domain>._state, docs/PROTOCOL.md §8.1): a system topic that readers
// replay too.
func isDomainTopic(topic string) bool {
	_, ok := state.DomainOfTopic(topic)
	return ok
}

// read serves history.MethodRead, once the lines of the topic received
// before the request are in the record (recorded).
func (r *Recorder) read(ctx context.Context, q *mesh.Request) ([]byte, error) {
	req, err := history.DecodeReadRequest(q.Payload)
	if err == nil {
		err = r.recorded(ctx, req.Topic)
	}
	if err != nil {
		return coded(nil, err)
	}
	return coded(servePage(r.st, r.ns, r.name(), req))
}

// committed serves history.MethodCommitted, once the lines of the topic
// received before the request are in the record (recorded).
func (r *Recorder) committed(ctx context.Context, q *mesh.Request) ([]byte, error) {
	req, err := history.DecodeCommitRequest(q.Payload)
	if err == nil {
		err = r.recorded(ctx, req.Topic)
	}
	if err != nil {
		return coded(nil, err)
	}
	return coded(serveCommitted(ctx, r.st, r.ns, r.name(), r.cfg.CommitScan, candidates(), req))
}

// recorded returns once every line of topic that the node read before
// the call is readable in the store, if topic is recorded: its observer
// has taken them (mesh.Observer.Sync: the callback runs apart from the
// request handlers) and the store has committed them (a read sees only
// committed records, and the store commits in groups, every
// store.Options.CommitEvery). So a reader that asks right after lines were
// published is not told that the record ends before them. Lines held
// while the record is being filled are not waited for.
func (r *Recorder) recorded(ctx context.Context, topic string) error {
	r.mu.Lock()
	o := r.obs[topic]
	r.mu.Unlock()
	if o == nil {
		return nil
	}
	if err := o.Sync(ctx); err != nil {
		if errors.Is(err, mesh.ErrClosed) {
			return nil // the recording stopped: nothing more comes
		}
		return err
	}
	return r.st.Flush()
}

// coded gives an answer's error the code the asker receives.
func coded(b []byte, err error) ([]byte, error) {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return b, err
	case errors.Is(err, errBadRequest), errors.Is(err, history.ErrMalformedPage):
		return nil, mesh.Errorf(mesh.CodeBadRequest, "%v", err)
	}
	return nil, mesh.Errorf(mesh.CodeInternal, "%v", err)
}

// candidates returns the decoder that finds HistoryClaims in the record
// for the committed-offset lookup, one per request (no state shared). It
// checks no signatures (envelope.DecoderConfig.AcceptUnchecked): the
// recorder only finds candidates, and the asking member verifies the line
// it gets with its own trust, looking further back when it refuses it.
// So the lookup finds a group's claims whatever keys the recorder has.
func candidates() *envelope.Decoder {
	return envelope.NewDecoder(envelope.DecoderConfig{AcceptUnchecked: true})
}

// servePage answers one ReadRequest from st as recorder self of
// namespace ns: a range of self's sequence numbers, or the page that
// starts after an offset, at a time or at the first line kept. A page
// holds at most the lines asked for (history.DefaultPageRecords when the
// request asks for none or too many) and, past its first line, at most
// history.MaxPageBytes.
func servePage(st *store.Store, ns, self string, req history.ReadRequest) ([]byte, error) {
	if err := mesh.ValidateTopic(ns, req.Topic, 0); err != nil && req.Topic != "_hb" && !isDomainTopic(req.Topic) {
		return nil, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	limit := req.Max
	if limit <= 0 || limit > history.MaxPageRecords {
		limit = history.DefaultPageRecords
	}
	ch := strings.ToLower(mesh.Channel(ns, req.Topic))
	page := history.Page{Recorder: self}
	var from, to uint64 = 1, ^uint64(0)
	switch {
	case req.Recorder != "" || req.FromSeq != 0:
		if req.Recorder != self {
			// Another recorder's sequence numbers: the reader starts over.
			page.Moved = true
			return page.Encode()
		}
		from = max(req.FromSeq, 1)
		if to = from + uint64(limit) - 1; to < from {
			to = ^uint64(0)
		}
	case req.AfterTime != 0 || req.AfterMsgID != "":
		seq, exact := st.SeekOffset(ch, envelope.Offset{Time: req.AfterTime, MsgID: req.AfterMsgID})
		from = seq
		if exact {
			from = seq + 1
		}
	case req.Since != 0:
		from = st.SeekTime(ch, time.Unix(0, req.Since))
	}
	size := 0
	through, last, err := st.ReadRange(ch, from, to, func(rec store.Record) bool {
		if len(page.Records) >= limit {
			return false
		}
		var data []byte
		if req.Binary {
			data = history.TakeData(rec.Tags) // rec.Tags is this read's own map
		}
		pr := history.PageRecord{Time: rec.Time.UnixNano(), MsgID: rec.MsgID, Nick: rec.Nick, Tags: rec.Tags, Body: rec.Body}
		n := pr.Size(data)
		if len(page.Records) > 0 && size+n > history.MaxPageBytes {
			return false
		}
		page.Add(pr, data)
		size += n
		return true
	})
	if err != nil {
		return nil, err
	}
	page.Through, page.Last = through, last
	if through >= last {
		page.End = true
	} else {
		page.Remaining = last - through
	}
	return page.Encode()
}

// serveCommitted answers one CommitRequest from st as recorder self of
// namespace ns: the last line before the request's Before that carries a
// HistoryClaim of the group with a committed offset, found with dec,
// looking back at most scan lines (then the answer says where to go on
// from).
func serveCommitted(ctx context.Context, st *store.Store, ns, self string, scan int, dec *envelope.Decoder, req history.CommitRequest) ([]byte, error) {
	if err := errors.Join(mesh.ValidateTopic(ns, req.Topic, 0), mesh.ValidateGroup(req.Group)); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	ch := strings.ToLower(mesh.Channel(ns, req.Topic))
	ans := history.CommitAnswer{Recorder: self}
	scanned := 0
	err := st.ScanBack(ch, req.Before, func(rec store.Record) bool {
		if ctx.Err() != nil {
			return false
		}
		if scanned++; scanned > scan {
			ans.Seq = rec.Seq + 1 // go on from here
			return false
		}
		line := history.PageRecord{Time: rec.Time.UnixNano(), MsgID: rec.MsgID, Nick: rec.Nick, Tags: rec.Tags, Body: rec.Body}
		if _, ok := history.ClaimedOffset(dec, &line, req.Group); ok {
			ans.Found = &line
			ans.Seq = rec.Seq
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ans.Encode()
}

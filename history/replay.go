package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// Replay protocol (docs/PROTOCOL.md §7): the reader pulls pages from a
// recorder with requests (method MethodRead to service Service); each
// request is the credit for one page, so a recorder never sends more than
// its reader asked for, and a slow reader slows the replay, not the
// server. A page names the offset of its last line; the next request
// starts after it. A page with End set is the end marker: nothing was
// recorded after it when it was read.

// Service is the history recorder's service name; MethodRead the method
// that serves pages.
const (
	Service    = "history"
	MethodRead = "history.read"
)

// Page bounds.
const (
	DefaultPageRecords = 500
	MaxPageRecords     = 2000
	MaxPageBytes       = 32 << 10
)

// ReadRequest asks for one page of a topic's recorded lines. The page
// starts after the line at After, else at the first line at or after
// Since, else at the first line kept.
type ReadRequest struct {
	Topic      string `cbor:"1,keyasint"`
	AfterTime  int64  `cbor:"2,keyasint,omitempty"` // Unix nanoseconds
	AfterMsgID string `cbor:"3,keyasint,omitempty"`
	Since      int64  `cbor:"4,keyasint,omitempty"` // Unix nanoseconds
	Max        int    `cbor:"5,keyasint,omitempty"` // records, ≤ MaxPageRecords
}

// PageRecord is one recorded line in a page.
type PageRecord struct {
	_     struct{} `cbor:",toarray"`
	Time  int64    // Unix nanoseconds
	MsgID string
	Nick  string
	Tags  map[string]string
	Body  string
}

// Page is a recorder's answer to a ReadRequest.
type Page struct {
	Records []PageRecord `cbor:"1,keyasint"`
	// End: no line was recorded after this page's last when it was read.
	End bool `cbor:"2,keyasint,omitempty"`
	// Remaining counts the lines recorded after this page.
	Remaining uint64 `cbor:"3,keyasint,omitempty"`
	// Recorder is the instance that answered.
	Recorder string `cbor:"4,keyasint,omitempty"`
}

var (
	pageEnc cbor.EncMode
	pageDec cbor.DecMode
)

func init() {
	var err error
	if pageEnc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	pageDec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  8,
		MaxArrayElements: MaxPageRecords,
		MaxMapPairs:      256,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// ErrMalformedPage is returned for a request or page that does not decode.
var ErrMalformedPage = errors.New("history: malformed page")

// DecodePage reads a Page.
func DecodePage(b []byte) (*Page, error) {
	var p Page
	if err := pageDec.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPage, err)
	}
	return &p, nil
}

// Replayed is one recorded envelope handed to a Replay callback.
type Replayed struct {
	// Offset is the offset of the line that carried the envelope (its last
	// line, for a fragmented one).
	Offset Offset
	// Nick sent it.
	Nick     string
	Envelope *envelope.Envelope
}

// ReplayOptions tunes Replay.
type ReplayOptions struct {
	// After starts after this line; else Since starts at the first line at
	// or after that time; else the replay starts at the first line kept.
	After *Offset
	Since time.Time
	// PageRecords is the page size (DefaultPageRecords).
	PageRecords int
	// Decoder decodes and verifies the replayed lines; nil uses one that
	// accepts unsigned envelopes and checks no signatures.
	Decoder *envelope.Decoder
	// Progress, when set, is called after each page with the lines so far
	// and the lines still recorded after them.
	Progress func(done, remaining uint64)
	// Overlap is how far back a replay goes when another recorder takes
	// over mid-way (5 s): recorders on linked servers may order lines of
	// different senders differently, so "after this line" in one recorder's
	// order is not in the other's. Envelopes seen in the overlap are
	// skipped by id.
	Overlap time.Duration
}

// ReplayStats sums up a replay.
type ReplayStats struct {
	Lines, Envelopes, Pages uint64
	// Rejected counts lines that did not decode (human chatter included).
	Rejected uint64
	// Last is the offset of the last line replayed (the place to resume).
	Last Offset
}

// Replay streams the recorded envelopes of topic to fn, in the order the
// recorder kept them, until the end marker, an error from fn, or ctx.
// Pages come from the history service by request, one at a time: the
// reader's pace sets the recorder's. If the recorder that answered goes
// away, the next page comes from another one, after the last offset
// delivered (lines recorded by both are then seen again: callers
// de-duplicate by envelope id, as every subscriber does).
func Replay(ctx context.Context, n *mesh.Node, topic string, o ReplayOptions, fn func(Replayed) error) (ReplayStats, error) {
	var st ReplayStats
	dec := o.Decoder
	if dec == nil {
		dec = envelope.NewDecoder(envelope.DecoderConfig{})
	}
	size := o.PageRecords
	if size <= 0 {
		size = DefaultPageRecords
	}
	overlap := o.Overlap
	if overlap <= 0 {
		overlap = 5 * time.Second
	}
	req := ReadRequest{Topic: topic, Max: min(size, MaxPageRecords)}
	recent := envelope.NewGuard(maxRecentIDs, 0) // envelope ids delivered lately
	var recorder string
	skipping := false
	switch {
	case o.After != nil:
		req.AfterTime, req.AfterMsgID = o.After.Time.UnixNano(), o.After.MsgID
	case !o.Since.IsZero():
		req.Since = o.Since.UnixNano()
	}
	for {
		body, err := pageEnc.Marshal(req)
		if err != nil {
			return st, err
		}
		// Every page of one topic goes to the same recorder while the
		// membership holds: its pages follow one order.
		out, err := n.Request(ctx, Service, MethodRead, body, mesh.WithKey(topic))
		if err != nil {
			return st, fmt.Errorf("history: reading %s: %w", topic, err)
		}
		page, err := DecodePage(out)
		if err != nil {
			return st, err
		}
		st.Pages++
		if recorder != "" && page.Recorder != recorder && st.Lines > 0 && !skipping {
			// Another recorder answered: go back by the overlap in its
			// order and skip what was delivered.
			recorder, skipping = page.Recorder, true
			req.AfterTime, req.AfterMsgID, req.Since = 0, "", st.Last.Time.Add(-overlap).UnixNano()
			continue
		}
		recorder, skipping = page.Recorder, false
		for _, r := range page.Records {
			at := time.Unix(0, r.Time).UTC()
			st.Lines++
			st.Last = Offset{Time: at, MsgID: r.MsgID}
			envs, mesh, err := dec.Decode(r.Nick, r.Tags, r.Body, at)
			if !mesh || err != nil {
				st.Rejected++
			}
			for _, env := range envs {
				if !recent.Add(env.ID) {
					continue // delivered before the switch
				}
				st.Envelopes++
				if err := fn(Replayed{Offset: st.Last, Nick: r.Nick, Envelope: env}); err != nil {
					return st, err
				}
			}
		}
		if o.Progress != nil {
			o.Progress(st.Lines, page.Remaining)
		}
		if page.End || len(page.Records) == 0 {
			return st, nil
		}
		req.AfterTime, req.AfterMsgID, req.Since = st.Last.Time.UnixNano(), st.Last.MsgID, 0
	}
}

// maxRecentIDs bounds the ids a replay remembers for the overlap.
const maxRecentIDs = 1 << 16

// Backfiller fills the gaps of a node's multicast subscriptions from the
// history service after a reconnect (mesh.Node.SetBackfiller).
type Backfiller struct {
	n *mesh.Node
	v *envelope.Verifier
}

// NewBackfiller returns a backfiller that replays through n and checks the
// replayed envelopes with v (nil: unsigned envelopes accepted, no
// signatures checked; pass the node's keyring when the mesh signs).
func NewBackfiller(n *mesh.Node, v *envelope.Verifier) *Backfiller {
	return &Backfiller{n: n, v: v}
}

// Backfill implements mesh.Backfiller. Each call decodes with its own
// decoder: subscriptions are caught up concurrently.
func (b *Backfiller) Backfill(ctx context.Context, topic string, since time.Time, fn func(*envelope.Envelope, string, time.Time) error) error {
	dec := envelope.NewDecoder(envelope.DecoderConfig{Verifier: b.v})
	_, err := Replay(ctx, b.n, topic, ReplayOptions{Since: since, Decoder: dec}, func(r Replayed) error {
		return fn(r.Envelope, r.Nick, r.Offset.Time)
	})
	return err
}

var _ mesh.Backfiller = (*Backfiller)(nil)

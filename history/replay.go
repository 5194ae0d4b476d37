package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// Replay protocol (docs/PROTOCOL.md §7.3, §7.4): the reader pulls pages
// from a recorder with requests (method MethodRead to service Service);
// each request is the credit for one page, so a recorder never sends more
// than its reader asked for, and a slow reader slows the replay, not the
// server.
//
// The first page of a replay starts at an offset, a time or the first line
// kept. Every page names the answering recorder, the sequence number (in
// that recorder's store) of the last line it covers (Through) and the
// recorder's last sequence number when it was read (Last). The reader then
// asks that recorder for consecutive ranges of sequence numbers, several
// at a time, and hands the lines on strictly in order. A page with End set
// is the end marker: nothing was recorded after it when it was read.

// DefaultReplayWindow is how many pages a replay keeps asked for at once.
const DefaultReplayWindow = 3

// Replayed is one recorded envelope handed to a Replay callback.
type Replayed = mesh.Recorded

// ReplayOptions tunes Replay.
type ReplayOptions struct {
	// After starts after this line; else Since starts at the first line at
	// or after that time; else the replay starts at the first line kept.
	After *envelope.Offset
	Since time.Time
	// PageRecords bounds the lines of a page (DefaultPageRecords); pages
	// also hold at most MaxPageBytes.
	PageRecords int
	// Window is how many pages are asked for at once
	// (DefaultReplayWindow); 1 asks for one page at a time.
	Window int
	// Decoder decodes and verifies the replayed lines; nil uses one with
	// the node's trust (mesh.Node.NewDecoder): what the node would refuse
	// live it refuses replayed.
	Decoder *envelope.Decoder
	// OnReject, when set, is called for each mesh line or envelope the
	// decoder refused (forged, unsigned where required, unknown key,
	// malformed); human chatter is not reported.
	OnReject func(error)
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
	Last envelope.Offset
	// Switches counts the times another recorder took over mid-way; Cut
	// the pages cut short by the byte bound (the rest of their range was
	// asked for at once).
	Switches, Cut uint64
	// Recorder is the recorder that served the last page.
	Recorder string
}

// maxIdleSwitches bounds the recorder switches in a row that deliver no
// new envelope before Replay gives up.
const maxIdleSwitches = 8

// ErrRecordersChanging is returned when recorders keep taking over from
// each other without the replay getting further.
var ErrRecordersChanging = errors.New("history: the recorders serving the replay keep changing")

// Replay streams the recorded envelopes of topic to fn, in the order the
// recorder kept them, until the end marker, an error from fn, or ctx.
// The first page comes from the recorder the topic routes to; the next
// ones from the same recorder, by its sequence numbers, up to Window
// pages asked for at once: a page is asked for only once a slot is free
// (a page is handed on), so the reader's pace sets the recorder's and at
// most Window pages are held. If another recorder takes over, the replay
// goes back by Overlap in the new recorder's order and skips the
// envelopes it delivered (by id). Replay returns only after every request
// it made has ended.
//
// Lines are decoded and verified with the node's trust (or o.Decoder):
// what the node refuses is counted in ReplayStats.Rejected and reported
// to o.OnReject, never handed to fn. With no recorder answering, Replay
// reads the server's CHATHISTORY where it has one; without it, it fails
// with mesh.ErrNoResponders, or with ErrUnverifiedRecorder when recorders
// are present that this node's keys refuse (a recorder in a signed mesh
// needs the mesh's keys).
func Replay(ctx context.Context, n *mesh.Node, topic string, o ReplayOptions, fn func(Replayed) error) (ReplayStats, error) {
	rp := &replayer{n: n, topic: topic, o: o, fn: fn}
	rp.dec = o.Decoder
	if rp.dec == nil {
		rp.dec = n.NewDecoder()
	}
	rp.size = o.PageRecords
	if rp.size <= 0 {
		rp.size = DefaultPageRecords
	}
	rp.size = min(rp.size, MaxPageRecords)
	rp.window = o.Window
	if rp.window <= 0 {
		rp.window = DefaultReplayWindow
	}
	if rp.o.Overlap <= 0 {
		rp.o.Overlap = 5 * time.Second
	}
	rp.recent = envelope.NewGuard(maxRecentIDs, 0)
	err := rp.run(ctx)
	return rp.st, err
}

// replayer is one Replay.
type replayer struct {
	n      *mesh.Node
	topic  string
	o      ReplayOptions
	fn     func(Replayed) error
	dec    *envelope.Decoder
	recent *envelope.Guard // envelope ids delivered lately
	size   int             // lines per page asked for
	window int
	st     ReplayStats
	// avg estimates a line's pageRecordBytes (0: not known yet).
	avg float64
}

// errSwitch ends a leg of the replay: another recorder answered.
var errSwitch = errors.New("history: another recorder answered")

// run replays in legs: each starts with a page by offset or time and
// goes on by sequence numbers with the recorder that answered it, until
// the end, an error, or another recorder taking over.
func (rp *replayer) run(ctx context.Context) error {
	start := ReadRequest{Topic: rp.topic, Max: rp.size, Binary: true}
	switch {
	case rp.o.After != nil:
		start.AfterTime, start.AfterMsgID = rp.o.After.Time, rp.o.After.MsgID
	case !rp.o.Since.IsZero():
		start.Since = rp.o.Since.UnixNano()
	}
	if err := checkRecorders(ctx, rp.n); err != nil {
		if errors.Is(err, mesh.ErrNoResponders) {
			return rp.fromServer(ctx, fmt.Errorf("history: reading %s: %w", rp.topic, err))
		}
		return err
	}
	idle := 0
	for {
		before := rp.st.Envelopes
		err := rp.leg(ctx, start)
		if errors.Is(err, mesh.ErrNoResponders) {
			return rp.fromServer(ctx, err)
		}
		if !errors.Is(err, errSwitch) {
			return err
		}
		rp.st.Switches++
		if rp.st.Envelopes == before {
			if idle++; idle >= maxIdleSwitches {
				return fmt.Errorf("%w (%d switches in a row without a new envelope)", ErrRecordersChanging, idle)
			}
		} else {
			idle = 0
		}
		if rp.st.Lines > 0 {
			// Go back by the overlap in the new recorder's order; the
			// envelopes delivered are skipped by id.
			start = ReadRequest{Topic: rp.topic, Max: rp.size, Binary: true, Since: rp.st.Last.At().Add(-rp.o.Overlap).UnixNano()}
		}
	}
}

// fromServer goes on from the server's CHATHISTORY when no recorder
// answers (docs/PROTOCOL.md §7.8): from where the replay stands, or as
// asked when nothing came yet. On a server without it, noRecorder stands.
func (rp *replayer) fromServer(ctx context.Context, noRecorder error) error {
	var after time.Time
	var msgid string
	switch {
	case rp.st.Lines > 0:
		after, msgid = rp.st.Last.At(), rp.st.Last.MsgID
	case rp.o.After != nil:
		after, msgid = rp.o.After.At(), rp.o.After.MsgID
	case !rp.o.Since.IsZero():
		after = rp.o.Since.Add(-time.Millisecond) // the server's "after" is exclusive, its times in ms
	}
	err := ChatHistoryPages(ctx, rp.n, rp.topic, after, msgid, func(lines []mesh.HistoryLine) error {
		rp.st.Pages++
		for _, l := range lines {
			envs, isMesh, err := rp.dec.Decode(l.Nick, l.Tags, l.Body, l.Time)
			if err := rp.emit(envelope.OffsetAt(l.Time, l.MsgID), l.Nick, envs, isMesh, err); err != nil {
				return err
			}
		}
		if rp.o.Progress != nil {
			rp.o.Progress(rp.st.Lines, 0)
		}
		return nil
	})
	if errors.Is(err, mesh.ErrNoChatHistory) {
		return noRecorder
	}
	return err
}

// request asks for one page.
func (rp *replayer) request(ctx context.Context, req ReadRequest) (*Page, error) {
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	// Every page of one topic goes to the same recorder: the one the topic
	// routes to, then the one whose sequence numbers the request names,
	// while it is live (its pages follow one order).
	opts := []mesh.RequestOption{mesh.WithKey(rp.topic)}
	if req.Recorder != "" {
		opts = append(opts, mesh.Prefer(req.Recorder))
	}
	out, err := rp.n.Request(ctx, Service, MethodRead, body, opts...)
	if err != nil {
		return nil, fmt.Errorf("history: reading %s: %w", rp.topic, explain(err))
	}
	return DecodePage(out)
}

// fetch is one page asked for by sequence numbers.
type fetch struct {
	from, to uint64
	done     chan struct{}
	page     *Page
	err      error
}

// leg replays from start: the first page, then pages by sequence numbers
// of the recorder that answered it. It returns errSwitch when another
// recorder answers.
func (rp *replayer) leg(ctx context.Context, start ReadRequest) error {
	page, err := rp.request(ctx, start)
	if err != nil {
		return err
	}
	rp.st.Pages++
	recorder := page.Recorder
	rp.st.Recorder = recorder
	if err := rp.deliver(page); err != nil {
		return err
	}
	if page.End || len(page.Records) == 0 {
		return nil
	}
	if page.Through == 0 {
		return rp.sequential(ctx, recorder)
	}

	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	ask := func(from, to uint64) *fetch {
		f := &fetch{from: from, to: to, done: make(chan struct{})}
		req := ReadRequest{Topic: rp.topic, FromSeq: from, Max: int(to - from + 1), Recorder: recorder, Binary: true}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(f.done)
			f.page, f.err = rp.request(lctx, req)
		}()
		return f
	}
	next, known := page.Through+1, page.Last
	var queue []*fetch // in sequence order
	// topUp keeps the window full: the next ranges, up to the last line
	// the recorder reported (at least one, to find out whether more came).
	topUp := func() {
		for len(queue) < rp.window && (next <= known || len(queue) == 0) {
			to := next + uint64(rp.span()) - 1
			if to < next { // overflow
				to = math.MaxUint64
			}
			queue = append(queue, ask(next, to))
			next = to + 1
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("history: reading %s: %w", rp.topic, context.Cause(ctx))
		}
		topUp()
		f := queue[0]
		select {
		case <-f.done:
		case <-ctx.Done():
			return fmt.Errorf("history: reading %s: %w", rp.topic, context.Cause(ctx))
		}
		queue = queue[1:]
		if f.err != nil {
			return f.err
		}
		p := f.page
		rp.st.Pages++
		if p.Moved || p.Recorder != recorder {
			return errSwitch
		}
		// A page covers part of its range (at least one line, unless it
		// is the end) and holds no more lines than it covers.
		if p.Through < f.from-1 || p.Through > f.to || (p.Through < f.from && !p.End) ||
			uint64(len(p.Records)) > p.Through-(f.from-1) {
			return fmt.Errorf("%w: lines %d..%d asked for, page through %d with %d lines", ErrMalformedPage, f.from, f.to, p.Through, len(p.Records))
		}
		if p.End {
			return rp.deliver(p)
		}
		known = max(known, p.Last)
		if p.Through < f.to {
			rp.st.Cut++
			// Cut short by the byte bound: the rest of the range comes
			// next, before the ranges already asked for.
			queue = append([]*fetch{ask(p.Through+1, f.to)}, queue...)
		}
		topUp() // the next pages are on their way while this one is decoded
		if err := rp.deliver(p); err != nil {
			return err
		}
	}
}

// span is how many sequence numbers to ask for in one page: as many lines
// as should fit MaxPageBytes, judging by the lines seen so far.
func (rp *replayer) span() int {
	if rp.avg <= 0 {
		return rp.size
	}
	k := int(MaxPageBytes / (rp.avg * 33 / 32))
	return max(1, min(k, rp.size))
}

// sequential replays from a recorder that does not name sequence numbers
// in its pages: one page at a time, each after the last line's offset.
func (rp *replayer) sequential(ctx context.Context, recorder string) error {
	for {
		req := ReadRequest{Topic: rp.topic, Max: rp.size, Binary: true, AfterTime: rp.st.Last.Time, AfterMsgID: rp.st.Last.MsgID}
		page, err := rp.request(ctx, req)
		if err != nil {
			return err
		}
		rp.st.Pages++
		if page.Recorder != recorder {
			return errSwitch
		}
		if err := rp.deliver(page); err != nil {
			return err
		}
		if page.End || len(page.Records) == 0 {
			return nil
		}
	}
}

// deliver decodes a page's lines and hands their envelopes on in order.
// emit counts one replayed line, at off, and hands its envelopes on,
// skipping those delivered already (before a switch of recorders). A line
// that is not a mesh line, or was rejected (decodeErr), is counted so.
func (rp *replayer) emit(off envelope.Offset, nick string, envs []*envelope.Envelope, isMesh bool, decodeErr error) error {
	rp.st.Lines++
	rp.st.Last = off
	if !isMesh || decodeErr != nil {
		rp.st.Rejected++
	}
	if isMesh && rp.o.OnReject != nil {
		for _, e := range envelope.Errors(decodeErr) {
			rp.o.OnReject(e)
		}
	}
	for _, env := range envs {
		if !rp.recent.Add(env.ID) {
			continue
		}
		rp.st.Envelopes++
		if err := rp.fn(Replayed{Offset: off, Nick: nick, Envelope: env}); err != nil {
			return err
		}
	}
	return nil
}

func (rp *replayer) deliver(page *Page) error {
	bytes := 0
	for i := range page.Records {
		r := &page.Records[i]
		var data []byte
		if len(page.Data) > 0 {
			data = page.Data[i]
		}
		bytes += r.Size(data)
		at := time.Unix(0, r.Time).UTC()
		var envs []*envelope.Envelope
		var err error
		isMesh := true
		if data != nil {
			envs, err = rp.open(r.Nick, r.Tags, data, at)
		} else {
			envs, isMesh, err = rp.dec.Decode(r.Nick, r.Tags, r.Body, at)
		}
		if err := rp.emit(envelope.OffsetAt(at, r.MsgID), r.Nick, envs, isMesh, err); err != nil {
			return err
		}
	}
	if len(page.Records) > 0 {
		a := float64(bytes) / float64(len(page.Records))
		if rp.avg == 0 {
			rp.avg = a
		} else {
			rp.avg = (3*rp.avg + a) / 4
		}
	}
	if rp.o.Progress != nil {
		rp.o.Progress(rp.st.Lines, page.Remaining)
	}
	return nil
}

// open decodes and verifies a whole line's envelope data given as bytes:
// one sealed envelope, or a batch of them (docs/PROTOCOL.md §3.9), sent by
// nick with tags (the record keeps both: the sender binding holds for
// replayed lines as for live ones). Like Decoder.Decode, it returns the
// good envelopes and an error joining the rejections.
func (rp *replayer) open(nick string, tags map[string]string, data []byte, at time.Time) ([]*envelope.Envelope, error) {
	parts, err := envelope.SplitBatch(data)
	if err != nil {
		return nil, err
	}
	envs := make([]*envelope.Envelope, 0, len(parts))
	var errs []error
	for _, p := range parts {
		env, err := rp.dec.OpenFrom(nick, tagsOf(tags), p, at)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		envs = append(envs, env)
	}
	return envs, errors.Join(errs...)
}

// maxRecentIDs bounds the ids a replay remembers for the overlap.
const maxRecentIDs = 1 << 16

// tagsOf is a recorded line's tags for OpenFrom: never nil (the record
// keeps a line's tags, none being none, so the account binding applies).
func tagsOf(tags map[string]string) map[string]string {
	if tags == nil {
		return map[string]string{}
	}
	return tags
}

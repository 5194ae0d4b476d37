package history

import (
	"context"
	"errors"
	"fmt"
	"github.com/meshbot/meshbot/envelope"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// RecorderConfig tunes a Recorder.
type RecorderConfig struct {
	// Rescan is how often the recorder looks for new topics: in the
	// members' heartbeats and in the server's channel list (2 s).
	Rescan time.Duration
	// SkipHeartbeats leaves the heartbeat channel out of the record.
	SkipHeartbeats bool
	Log            *slog.Logger
}

// Recorder journals every mesh channel of a node's namespace into a Store
// and serves pages of it (MethodRead) to Replay.
type Recorder struct {
	n      *mesh.Node
	st     *Store
	cfg    RecorderConfig
	mu     sync.Mutex
	obs    map[string]*mesh.Observer // by topic
	lines  atomic.Uint64
	errs   atomic.Uint64
	filled atomic.Uint64
	wg     sync.WaitGroup
}

// topicLog is where one topic's observed lines go: straight to the store,
// or, while the recorder fills a hole from another recorder, to a bounded
// buffer appended after the filled lines.
type topicLog struct {
	r       *Recorder
	topic   string
	mu      sync.Mutex
	filling bool
	again   bool // the connection dropped during a fill: fill again
	buf     []Record
	ids     map[string]bool // identities of the buffered lines
	dup     map[string]bool // buffered lines the fill brought (not appended again)
	over    uint64          // lines beyond the buffer bound (lost)
}

// maxFillBuffer bounds the live lines held while a hole is filled.
const maxFillBuffer = 200_000

// NewRecorder makes a recorder on n (whose service should be Service) that
// writes to st.
func NewRecorder(n *mesh.Node, st *Store, cfg RecorderConfig) *Recorder {
	if cfg.Rescan <= 0 {
		cfg.Rescan = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{n: n, st: st, cfg: cfg, obs: map[string]*mesh.Observer{}}
}

// Run serves reads and records until ctx ends; it returns after the last
// observer stopped (the store is the caller's to close).
func (r *Recorder) Run(ctx context.Context) error {
	if err := r.n.Handle(MethodRead, r.read); err != nil {
		return err
	}
	if err := r.n.Handle(MethodCommitted, r.committed); err != nil {
		return err
	}
	defer r.wg.Wait()
	defer r.stopAll()
	t := time.NewTicker(r.cfg.Rescan)
	defer t.Stop()
	for {
		if err := r.scan(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Log.Warn("looking for topics", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Lines returns how many lines were recorded; Errors how many could not be.
func (r *Recorder) Lines() uint64  { return r.lines.Load() }
func (r *Recorder) Errors() uint64 { return r.errs.Load() }

// Topics returns the topics being recorded.
func (r *Recorder) Topics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.obs))
	for t := range r.obs {
		out = append(out, t)
	}
	return out
}

// scan observes the topics not observed yet.
func (r *Recorder) scan(ctx context.Context) error {
	topics := map[string]bool{}
	for _, m := range r.n.AllMembers() {
		for _, s := range m.Beat.Subs {
			topics[s.Topic] = true
		}
	}
	listed, err := r.n.Topics(ctx)
	for _, t := range listed {
		topics[t] = true
	}
	if !r.cfg.SkipHeartbeats {
		topics["_hb"] = true
	} else {
		delete(topics, "_hb")
	}
	for t := range topics {
		r.mu.Lock()
		_, have := r.obs[t]
		r.mu.Unlock()
		if have {
			continue
		}
		tl := &topicLog{r: r, topic: t, filling: true, ids: map[string]bool{}, dup: map[string]bool{}}
		o, oerr := r.n.Observe(ctx, t, func(ob mesh.Observation) { tl.record(ctx, ob) }, mesh.ObserveGaps())
		if oerr != nil {
			err = errors.Join(err, fmt.Errorf("observing %s: %w", t, oerr))
			continue
		}
		r.mu.Lock()
		r.obs[t] = o
		r.mu.Unlock()
		r.cfg.Log.Info("recording", "topic", t)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.fill(ctx, t, tl)
		}()
	}
	return err
}

// lineID identifies a line across recorders: its msgid, or without one
// its sender and text.
func lineID(msgid, nick, body string) string {
	if msgid != "" {
		return msgid
	}
	return nick + "\x00" + body
}

// record journals one observed line (the first observation of a batch).
// A gap (the connection dropped) starts a fill of the hole from another
// recorder; lines after it wait in the buffer meanwhile.
func (tl *topicLog) record(ctx context.Context, ob mesh.Observation) {
	if ob.Gap {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if tl.filling {
			tl.again = true
			return
		}
		tl.filling, tl.ids, tl.dup = true, map[string]bool{}, map[string]bool{}
		tl.r.wg.Add(1)
		go func() {
			defer tl.r.wg.Done()
			tl.r.fill(ctx, tl.topic, tl)
		}()
		return
	}
	if ob.Part != 0 {
		return
	}
	rec := Record{
		Channel: strings.ToLower(ob.Channel),
		Time:    ob.Time,
		MsgID:   ob.MsgID,
		Nick:    ob.From,
		Tags:    ob.Tags,
		Body:    ob.Body,
	}
	tl.mu.Lock()
	if tl.filling {
		if len(tl.buf) < maxFillBuffer {
			tl.buf = append(tl.buf, rec)
			tl.ids[lineID(rec.MsgID, rec.Nick, rec.Body)] = true
		} else {
			tl.over++
		}
		tl.mu.Unlock()
		return
	}
	tl.mu.Unlock()
	tl.r.append(rec)
}

func (r *Recorder) append(rec Record) {
	err := r.st.Append(rec)
	if err != nil {
		if r.errs.Add(1)%1000 == 1 {
			r.cfg.Log.Error("recording a line", "channel", rec.Channel, "err", err)
		}
		return
	}
	r.lines.Add(1)
}

// fill copies what another recorder has of topic after this store's last
// line (everything, for a topic new to this store): the hole this recorder
// left while it was down or disconnected, or history from before it
// existed. Live lines wait meanwhile and follow, without the ones the fill
// brought. A disconnect during the fill makes it go again.
func (r *Recorder) fill(ctx context.Context, topic string, tl *topicLog) {
	for {
		r.fillOnce(ctx, topic, tl)
		if tl.handOver() {
			return
		}
	}
}

func (r *Recorder) fillOnce(ctx context.Context, topic string, tl *topicLog) {
	ch := strings.ToLower(mesh.Channel(r.n.Namespace(), topic))
	req := ReadRequest{Topic: topic, Max: DefaultPageRecords}
	// The lines appended before the gap first: the fill starts after them.
	if err := r.st.Flush(); err != nil {
		r.cfg.Log.Warn("flushing the record before a fill", "topic", topic, "err", err)
	}
	if last, ok := r.st.Last(ch); ok {
		req.AfterTime, req.AfterMsgID = last.Time.UnixNano(), last.MsgID
	}
	var filled uint64
	overlap := false // the fill reached a line this recorder received live
	take := func(recs []Record) {
		tl.mu.Lock()
		for _, rec := range recs {
			if id := lineID(rec.MsgID, rec.Nick, rec.Body); tl.ids[id] {
				tl.dup[id] = true // buffered too: appended here, in the fill's order
				overlap = true
			}
		}
		tl.mu.Unlock()
		for _, rec := range recs {
			r.append(rec)
		}
		filled += uint64(len(recs))
		r.filled.Add(uint64(len(recs)))
		if n := len(recs); n > 0 {
			req.AfterTime, req.AfterMsgID = recs[n-1].Time.UnixNano(), recs[n-1].MsgID
		}
	}
	source := "another recorder"
	var err error
	tries := 0
	for ctx.Err() == nil {
		var body, out []byte
		if body, err = pageEnc.Marshal(req); err != nil {
			break
		}
		out, err = r.n.Request(ctx, Service, MethodRead, body, mesh.WithKey(topic), mesh.NotSelf())
		if err != nil {
			break
		}
		var page *Page
		if page, err = DecodePage(out); err != nil {
			break
		}
		recs := make([]Record, len(page.Records))
		for i, pr := range page.Records {
			recs[i] = Record{Channel: ch, Time: time.Unix(0, pr.Time).UTC(), MsgID: pr.MsgID, Nick: pr.Nick, Tags: pr.Tags, Body: pr.Body}
		}
		take(recs)
		if page.End || len(page.Records) == 0 {
			// The other recorder may not have committed the last lines it
			// received: until the fill meets a line received here live,
			// ask again after its commit interval (a few times).
			if overlap || tries >= fillRetries {
				break
			}
			tries++
			pause(ctx, fillRetryDelay)
		}
	}
	if err != nil && ctx.Err() == nil {
		// No other recorder answered: the server's own history, where it
		// has one.
		if !errors.Is(err, mesh.ErrNoResponders) {
			r.cfg.Log.Warn("filling the record from another recorder", "topic", topic, "filled", filled, "err", err)
		}
		source = "the server's CHATHISTORY"
		for ctx.Err() == nil {
			after := time.Time{}
			if req.AfterTime != 0 {
				after = time.Unix(0, req.AfterTime).UTC()
			}
			err = chatHistoryPages(ctx, r.n, topic, after, req.AfterMsgID, func(lines []mesh.HistoryLine) error {
				recs := make([]Record, len(lines))
				for i, l := range lines {
					recs[i] = historyRecord(ch, l)
				}
				take(recs)
				return nil
			})
			if errors.Is(err, mesh.ErrNoChatHistory) {
				err = nil
				break
			}
			tl.mu.Lock()
			waiting := len(tl.buf) > 0
			tl.mu.Unlock()
			// As with a recorder: until the fill meets a line received
			// live (when there is one), ask again a few times.
			if err != nil || overlap || !waiting || tries >= fillRetries {
				break
			}
			tries++
			pause(ctx, fillRetryDelay)
		}
	}
	if err != nil && ctx.Err() == nil {
		r.cfg.Log.Warn("filling the record", "topic", topic, "from", source, "filled", filled, "err", err)
	}
	if filled > 0 {
		r.cfg.Log.Info("filled the record", "topic", topic, "from", source, "lines", filled)
	}
}

// A fill that reached the other recorder's end without meeting a line
// received live asks again fillRetries times, fillRetryDelay apart (more
// than a store's group commit, 100 ms).
const (
	fillRetries    = 10
	fillRetryDelay = 250 * time.Millisecond
)

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// handOver appends the buffered lines the fill did not bring and switches
// to live recording. It reports false, leaving the rest buffered, when the
// connection dropped again meanwhile: the caller fills again first.
func (tl *topicLog) handOver() bool {
	for {
		tl.mu.Lock()
		if tl.again {
			tl.again = false
			tl.mu.Unlock()
			return false
		}
		buf, dup := tl.buf, tl.dup
		tl.buf = nil
		if len(buf) == 0 {
			tl.filling = false
			over := tl.over
			tl.ids, tl.dup, tl.over = nil, nil, 0
			tl.mu.Unlock()
			if over > 0 {
				tl.r.cfg.Log.Error("lines lost while filling the record", "topic", tl.topic, "lost", over)
			}
			return true
		}
		tl.mu.Unlock()
		for _, rec := range buf {
			if !dup[lineID(rec.MsgID, rec.Nick, rec.Body)] {
				tl.r.append(rec)
			}
		}
	}
}

// Filled counts the lines copied from other recorders.
func (r *Recorder) Filled() uint64 { return r.filled.Load() }

func (r *Recorder) stopAll() {
	r.mu.Lock()
	obs := r.obs
	r.obs = map[string]*mesh.Observer{}
	r.mu.Unlock()
	var dropped uint64
	for _, o := range obs {
		o.Stop()
		dropped += o.Dropped()
	}
	if dropped > 0 {
		r.cfg.Log.Error("lines dropped before they were recorded (the store could not keep up)", "dropped", dropped)
	}
}

// Dropped counts lines the observers dropped because the store fell behind.
func (r *Recorder) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d uint64
	for _, o := range r.obs {
		d += o.Dropped()
	}
	return d
}

// read serves one page (docs/PROTOCOL.md §7.3): a range of this
// recorder's sequence numbers, or the page that starts at an offset, a
// time or the first line kept.
func (r *Recorder) read(ctx context.Context, q *mesh.Request) ([]byte, error) {
	var req ReadRequest
	if err := pageDec.Unmarshal(q.Payload, &req); err != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "history: %v", err)
	}
	if err := mesh.ValidateTopic(r.n.Namespace(), req.Topic, 0); err != nil && req.Topic != "_hb" {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "history: %v", err)
	}
	limit := req.Max
	if limit <= 0 || limit > MaxPageRecords {
		limit = DefaultPageRecords
	}
	ch := strings.ToLower(mesh.Channel(r.n.Namespace(), req.Topic))
	page := Page{Recorder: r.n.Service() + "/" + r.n.Instance()}
	var from, to uint64 = 1, ^uint64(0)
	switch {
	case req.Recorder != "" || req.FromSeq != 0:
		if req.Recorder != page.Recorder {
			// Another recorder's sequence numbers: the reader starts over.
			page.Moved = true
			return pageEnc.Marshal(&page)
		}
		from = max(req.FromSeq, 1)
		if to = from + uint64(limit) - 1; to < from {
			to = ^uint64(0)
		}
	case req.AfterTime != 0 || req.AfterMsgID != "":
		o := envelope.Offset{Time: req.AfterTime, MsgID: req.AfterMsgID}
		seq, exact := r.st.SeekOffset(ch, o)
		from = seq
		if exact {
			from = seq + 1
		}
	case req.Since != 0:
		from = r.st.SeekTime(ch, time.Unix(0, req.Since))
	}
	through, last, err := readPage(r.st, ch, from, to, limit, MaxPageBytes, req.Binary, &page)
	if err != nil {
		return nil, mesh.Errorf(mesh.CodeInternal, "history: %v", err)
	}
	page.Through, page.Last = through, last
	if through >= last {
		page.End = true
	} else {
		page.Remaining = last - through
	}
	return pageEnc.Marshal(&page)
}

package recorder

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/internal/wait"
	"github.com/meshbot/meshbot/mesh"
)

// fill copies what another recorder has of topic after this store's last
// line (everything, for a topic new to this store): the hole this recorder
// left while it was down or disconnected, or history from before it
// existed. After a netsplit (docs/PROTOCOL.md §7.10) the hole is not at
// the end: the other side's lines since the split are missing among this
// side's, which the store kept; the fill then asks from the split's start
// and appends only the lines this store lacks (by msgid, or sender and
// text), after its own — reads from any time before the netjoin return
// them. Live lines wait meanwhile and follow, without the ones the fill
// brought. A disconnect during the fill makes it go again.
//
// A fill cut short by the end of the recording (Run's ctx) hands nothing
// over: the store then ends with its last line before the hole, and the
// next start fills from there, the held lines included. Appending them
// would leave the hole before them for good.
func (r *Recorder) fill(ctx context.Context, topic string, tl *topicLog) {
	for {
		r.fillOnce(ctx, topic, tl)
		if ctx.Err() != nil {
			tl.mu.Lock()
			held := len(tl.buf)
			tl.mu.Unlock()
			if held > 0 {
				r.cfg.Log.Info("recording stopped during a fill: the next start fills from the last line kept", "topic", topic, "held", held)
			}
			return
		}
		if tl.handOver() {
			return
		}
	}
}

func (r *Recorder) fillOnce(ctx context.Context, topic string, tl *topicLog) {
	ch := strings.ToLower(mesh.Channel(r.ns, topic))
	// The lines appended before the gap first: the fill starts after them.
	if err := r.st.Flush(); err != nil {
		r.cfg.Log.Warn("flushing the record before a fill", "topic", topic, "err", err)
	}
	tl.mu.Lock()
	since := tl.splitSince
	tl.splitSince = time.Time{}
	tl.mu.Unlock()
	c := fillCursor{r: r, ch: ch, req: history.ReadRequest{Topic: topic, Max: history.DefaultPageRecords}}
	last, held := r.st.Last(ch)
	switch {
	case !since.IsZero():
		c.from(since)
	case held:
		c.after(last)
	}
	// A store that holds lines passes over every line it holds (by
	// msgid), wherever it holds it: after netsplits, another recorder's
	// order differs from this one's, and the lines it has after this
	// store's last one include lines this store holds before it.
	c.checkStore = held
	var filled uint64
	overlap := false // the fill reached a line this recorder received live
	take := func(recs []store.Record) {
		recs = c.fresh(recs)
		tl.mu.Lock()
		if tl.broughtLocked(recs, time.Now()) {
			overlap = true
		}
		tl.mu.Unlock()
		for _, rec := range recs {
			r.append(rec)
		}
		filled += uint64(len(recs))
		r.filled.Add(uint64(len(recs)))
	}
	source := "another recorder"
	var err error
	tries := 0
	for ctx.Err() == nil {
		var body, out []byte
		if body, err = c.req.Encode(); err != nil {
			break
		}
		opts := []mesh.RequestOption{mesh.WithKey(topic), mesh.NotSelf()}
		if c.answered != "" {
			opts = append(opts, mesh.Prefer(c.answered)) // one recorder's order throughout
		}
		out, err = r.n.Request(ctx, history.Service, history.MethodRead, body, opts...)
		if err != nil {
			break
		}
		var page *history.Page
		if page, err = history.DecodePage(out); err != nil {
			break
		}
		if page.Moved || (c.answered != "" && page.Recorder != c.answered) {
			// Another recorder answered (the one the fill stays with
			// left): its order differs around the lines each held live
			// while filling. The page is dropped; the fill goes on with
			// the new one, from a little before the last line taken.
			c.answered = page.Recorder
			c.switched()
			continue
		}
		c.answered = page.Recorder
		recs := make([]store.Record, len(page.Records))
		for i, pr := range page.Records {
			recs[i] = store.Record{Channel: ch, Time: time.Unix(0, pr.Time).UTC(), MsgID: pr.MsgID, Nick: pr.Nick, Tags: pr.Tags, Body: pr.Body}
		}
		take(recs)
		c.paged(page)
		if page.End || len(page.Records) == 0 {
			// The other recorder may not have committed the last lines it
			// received: until the fill meets a line received here live,
			// ask again after its commit interval (a few times).
			if overlap || tries >= fillRetries {
				break
			}
			tries++
			wait.Sleep(ctx, fillRetryDelay)
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
			after, afterID := c.position()
			err = history.ChatHistoryPages(ctx, r.n, topic, after, afterID, func(lines []mesh.HistoryLine) error {
				recs := make([]store.Record, len(lines))
				for i, l := range lines {
					recs[i] = store.Record{Channel: ch, Time: l.Time, MsgID: l.MsgID, Nick: l.Nick, Tags: l.Tags, Body: l.Body}
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
			wait.Sleep(ctx, fillRetryDelay)
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

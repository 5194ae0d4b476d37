package recorder

import (
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
)

// fillCursor is where a fill goes on from. After a page it is the next
// sequence number of the recorder that answered, so that the copy follows
// that recorder's order with no line skipped or repeated, whatever the
// lines' times; the fill keeps asking that recorder while it is live. At
// the start it is after the store's last line: by msgid where the server
// gives msgids; without them (ngIRCd) by time, which is each recorder's own
// clock, so from reorderWindow before that line, passing over the lines
// this store holds from there on. After a netsplit it is the split's
// start, passing over the lines held since (docs/PROTOCOL.md §7.10). When
// another recorder answers, whose order differs from the first one's
// around the lines each held live while filling, it goes back
// reorderWindow before the last line taken. A store that held lines when
// the fill began passes over every line whose msgid it holds anywhere
// (after netsplits the recorders' orders differ).
type fillCursor struct {
	r    *Recorder
	ch   string
	req  history.ReadRequest
	last store.Record // the last line held or taken (zero: none yet)
	// start is where a window began (a split's start, or before a line
	// without msgid); have counts the lines this store held in it by
	// lineID, each passed over once.
	start time.Time
	have  map[string]int
	// answered is the recorder that answered the last page.
	answered string
	// checkStore: a line with a msgid this store holds anywhere is passed
	// over (a store that held lines when the fill began, or once another
	// recorder answered); taken holds the msgids this fill appended, not
	// all flushed to the store's index yet.
	checkStore bool
	taken      map[string]bool
}

// reorderWindow is how far before the last line held a fill asks from
// when lines carry no msgid, or after another recorder answered: more than
// the receive times of one line at two recorders differ (their clocks and
// connections), and than the span of lines two recorders hold in
// different orders (the live lines each held during a fill of its own).
const reorderWindow = 5 * time.Second

// base is a request for the cursor's topic from its start.
func (c *fillCursor) base() history.ReadRequest {
	return history.ReadRequest{Topic: c.req.Topic, Max: history.DefaultPageRecords}
}

// after goes on after rec, a line this store holds.
func (c *fillCursor) after(rec store.Record) {
	c.last = rec
	if rec.MsgID == "" {
		c.from(rec.Time.Add(-reorderWindow))
		return
	}
	c.req = c.base()
	c.req.AfterTime, c.req.AfterMsgID = rec.Time.UnixNano(), rec.MsgID
}

// from goes on from time t, passing over the lines this store holds from
// t on (read after a flush, so that those the fill appended count).
func (c *fillCursor) from(t time.Time) {
	c.req = c.base()
	c.req.Since = t.UnixNano()
	c.start = t
	if err := c.r.st.Flush(); err != nil {
		c.r.cfg.Log.Warn("flushing the record before a fill", "channel", c.ch, "err", err)
	}
	c.have = c.r.heldSince(c.ch, t)
}

// fresh returns the lines of a page or batch this store does not hold
// (all of them outside a window) and moves the cursor past them.
func (c *fillCursor) fresh(recs []store.Record) []store.Record {
	if len(recs) == 0 {
		return recs
	}
	c.last = recs[len(recs)-1]
	if len(c.have) == 0 && !c.checkStore {
		return recs
	}
	kept := recs[:0:0]
	for _, rec := range recs {
		id := lineID(rec.MsgID, rec.Nick, rec.Body)
		if c.have[id] > 0 {
			c.have[id]--
			continue
		}
		if c.checkStore && rec.MsgID != "" {
			if c.taken[rec.MsgID] {
				continue
			}
			if _, held := c.r.st.SeekOffset(c.ch, envelope.Offset{MsgID: rec.MsgID}); held {
				continue
			}
			if c.taken == nil {
				c.taken = map[string]bool{}
			}
			c.taken[rec.MsgID] = true
		}
		kept = append(kept, rec)
	}
	return kept
}

// switched: the next lines come in another recorder's order. The fill
// goes back reorderWindow before the last line taken (or to where it
// started); from flushes the lines taken so far, so that the store's msgid
// index holds them (with neither, none was taken).
func (c *fillCursor) switched() {
	c.checkStore = true
	switch {
	case !c.last.Time.IsZero():
		c.from(c.last.Time.Add(-reorderWindow))
	case !c.start.IsZero():
		c.from(c.start)
	default:
		c.req = c.base()
	}
}

// paged goes on after page, in the answering recorder's sequence numbers.
func (c *fillCursor) paged(page *history.Page) {
	switch {
	case page.Recorder != "" && page.Through > 0:
		c.req = c.base()
		c.req.Recorder, c.req.FromSeq = page.Recorder, page.Through+1
	case len(page.Records) > 0:
		c.after(c.last)
	}
}

// position is where a fill from the server's CHATHISTORY starts: after the
// last line held or taken (its msgid, else its time), or at a window's
// start.
func (c *fillCursor) position() (time.Time, string) {
	if !c.last.Time.IsZero() {
		if c.last.MsgID == "" {
			return c.last.Time.Add(-reorderWindow), ""
		}
		return c.last.Time, c.last.MsgID
	}
	return c.start, ""
}

// heldSince counts, by identity, the lines channel holds from since on
// (reading the store from the first record at or after it).
func (r *Recorder) heldSince(ch string, since time.Time) map[string]int {
	have := map[string]int{}
	from := r.st.SeekTime(ch, since)
	for {
		through, last, err := r.st.ReadRange(ch, from, from+4095, func(rec store.Record) bool {
			have[lineID(rec.MsgID, rec.Nick, rec.Body)]++
			return true
		})
		if err != nil {
			r.cfg.Log.Warn("reading the record before a fill", "channel", ch, "err", err)
			return have
		}
		if through >= last {
			return have
		}
		from = through + 1
	}
}

package mesh

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// bodyMargin is kept free in every PRIVMSG text for what a sender cannot
// see of its own prefix as receivers see it (docs/PROTOCOL.md §3.7).
const bodyMargin = 16

// job is one envelope to send to one target, with whoever waits for it.
type job struct {
	ctx     context.Context
	target  string
	env     *envelope.Envelope
	plain   *envelope.Envelope // env before encryption, when it is encrypted
	sealed  []byte
	lines   []envelope.Line
	gen     uint64 // connection the lines were sized for
	done    chan struct{}
	err     error
	ack     PubAck
	w       *writer
	refused error // set when the server answered a line with an error
	direct  bool  // done once written (DMs: requests, responses); no window
	prio    bool  // jumps the queue (heartbeats); always direct
	batch   int   // events of the batch line it went out in (0: a line of its own)
	notice  bool  // human text (text.go): lines are NOTICEs, there is no envelope
	queued  bool  // counted in writer.unwritten
}

func (j *job) finish(err error) {
	j.w.written(j)
	j.err = err
	close(j.done)
	j.w.outstanding.Add(-1)
}

// window is a run of lines closed by one PING; its PONG confirms them all.
type window struct {
	token string
	jobs  []*job
	lines int
}

// writer owns the outgoing side: it writes lines in windows, at most
// MaxWindows unconfirmed, and confirms jobs when the server answers a
// window's PING (by then the server has processed every line before it).
// Jobs of windows lost with a connection are written again on the next one,
// with the same envelope id, so receivers drop the copies they already had.
type writer struct {
	n       *Node
	in      chan *job
	prio    chan *job // heartbeats: written before anything queued
	pongs   chan string
	conns   chan *connState
	refusal chan refusal

	// Owned by run.
	conn      *connState
	retry     []*job
	inflight  []*window
	cur       *window
	seq       uint64
	buf       []byte // lines to write, one write per window
	direct    []*job // direct jobs in buf
	pend      []*job // small events waiting to share a batch line
	pendSizes []int

	outstanding atomic.Int64 // submitted, not finished
	// unwritten counts the jobs submitted to the queue whose lines are not
	// written yet (queued, taken by run, or back in retry after a lost
	// connection). A direct write happens only while it is 0
	// (writer_direct.go), so it never overtakes them.
	unwritten atomic.Int64
	live      atomic.Pointer[connState] // conn, for direct writes; nil while down

	mu     sync.Mutex
	echoes map[envelope.ID]string // msgid of our echoed envelopes
	older  map[envelope.ID]string // the generation before echoes
}

// maxEchoes bounds one generation of remembered echoes. Echoes nobody
// confirms (heartbeats, jobs that gave up) are forgotten two generations
// later; a window's echoes are confirmed long before that.
const maxEchoes = 1 << 15

func newWriter(n *Node) *writer {
	return &writer{
		n:       n,
		in:      make(chan *job, 1024),
		prio:    make(chan *job, 16),
		pongs:   make(chan string, 64),
		conns:   make(chan *connState, 4),
		refusal: make(chan refusal, 64),
		cur:     &window{},
		echoes:  map[envelope.ID]string{},
		older:   map[envelope.ID]string{},
	}
}

// submit queues j, blocking while the queue is full (backpressure on
// publishers) until ctx ends. A request or response may instead be written
// at once by the caller (writer_direct.go).
func (w *writer) submit(j *job) error {
	if w.writeDirect(j) {
		return nil
	}
	j.w = w
	w.outstanding.Add(1)
	in := w.in
	if j.prio {
		in = w.prio // heartbeats: no order to keep
	} else {
		j.queued = true
		w.unwritten.Add(1)
	}
	select {
	case in <- j:
		return nil
	case <-j.ctx.Done():
		w.written(j)
		w.outstanding.Add(-1)
		return fmt.Errorf("%w: %w", ErrNotConfirmed, context.Cause(j.ctx))
	case <-w.n.done:
		w.written(j)
		w.outstanding.Add(-1)
		return ErrClosed
	}
}

// written notes that j's lines are written, or never will be. The job's
// holder calls it: the submitter until the queue took j, then run.
func (w *writer) written(j *job) {
	if j.queued {
		j.queued = false
		w.unwritten.Add(-1)
	}
}

// Called from the event loop.
func (w *writer) pong(token string) {
	if len(token) > 1 && token[0] == 'w' {
		select {
		case w.pongs <- token:
		case <-w.n.done:
		}
	}
}

func (w *writer) echoed(id envelope.ID, msgid string) {
	w.mu.Lock()
	if len(w.echoes) >= maxEchoes {
		// Start a new generation; the older one is dropped. Never
		// clear the latest: it holds echoes whose PONG is on its way.
		w.echoes, w.older = w.older, w.echoes
		clear(w.echoes)
	}
	w.echoes[id] = msgid
	w.mu.Unlock()
}

// takeEcho returns and forgets the msgid of id's echo, if it came.
func (w *writer) takeEcho(id envelope.ID) (msgid string, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if msgid, ok = w.echoes[id]; ok {
		delete(w.echoes, id)
	} else if msgid, ok = w.older[id]; ok {
		delete(w.older, id)
	}
	return msgid, ok
}

func (w *writer) connected(st *connState) { w.conns <- st }
func (w *writer) disconnected()           { w.conns <- nil }

func (w *writer) run() {
	defer w.n.wg.Done()
	for {
		if w.conn != nil && len(w.retry) > 0 && len(w.inflight) < w.n.cfg.MaxWindows {
			j := w.retry[0]
			w.retry = w.retry[1:]
			w.write(j)
			continue
		}
		var in, prio chan *job
		if w.conn != nil {
			prio = w.prio // direct jobs need no window slot
			if len(w.inflight) < w.n.cfg.MaxWindows {
				in = w.in
			}
		}
		select {
		case j := <-prio:
			w.write(j)
		case j := <-in:
			w.write(j)
		case tok := <-w.pongs:
			w.confirm(tok)
		case r := <-w.refusal:
			w.refuse(r)
		case st := <-w.conns:
			if st == nil {
				w.lost()
			}
			w.conn = st
			w.live.Store(st)
		case <-w.n.done:
			w.failAll(ErrClosed)
			return
		}
	}
}

// write takes j and whatever else is queued, up to a full window, and
// writes it all with one write: the lines, then (when any of them needs a
// confirm) the window's PING. A lone publish is thus confirmed after one
// round trip, and a burst travels in full windows.
func (w *writer) write(j *job) {
	w.add(j)
	for w.cur.lines < w.n.cfg.WindowLines && len(w.buf)+w.pendingBytes() < w.n.cfg.WindowBytes {
		if len(w.retry) > 0 {
			next := w.retry[0]
			w.retry = w.retry[1:]
			w.add(next)
			continue
		}
		select {
		case next := <-w.in:
			w.add(next)
			continue
		default:
		}
		break
	}
	w.flushWindow()
}

// pendingBytes is what the pending small events will take on the wire
// (base64 of their sealed bytes).
func (w *writer) pendingBytes() int {
	n := 0
	for _, size := range w.pendSizes {
		n += size
	}
	return n * 4 / 3
}

// add encodes j's lines for the current connection into the write buffer.
func (w *writer) add(j *job) {
	if err := j.ctx.Err(); err != nil {
		j.finish(fmt.Errorf("%w: %w", ErrNotConfirmed, context.Cause(j.ctx)))
		return
	}
	if !j.notice && (j.lines == nil || j.gen != w.conn.gen) {
		lines, err := envelope.EncodeLines(j.env, j.sealed, w.conn.carrier, w.n.limits(w.conn, j.target))
		if err != nil {
			j.finish(err)
			return
		}
		j.lines, j.gen = lines, w.conn.gen
	}
	if j.direct {
		w.emitPending()
		w.appendLines(j)
		w.direct = append(w.direct, j)
		return
	}
	w.cur.jobs = append(w.cur.jobs, j)
	if w.conn.carrier != envelope.CarrierTag || len(j.lines) != 1 {
		w.emitPending()
		w.appendLines(j)
		return
	}
	// A small event: batch it with the next ones for the same target while
	// they fit one line (docs/PROTOCOL.md §3.9).
	if len(w.pend) > 0 {
		sizes := append(w.pendSizes, len(j.sealed))
		if w.pend[0].target != j.target || len(sizes) > envelope.MaxBatch ||
			!envelope.BatchFits(sizes, w.n.limits(w.conn, j.target)) {
			w.emitPending()
		}
	}
	w.pend = append(w.pend, j)
	w.pendSizes = append(w.pendSizes, len(j.sealed))
}

func (w *writer) appendLines(j *job) {
	j.batch = 0 // a line of its own (also when a batch is resent alone)
	for _, l := range j.lines {
		if j.notice {
			w.buf = appendNotice(w.buf, j.target, l.Body)
			continue
		}
		w.buf = appendPrivmsg(w.buf, l.Tags, j.target, l.Body)
	}
	w.n.stats.linesOut.Add(uint64(len(j.lines)))
	if !j.direct {
		w.cur.lines += len(j.lines)
	}
}

// emitPending writes the pending small events: as their own line when
// alone, else as one batch line.
func (w *writer) emitPending() {
	switch len(w.pend) {
	case 0:
		return
	case 1:
		w.appendLines(w.pend[0])
	default:
		envs := make([]*envelope.Envelope, len(w.pend))
		sealed := make([][]byte, len(w.pend))
		for i, j := range w.pend {
			envs[i], sealed[i] = j.env, j.sealed
			j.batch = len(w.pend)
		}
		l, err := envelope.EncodeBatchLine(envs, sealed, w.n.limits(w.conn, w.pend[0].target))
		if err != nil { // cannot happen: BatchFits was checked
			for _, j := range w.pend {
				w.appendLines(j)
			}
			break
		}
		w.buf = appendPrivmsg(w.buf, l.Tags, w.pend[0].target, l.Body)
		w.n.stats.linesOut.Add(1)
		w.cur.lines++
	}
	w.pend, w.pendSizes = w.pend[:0], w.pendSizes[:0]
}

// flushWindow writes the buffer, closing the window with a PING if it holds
// jobs that wait for a confirm.
func (w *writer) flushWindow() {
	w.emitPending()
	jobs := w.cur.jobs // the window's jobs in this write (direct ones finish below)
	if len(w.cur.jobs) > 0 {
		w.seq++
		w.cur.token = "w" + strconv.FormatUint(w.seq, 10)
		w.buf = append(w.buf, "PING :"+w.cur.token+"\r\n"...)
		w.inflight = append(w.inflight, w.cur)
		w.cur = &window{}
	}
	var err error
	if len(w.buf) > 0 {
		_, err = w.conn.tap.Write(w.buf)
		w.buf = w.buf[:0]
		if cap(w.buf) > 1<<20 {
			w.buf = nil // do not keep a huge buffer after a large payload
		}
	}
	for _, j := range jobs {
		w.written(j) // or lost with the connection: lost() counts it again
	}
	// Direct jobs (requests and responses) are done once written: the
	// answer, or the requester's retry, is their confirm.
	for _, j := range w.direct {
		if err != nil {
			j.finish(fmt.Errorf("%w: %w", ErrDisconnected, err))
		} else {
			if j.env != nil {
				j.ack = PubAck{ID: j.env.ID, Lines: len(j.lines)}
			}
			j.finish(nil)
		}
	}
	w.direct = w.direct[:0]
	// A failed write means the connection is going: drop it; the windows
	// are written again on the next one.
	if err != nil {
		w.n.log.Warn("write failed; dropping the connection", "err", err)
		w.n.dropConnection()
	}
}

// appendPrivmsg appends one PRIVMSG line with client tags to b.
func appendPrivmsg(b []byte, tags map[string]string, target, body string) []byte {
	if len(tags) > 0 {
		b = append(b, '@')
		first := true
		for k, v := range tags {
			if !first {
				b = append(b, ';')
			}
			first = false
			b = append(b, k...)
			if v != "" {
				b = append(b, '=')
				b = appendTagValue(b, v)
			}
		}
		b = append(b, ' ')
	}
	b = append(b, "PRIVMSG "...)
	b = append(b, target...)
	b = append(b, " :"...)
	if strings.IndexAny(body, "\r\n\x00") < 0 {
		b = append(b, body...) // the usual case: nothing to drop
	} else {
		for i := 0; i < len(body); i++ {
			if c := body[i]; c != '\r' && c != '\n' && c != 0 {
				b = append(b, c)
			}
		}
	}
	return append(b, "\r\n"...)
}

// appendTagValue escapes a tag value as IRCv3 message-tags requires.
func appendTagValue(b []byte, v string) []byte {
	if strings.IndexAny(v, tagSpecials) < 0 {
		return append(b, v...) // envelope data (base64url): nothing to escape
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ';':
			b = append(b, `\:`...)
		case ' ':
			b = append(b, `\s`...)
		case '\\':
			b = append(b, `\\`...)
		case '\r':
			b = append(b, `\r`...)
		case '\n':
			b = append(b, `\n`...)
		case 0:
		default:
			b = append(b, c)
		}
	}
	return b
}

// tagSpecials are the bytes appendTagValue escapes or drops.
const tagSpecials = "; \\\r\n\x00"

// confirm completes every window up to and including the one of token
// (PONGs come back in order).
func (w *writer) confirm(token string) {
	for len(w.inflight) > 0 {
		win := w.inflight[0]
		w.inflight = w.inflight[1:]
		for _, j := range win.jobs {
			msgid, echoed := w.takeEcho(j.env.ID)
			j.ack = PubAck{ID: j.env.ID, MsgID: msgid, Lines: len(j.lines), Batch: max(j.batch, 1)}
			if j.batch > 0 {
				j.ack.Lines = 1
			}
			switch {
			case j.refused != nil:
				w.n.stats.refused.Add(1)
				j.finish(j.refused)
			case w.conn.echo && !echoed:
				// The server confirms every accepted line with its echo
				// before the PONG: no echo, not accepted.
				w.n.stats.refused.Add(1)
				j.finish(fmt.Errorf("%w: no echo of %s to %s", ErrRefused, j.env.ID.Short(), j.target))
			default:
				if !w.conn.echo {
					w.n.deliverOwn(j)
				}
				j.finish(nil)
			}
		}
		if win.token == token {
			return
		}
	}
}

// lost moves every unconfirmed job back to the front of the queue.
func (w *writer) lost() {
	var again []*job
	for _, win := range w.inflight {
		again = append(again, win.jobs...)
	}
	again = append(again, w.cur.jobs...)
	for _, j := range again {
		if !j.queued { // written once; to be written again
			j.queued = true
			w.unwritten.Add(1)
		}
	}
	w.retry = append(again, w.retry...)
	w.inflight, w.cur = nil, &window{}
	w.pend, w.pendSizes, w.direct, w.buf = w.pend[:0], w.pendSizes[:0], w.direct[:0], w.buf[:0]
	if len(again) > 0 {
		w.n.stats.resent.Add(uint64(len(again)))
	}
}

func (w *writer) failAll(err error) {
	w.lost()
	for _, j := range w.retry {
		j.finish(err)
	}
	w.retry = nil
	for {
		select {
		case j := <-w.in:
			j.finish(err)
		case j := <-w.prio:
			j.finish(err)
		default:
			return
		}
	}
}

// flush waits until every submitted job is finished or ctx ends.
func (w *writer) flush(ctx context.Context) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for w.outstanding.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refusal is a server error numeric about a target, e.g. 404 (cannot send
// to channel) or 401 (no such nick).
type refusal struct {
	target string
	text   string
}

// refused is called from the event loop for an error numeric.
func (w *writer) refused(r refusal) {
	select {
	case w.refusal <- r:
	case <-w.n.done:
	}
}

// refuse marks the oldest unconfirmed job to r.target that is not marked
// yet: the server answers lines in order.
func (w *writer) refuse(r refusal) {
	for _, win := range append(w.inflight, w.cur) {
		for _, j := range win.jobs {
			if j.refused == nil && strings.EqualFold(j.target, r.target) {
				j.refused = fmt.Errorf("%w: %s", ErrRefused, r.text)
				if p, _ := w.n.talk.paused(j.target); p != nil { // modes.go: the server refuses it for +m
					j.refused = fmt.Errorf("%w: %w: %s", ErrPaused, ErrRefused, r.text)
				}
				return
			}
		}
	}
}

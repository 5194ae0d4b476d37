package mesh

import (
	"sync"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Direct writes. A request or a response is a private message that no
// window confirms (the answer, or the requester's retry, is its confirm).
// The goroutine that sends it — the caller of Request, the request worker
// that answers — writes it to the socket itself when nothing stands in the
// way:
//
//   - the writer runs on the node's current connection;
//   - no job submitted to the queue before it is still unwritten
//     (writer.unwritten is 0), so it overtakes nothing: a PublishAsync
//     followed by a Request from one goroutine reaches the server in that
//     order;
//   - nobody else is writing to the socket at that moment (the writer's
//     window, girc's PONG): then it queues, and the writer puts it in its
//     next write with whatever else is waiting.
//
// That spares each side of a round trip the hand-off to the writer's
// goroutine (the wake-up of another goroutine, often of another thread).
// Everything else — publishes, heartbeats, notices, lines written again
// after a reconnect — goes through the writer as before.

// directBufs holds the buffers of direct writes: a line or a few.
var directBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxDirectBuf is the largest buffer put back into directBufs.
const maxDirectBuf = 64 << 10

// writeDirect writes j on the calling goroutine if it may (see above) and
// reports whether it took j, which it then has finished. It never waits
// for the writer's goroutine. Like the writer, it may block in the
// socket's write while the server does not read, up to
// Config.KeepAliveTimeout. When the write fails it drops the connection
// and leaves j to the queue, which sends it on the next one (receivers
// drop a copy they already have by envelope id).
func (w *writer) writeDirect(j *job) bool {
	if !j.direct || j.prio || j.notice || j.env == nil || j.ctx.Err() != nil {
		return false
	}
	st := w.live.Load()
	if st == nil || st.tap == nil || w.unwritten.Load() > 0 || st != w.n.current() {
		return false // down, behind queued lines, or a connection the writer has not taken up yet
	}
	tap := st.tap
	if !tap.wmu.TryLock() {
		return false
	}
	if w.unwritten.Load() > 0 { // queued meanwhile: it goes first
		tap.wmu.Unlock()
		return false
	}
	lines, err := envelope.EncodeLines(j.env, j.sealed, st.carrier, w.n.limits(st, j.target))
	if err != nil {
		tap.wmu.Unlock()
		j.w = w
		w.outstanding.Add(1)
		j.finish(err)
		return true
	}
	bp := directBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, l := range lines {
		buf = appendPrivmsg(buf, l.Tags, j.target, l.Body)
	}
	_ = tap.Conn.SetWriteDeadline(time.Now().Add(w.n.cfg.KeepAliveTimeout))
	_, err = tap.Conn.Write(buf)
	tap.wmu.Unlock()
	if cap(buf) <= maxDirectBuf {
		*bp = buf
		directBufs.Put(bp)
	}
	if err != nil {
		w.n.log.Warn("write failed; dropping the connection", "err", err)
		if w.n.current() == st {
			w.n.client.Close()
		}
		return false
	}
	w.n.stats.linesOut.Add(uint64(len(lines)))
	j.lines, j.gen = lines, st.gen
	j.ack = PubAck{ID: j.env.ID, Lines: len(lines)}
	j.w = w
	w.outstanding.Add(1)
	j.finish(nil)
	return true
}

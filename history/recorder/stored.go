package recorder

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/mesh"
)

// Stored publishes (docs/PROTOCOL.md §7.9): a publisher asks a recorder to
// record a topic before its first publish there (history.MethodTrack), and
// may ask it to confirm that the line carrying an envelope is journaled
// (history.MethodStored): appended to the store and committed.

// storedBacklog bounds how far back a stored request looks for its line
// in the record before it waits for it.
const storedBacklog = 10_000

// track serves history.MethodTrack: record the topic from now on; answer
// once in its channel.
func (r *Recorder) track(_ context.Context, q *mesh.Request) ([]byte, error) {
	req, err := history.DecodeTrackRequest(q.Payload)
	if err != nil {
		return coded(nil, err)
	}
	if err := history.ValidRecordTopic(r.ns, req.Topic); err != nil {
		return coded(nil, fmt.Errorf("%w: %w", errBadRequest, err))
	}
	r.mu.Lock()
	ctx := r.ctx
	r.mu.Unlock()
	if ctx == nil {
		return nil, mesh.Errorf(mesh.CodeShuttingDown, "the recorder is not running")
	}
	if err := r.observe(ctx, req.Topic); err != nil {
		return coded(nil, err)
	}
	return coded((&history.StoredAnswer{Recorder: r.name()}).Encode())
}

// storedQuery serves history.MethodStored: answer once the line that
// carries the envelope is journaled, or fail at the request's deadline.
func (r *Recorder) storedQuery(ctx context.Context, q *mesh.Request) ([]byte, error) {
	req, err := history.DecodeStoredRequest(q.Payload)
	if err != nil {
		return coded(nil, err)
	}
	if err := history.ValidRecordTopic(r.ns, req.Topic); err != nil {
		return coded(nil, fmt.Errorf("%w: %w", errBadRequest, err))
	}
	ch := strings.ToLower(mesh.Channel(r.ns, req.Topic))
	w := &storedWait{id: req.ID, msgid: req.MsgID, done: make(chan uint64, 1)}
	r.waits.add(ch, w)
	defer r.waits.remove(ch, w)
	// Lines appended before the wait was registered: commit, then look.
	if err := r.st.Flush(); err != nil {
		return coded(nil, err)
	}
	var seq uint64
	looked := 0
	err = r.st.ScanBack(ch, 0, func(rec store.Record) bool {
		looked++
		if w.matches(rec) {
			seq = rec.Seq
			return false
		}
		return looked < storedBacklog
	})
	if err != nil {
		return coded(nil, err)
	}
	if seq == 0 {
		select {
		case seq = <-w.done:
		case <-ctx.Done():
			return nil, mesh.Errorf(mesh.CodeDeadline, "%s has not recorded envelope %s on %s", r.name(), req.ID.Short(), req.Topic)
		}
		if err := r.st.Flush(); err != nil { // journaled: committed
			return coded(nil, err)
		}
	}
	return coded((&history.StoredAnswer{Recorder: r.name(), Seq: seq}).Encode())
}

// storedWaits are the stored requests waiting for their line, by channel.
type storedWaits struct {
	mu sync.Mutex
	by map[string][]*storedWait
}

// storedWait is one: the envelope id (and msgid) of the line it waits for.
type storedWait struct {
	id    envelope.ID
	msgid string
	done  chan uint64 // the line's sequence number
}

func (ws *storedWaits) add(ch string, w *storedWait) {
	ws.mu.Lock()
	ws.by[ch] = append(ws.by[ch], w)
	ws.mu.Unlock()
}

func (ws *storedWaits) remove(ch string, w *storedWait) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	list := ws.by[ch]
	for i, x := range list {
		if x == w {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(ws.by, ch)
	} else {
		ws.by[ch] = list
	}
}

// appended tells the waiters of rec's channel that rec was appended.
func (ws *storedWaits) appended(rec store.Record) {
	ch := strings.ToLower(rec.Channel)
	ws.mu.Lock()
	list := ws.by[ch]
	var hit []*storedWait
	for _, w := range list {
		if w.matches(rec) {
			hit = append(hit, w)
		}
	}
	ws.mu.Unlock()
	for _, w := range hit {
		select {
		case w.done <- rec.Seq:
		default:
		}
	}
}

// matches reports whether rec is the line w waits for: its msgid, or
// (without one) an envelope of the line with w's id — for a fragmented
// envelope, its last fragment, by short id.
func (w *storedWait) matches(rec store.Record) bool {
	if w.msgid != "" && rec.MsgID != "" {
		return rec.MsgID == w.msgid
	}
	ids, short := lineIDs(rec)
	if short != "" {
		return short == w.id.Short()
	}
	for _, id := range ids {
		if id == w.id {
			return true
		}
	}
	return false
}

// lineIDs returns the ids of the envelopes a whole line carries, or, for
// the last fragment of an envelope, its short id. Nothing is verified:
// the line is only being found.
func lineIDs(rec store.Record) (ids []envelope.ID, short string) {
	f, isMesh, err := envelope.ParseLine(rec.Tags, rec.Body)
	if !isMesh || err != nil {
		return nil, ""
	}
	if f.Count > 1 {
		if f.Index == f.Count {
			return nil, f.Short
		}
		return nil, ""
	}
	data, err := base64.RawURLEncoding.DecodeString(f.Data)
	if err != nil {
		return nil, ""
	}
	parts, err := envelope.SplitBatch(data)
	if err != nil {
		return nil, ""
	}
	for _, p := range parts {
		env, err := envelope.Unmarshal(p, 0)
		if err == nil {
			ids = append(ids, env.ID)
		}
	}
	return ids, ""
}

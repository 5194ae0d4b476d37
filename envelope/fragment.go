package envelope

import (
	"container/list"
	"fmt"
	"strings"
	"time"
)

// ReassemblyLimits bound what a Reassembler holds. Zero fields take the
// defaults shown.
type ReassemblyLimits struct {
	MaxEnvelope     int           // decoded bytes per envelope (DefaultMaxEnvelope)
	MaxFragments    int           // fragments per envelope (4096)
	MaxPerSender    int           // envelopes in flight per sender (16)
	MaxPendingBytes int           // all partial envelopes together (64 MiB)
	MaxAge          time.Duration // from first fragment to last (30 s)
}

func (l ReassemblyLimits) withDefaults() ReassemblyLimits {
	if l.MaxEnvelope <= 0 {
		l.MaxEnvelope = DefaultMaxEnvelope
	}
	if l.MaxFragments <= 0 {
		l.MaxFragments = 4096
	}
	if l.MaxPerSender <= 0 {
		l.MaxPerSender = 16
	}
	if l.MaxPendingBytes <= 0 {
		l.MaxPendingBytes = 64 << 20
	}
	if l.MaxAge <= 0 {
		l.MaxAge = 30 * time.Second
	}
	return l
}

// EvictReason says why a partial envelope was dropped.
type EvictReason int

// Eviction reasons, counted in ReassemblyStats.Evicted.
const (
	EvictAge      EvictReason = iota // not complete within MaxAge
	EvictSender                      // the sender had MaxPerSender in flight
	EvictMemory                      // MaxPendingBytes reached; oldest dropped
	EvictTooLarge                    // over MaxEnvelope
	EvictMismatch                    // a fragment disagreed with the others
	numEvictReasons
)

func (r EvictReason) String() string {
	return [...]string{"age", "sender-limit", "memory", "too-large", "mismatch"}[r]
}

// ReassemblyStats are counters since the Reassembler was made.
type ReassemblyStats struct {
	Completed uint64                  // envelopes reassembled from fragments
	Pending   int                     // partial envelopes held now
	Bytes     int                     // bytes held now
	Evicted   [numEvictReasons]uint64 // by EvictReason
}

type partial struct {
	key     string
	sender  string
	created time.Time
	chunks  []string
	have    int
	bytes   int
	elem    *list.Element
}

// Reassembler joins fragment frames back into sealed envelope bytes. It is a
// pure core: not safe for concurrent use, reads no clock ("now" is passed
// in), starts nothing. Memory is bounded by ReassemblyLimits; what does not
// fit is evicted and counted, never grown.
type Reassembler struct {
	lim      ReassemblyLimits
	pending  map[string]*partial
	order    *list.List // of *partial, oldest first
	perSend  map[string]int
	bytes    int
	complete uint64
	evicted  [numEvictReasons]uint64
}

// NewReassembler returns a Reassembler with the given limits.
func NewReassembler(lim ReassemblyLimits) *Reassembler {
	return &Reassembler{
		lim:     lim.withDefaults(),
		pending: map[string]*partial{},
		order:   list.New(),
		perSend: map[string]int{},
	}
}

// Limits returns the limits in force (defaults filled in).
func (r *Reassembler) Limits() ReassemblyLimits { return r.lim }

// maxData is the most base64 text one envelope may take.
func (r *Reassembler) maxData() int { return b64.EncodedLen(r.lim.MaxEnvelope) }

// Add takes one frame from sender (its nick or full prefix) and returns the
// sealed envelope bytes when they are complete, or nil while fragments are
// still missing. Errors wrap ErrFragment, ErrTooLarge or ErrMalformed; the
// partial envelope concerned, if any, is dropped.
func (r *Reassembler) Add(sender string, f Frame, now time.Time) ([]byte, error) {
	out, done, err := r.add(nil, sender, f, now)
	if !done {
		return nil, err
	}
	return out, nil
}

// add is Add that decodes complete envelope bytes into dst (appended
// from its length) and says whether they are complete.
func (r *Reassembler) add(dst []byte, sender string, f Frame, now time.Time) (out []byte, done bool, err error) {
	r.Expire(now)
	if f.Count <= 1 {
		out, err = r.decode(dst, f.Data)
		return out, err == nil, err
	}
	if f.Count > r.lim.MaxFragments {
		r.evicted[EvictTooLarge]++
		return nil, false, fmt.Errorf("%w: %d fragments, limit %d", ErrTooLarge, f.Count, r.lim.MaxFragments)
	}
	if f.Index < 1 || f.Index > f.Count {
		return nil, false, fmt.Errorf("%w: index %d of %d", ErrFragment, f.Index, f.Count)
	}
	key := sender + "\x00" + f.Short
	p := r.pending[key]
	if p == nil {
		if r.perSend[sender] >= r.lim.MaxPerSender {
			r.evictOldestOf(sender)
		}
		p = &partial{key: key, sender: sender, created: now, chunks: make([]string, f.Count)}
		p.bytes = 16 * f.Count // the slot array itself
		p.elem = r.order.PushBack(p)
		r.pending[key] = p
		r.perSend[sender]++
		r.bytes += p.bytes
	}
	if len(p.chunks) != f.Count || p.chunks[f.Index-1] != "" {
		r.drop(p, EvictMismatch)
		return nil, false, fmt.Errorf("%w: fragment %d/%d of %s does not match the %d seen", ErrFragment, f.Index, f.Count, f.Short, p.have)
	}
	if p.bytes+len(f.Data) > r.maxData()+16*f.Count {
		r.drop(p, EvictTooLarge)
		return nil, false, fmt.Errorf("%w: fragments of %s exceed %d bytes", ErrTooLarge, f.Short, r.lim.MaxEnvelope)
	}
	p.chunks[f.Index-1] = f.Data
	p.have++
	p.bytes += len(f.Data)
	r.bytes += len(f.Data)
	for r.bytes > r.lim.MaxPendingBytes && r.order.Len() > 0 {
		oldest := r.order.Front().Value.(*partial)
		r.drop(oldest, EvictMemory)
		if oldest == p {
			return nil, false, fmt.Errorf("%w: reassembly memory full", ErrTooLarge)
		}
	}
	if p.have < len(p.chunks) {
		return nil, false, nil
	}
	r.remove(p)
	r.complete++
	out, err = r.decode(dst, strings.Join(p.chunks, ""))
	return out, err == nil, err
}

// decode appends the bytes of base64 data to dst.
func (r *Reassembler) decode(dst []byte, data string) ([]byte, error) {
	if len(data) > r.maxData() {
		r.evicted[EvictTooLarge]++
		return nil, fmt.Errorf("%w: %d bytes of base64, limit %d", ErrTooLarge, len(data), r.maxData())
	}
	return appendData(dst, data) // b64.go: checked and decoded

}

// Expire drops partial envelopes older than MaxAge.
func (r *Reassembler) Expire(now time.Time) {
	for r.order.Len() > 0 {
		p := r.order.Front().Value.(*partial)
		if now.Sub(p.created) <= r.lim.MaxAge {
			return
		}
		r.drop(p, EvictAge)
	}
}

// Forget drops every partial envelope of sender (it left the server: its
// missing fragments will never come).
func (r *Reassembler) Forget(sender string) {
	for e := r.order.Front(); e != nil; {
		next := e.Next()
		if p := e.Value.(*partial); p.sender == sender {
			r.remove(p)
		}
		e = next
	}
}

func (r *Reassembler) evictOldestOf(sender string) {
	for e := r.order.Front(); e != nil; e = e.Next() {
		if p := e.Value.(*partial); p.sender == sender {
			r.drop(p, EvictSender)
			return
		}
	}
}

func (r *Reassembler) drop(p *partial, why EvictReason) {
	r.evicted[why]++
	r.remove(p)
}

func (r *Reassembler) remove(p *partial) {
	r.order.Remove(p.elem)
	delete(r.pending, p.key)
	if r.perSend[p.sender]--; r.perSend[p.sender] <= 0 {
		delete(r.perSend, p.sender)
	}
	r.bytes -= p.bytes
}

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblyStats {
	return ReassemblyStats{Completed: r.complete, Pending: len(r.pending), Bytes: r.bytes, Evicted: r.evicted}
}

package state

import (
	"bytes"
	"cmp"
	"slices"
	"strings"

	"github.com/meshbot/meshbot/envelope"
)

// ServePage answers a snapshot request from the replica's copy (§8.5):
// the updates that won the keys after req.After through req.Until, each
// once, at most maxBytes of sealed envelopes (at least one key), the
// domain's top update first unless the requester has it. An update that
// won keys but has no sealed bytes (never the case in the runtime) is
// left out. Then is filled when the range is open-ended.
func (r *Replica) ServePage(req *PageRequest, maxBytes int) *Page {
	if maxBytes <= 0 {
		maxBytes = DefaultPageBytes
	}
	if req.MaxBytes > 0 && int(req.MaxBytes) < maxBytes {
		maxBytes = int(req.MaxBytes)
	}
	have := make(map[envelope.ID]bool, len(req.Have)+8)
	for _, id := range req.Have {
		have[id] = true
	}
	p := &Page{Version: r.version, Keys: uint64(r.live)}
	size := 0
	add := func(src *source) {
		if have[src.id] || src.sealed == nil {
			return
		}
		have[src.id] = true
		p.Updates = append(p.Updates, Sealed{Envelope: src.sealed, Nick: src.from})
		size += len(src.sealed)
	}
	if r.top != nil {
		add(r.top)
	}
	keys := r.sorted()
	i := r.after(req.After)
	p.Last = req.After
	for covered := 0; i < len(keys); i++ {
		k := keys[i]
		if req.Until != "" && k > req.Until {
			break
		}
		src := r.slots[k].src
		if covered > 0 && !have[src.id] && src.sealed != nil && size+len(src.sealed) > maxBytes {
			break
		}
		covered++
		add(src)
		p.Last = k
	}
	p.End = i >= len(keys) || (req.Until != "" && keys[i] > req.Until)
	if p.End && req.Until != "" {
		p.Last = req.Until
	}
	if req.Until == "" && !p.End {
		// Where the next pages would start, cut the same way (without
		// the de-duplication, which only makes them smaller).
		size = 0
		for ; i < len(keys) && len(p.Then) < MaxThen; i++ {
			n := len(r.slots[keys[i]].src.sealed)
			if size > 0 && size+n > maxBytes {
				p.Then = append(p.Then, keys[i-1])
				size = 0
			}
			size += n
		}
	}
	return p
}

// after returns the index of the first key after key ("" : the first).
func (r *Replica) after(key string) int {
	keys := r.sorted()
	if key == "" {
		return 0
	}
	lo, hi := 0, len(keys)
	for lo < hi {
		m := (lo + hi) / 2
		if strings.Compare(keys[m], key) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Have returns the ids a reader should list in PageRequest.Have: updates
// it holds that write many keys (a whole-state update shows up in every
// page of its keys otherwise) and the top update, at most MaxHave, the
// largest first.
func (r *Replica) Have() []envelope.ID {
	type cand struct {
		id   envelope.ID
		size int
	}
	seen := map[envelope.ID]bool{}
	var cs []cand
	if r.top != nil {
		seen[r.top.id] = true
		cs = append(cs, cand{r.top.id, 1 << 30})
	}
	for _, s := range r.slots {
		if s.src.refs > 1 && !seen[s.src.id] {
			seen[s.src.id] = true
			cs = append(cs, cand{s.src.id, len(s.src.sealed)})
		}
	}
	// Largest first, by id among equals (deterministic).
	slices.SortFunc(cs, func(a, b cand) int {
		if a.size != b.size {
			return cmp.Compare(b.size, a.size)
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	out := make([]envelope.ID, 0, min(len(cs), MaxHave))
	for _, c := range cs {
		if len(out) == MaxHave {
			break
		}
		out = append(out, c.id)
	}
	return out
}

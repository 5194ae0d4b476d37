package state

import (
	"fmt"
)

// A Loader fetches a domain's current state into a replica, page by page
// (§8.5): it says which key ranges to ask a holder for and keeps up to
// Window requests outstanding, using the cut points a page announces
// (Page.Then) to ask for the following ranges at once. Pages may be
// answered in any order and by different holders; the updates they carry
// merge into the replica like live ones, so a range asked twice costs only
// bandwidth. Like the Replica it is a pure state machine with one owner.
//
// The driver's loop:
//
//	for !l.Done() {
//		for _, rq := range l.Requests() { send rq.Request to a holder }
//		on an answer: verify and Receive each update, then l.Page(seq, page)
//		on a failure (holder gone, timeout): l.Failed(seq)
//	}
type Loader struct {
	r       *Replica
	window  int
	todo    []keyRange // ranges not asked yet, in order
	out     map[int]keyRange
	seq     int
	version uint64 // the highest domain version a page announced
	pages   int
}

// keyRange is (after, until]; "" until is open-ended.
type keyRange struct{ after, until string }

// LoadRequest is one page request to send: Seq names it for Page/Failed.
type LoadRequest struct {
	Seq     int
	Request PageRequest
}

// DefaultWindow is how many page requests a Loader keeps outstanding (as
// history replay, §7.4: InspIRCd stalls on larger bursts).
const DefaultWindow = 3

// NewLoader starts loading the whole domain into r.
func NewLoader(r *Replica, window int) *Loader {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Loader{r: r, window: window, todo: []keyRange{{}}, out: map[int]keyRange{}}
}

// Requests returns the requests to send now, at most enough to fill the
// window.
func (l *Loader) Requests() []LoadRequest {
	var rqs []LoadRequest
	for len(l.out) < l.window && len(l.todo) > 0 {
		kr := l.todo[0]
		l.todo = l.todo[1:]
		l.seq++
		l.out[l.seq] = kr
		rqs = append(rqs, LoadRequest{Seq: l.seq, Request: PageRequest{Domain: l.r.cfg.Domain, After: kr.after, Until: kr.until, Have: l.r.Have()}})
	}
	return rqs
}

// Page takes the answer to request seq, whose updates the driver has
// already handed to the replica. A page that ends before its range asks
// for the rest first; an open-ended range is split at the page's Then.
// A page that does not fit its request is an error (the range is asked
// again; the driver should ask another holder).
func (l *Loader) Page(seq int, p *Page) error {
	kr, ok := l.out[seq]
	if !ok {
		return nil // answered already, or a request of an earlier load
	}
	delete(l.out, seq)
	l.pages++
	l.version = max(l.version, p.Version)
	if !p.End && (p.Last <= kr.after || kr.until != "" && p.Last > kr.until) {
		l.todo = append([]keyRange{kr}, l.todo...)
		return fmt.Errorf("%w: page after %q ends at %q without reaching its end", ErrMalformed, kr.after, p.Last)
	}
	if p.End {
		return nil
	}
	rest := []keyRange{}
	if kr.until == "" && len(p.Then) > 0 {
		prev := p.Last
		for _, t := range p.Then {
			if t <= prev {
				break // not ascending: ignore the rest of the cut points
			}
			rest = append(rest, keyRange{prev, t})
			prev = t
		}
		rest = append(rest, keyRange{prev, ""})
	} else {
		rest = append(rest, keyRange{p.Last, kr.until})
	}
	l.todo = append(rest, l.todo...)
	return nil
}

// Failed puts request seq's range back to be asked again.
func (l *Loader) Failed(seq int) {
	if kr, ok := l.out[seq]; ok {
		delete(l.out, seq)
		l.todo = append([]keyRange{kr}, l.todo...)
	}
}

// Outstanding returns the sequence numbers of requests not answered yet.
func (l *Loader) Outstanding() []int {
	out := make([]int, 0, len(l.out))
	for s := range l.out {
		out = append(out, s)
	}
	return out
}

// Done reports whether every range was answered.
func (l *Loader) Done() bool { return len(l.todo) == 0 && len(l.out) == 0 }

// Version returns the highest domain version the pages announced, and
// Pages how many pages came.
func (l *Loader) Version() uint64 { return l.version }
func (l *Loader) Pages() int      { return l.pages }

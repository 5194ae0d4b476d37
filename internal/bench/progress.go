package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress shows a run's phases as they go. Live (a terminal), one line
// is rewritten in place every LiveEvery; otherwise a plain line is written
// when a phase starts, every PlainEvery while it runs, and when it ends.
// A nil *Progress shows nothing. Phases run one at a time.
type Progress struct {
	w     io.Writer
	live  bool
	mu    sync.Mutex // serialises writes to w
	dirty bool       // live: a line was written without its newline
}

// Refresh intervals of the display.
const (
	LiveEvery  = 200 * time.Millisecond
	PlainEvery = 2 * time.Second
)

// NewProgress shows progress on w, rewriting one line in place when live.
func NewProgress(w io.Writer, live bool) *Progress {
	return &Progress{w: w, live: live}
}

// Note writes one line about the run (connecting, warming up).
func (p *Progress) Note(format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		fmt.Fprintf(p.w, "\r\x1b[K"+format, args...)
		p.dirty = true
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Phase shows a phase named name that does total units of work (0: not
// known), reading done for how many are done, until the returned func is
// called with a summary of the outcome. Phase's goroutine has stopped
// once that func returns.
func (p *Progress) Phase(name string, total int64, done func() int64) (end func(summary string)) {
	if p == nil {
		return func(string) {}
	}
	start := time.Now()
	every := PlainEvery
	if p.live {
		every = LiveEvery
	}
	line := func() string {
		n := done()
		el := time.Since(start).Truncate(100 * time.Millisecond)
		if total > 0 {
			return fmt.Sprintf("%s: %d/%d (%.0f%%) %v", name, n, total, 100*float64(n)/float64(total), el)
		}
		return fmt.Sprintf("%s: %d %v", name, n, el)
	}
	p.show(line(), false)
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.show(line(), false)
			}
		}
	}()
	var once sync.Once
	return func(summary string) {
		once.Do(func() {
			close(stop)
			<-stopped
			p.show(fmt.Sprintf("%s: %s", name, summary), true)
		})
	}
}

// show writes line: in place when live (final ends it with a newline).
func (p *Progress) show(line string, final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.live {
		fmt.Fprintln(p.w, line)
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K"+line)
	p.dirty = !final
	if final {
		fmt.Fprintln(p.w)
	}
}

// Close ends the line being rewritten in place, if any.
func (p *Progress) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty {
		fmt.Fprintln(p.w)
		p.dirty = false
	}
}

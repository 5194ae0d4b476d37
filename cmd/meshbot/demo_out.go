package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// stampFormat is the time column of the demo's and tail's lines.
const stampFormat = "15:04:05.000"

// timeline writes the demo's lines in time order. The demo's bots print
// from many goroutines; each line is stamped with the clock while the
// output is held, so the stamps on the screen only grow. (Channel lines
// show when they were printed, not the server's time tag: the server's
// clock and this one would interleave out of order.)
type timeline struct {
	mu sync.Mutex
	w  io.Writer
}

// line writes the line format makes for the time now.
func (t *timeline) line(format func(now time.Time) string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintln(t.w, format(time.Now()))
}

// print writes a line that carries no time (headers, the summary).
func (t *timeline) print(s string) { t.line(func(time.Time) string { return s }) }

// observation writes a line of a watched channel, decoded as tail prints
// it.
func (t *timeline) observation(ob mesh.Observation) {
	t.line(func(now time.Time) string {
		ob.Time = now
		v := observationView(ob)
		return v.text()
	})
}

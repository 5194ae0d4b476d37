package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Flow control of the raw publishers: meshbot's own defaults
// (mesh.Config WindowLines and MaxWindows), so that the raw reference and
// a node pace the server the same way.
const (
	rawWindowLines = 100
	rawMaxWindows  = 2
)

// rawLines returns how many raw lines carry a payload of size bytes and
// the text of each (equal lengths, RawText at most).
func rawLines(size int) (per int, text string) {
	per = (size + RawText - 1) / RawText
	return per, strings.Repeat("x", (size+per-1)/per)
}

// rawPub is one raw publisher and its flow-control windows.
type rawPub struct {
	c      *rawClient
	slots  chan struct{} // one per unconfirmed window
	seq    int
	window []byte // rawWindowLines CRLF-terminated lines
	line   int    // bytes of one line with its CRLF
	sent   atomic.Int64
}

// rawFanout is the raw side of a Fanout: bare publishers writing windows
// of PRIVMSG lines to a channel that bare subscribers count.
type rawFanout struct {
	w       Fanout
	per     int
	pubs    []*rawPub
	subs    []*rawClient
	tallies []*Tally
}

// newRawFanout joins pubs and subs to channel and starts their readers.
func newRawFanout(ctx context.Context, w Fanout, channel string, pubs, subs []*rawClient) (*rawFanout, error) {
	f := &rawFanout{w: w, subs: subs}
	var text string
	f.per, text = rawLines(w.Size)
	line := "PRIVMSG " + channel + " :" + text + "\r\n"
	window := []byte(strings.Repeat(line, rawWindowLines))
	for _, c := range append(append([]*rawClient{}, pubs...), subs...) {
		jctx, cancel := context.WithTimeout(ctx, IOTimeout)
		err := c.join(jctx, channel)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("bench: raw client %s joining %s: %w", c.nick, channel, err)
		}
	}
	for _, c := range subs {
		t := &Tally{}
		f.tallies = append(f.tallies, t)
		c.onPrivmsg = func(_, _ []byte) { t.Add() }
		go c.run()
	}
	for _, c := range pubs {
		p := &rawPub{c: c, slots: make(chan struct{}, rawMaxWindows), window: window, line: len(line)}
		c.onPong = func(tok []byte) {
			if len(tok) > 0 && tok[0] == 'w' {
				select {
				case <-p.slots:
				default:
				}
			}
		}
		go c.run()
		f.pubs = append(f.pubs, p)
	}
	return f, nil
}

// publish sends lines lines in windows, stopping early (after one window
// at least) when stop returns true or ctx ends.
func (p *rawPub) publish(ctx context.Context, lines int64, stop func() bool) error {
	for first := true; lines > 0 && (first || !stop()); first = false {
		select {
		case p.slots <- struct{}{}:
		case <-p.c.dead:
			return fmt.Errorf("bench: raw publisher: %w", p.c.err)
		case <-ctx.Done():
			return nil
		}
		n := min(lines, rawWindowLines)
		p.seq++
		if err := p.c.sendWindow(p.window[:int(n)*p.line], "w"+strconv.Itoa(p.seq)); err != nil {
			return fmt.Errorf("bench: raw publisher: %w", err)
		}
		p.sent.Add(n)
		lines -= n
	}
	return nil
}

// quiesce waits until every window of p is confirmed.
func (p *rawPub) quiesce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, IOTimeout)
	defer cancel()
	for range rawMaxWindows {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("bench: raw publisher: windows not confirmed: %w", ctx.Err())
		}
	}
	for range rawMaxWindows {
		<-p.slots
	}
	return nil
}

// round publishes msgs messages (w.Msgs when 0) split over the
// publishers, and measures until every subscriber has every line sent,
// the workload's Duration, ctx's end, or IOTimeout after the publishers
// stopped. progress counts messages delivered to the slowest subscriber.
func (f *rawFanout) round(ctx context.Context, msgs int, progress *atomic.Int64) (Rate, error) {
	w := f.w
	if msgs > 0 {
		w.Msgs = max(msgs, w.Pubs)
	}
	for _, t := range f.tallies {
		t.Reset()
	}
	for _, p := range f.pubs {
		p.sent.Store(0)
	}
	start := time.Now()
	stop := StopAfter(w.Duration, start)
	errs := make([]error, len(f.pubs))
	var wg sync.WaitGroup
	for i, p := range f.pubs {
		wg.Go(func() { errs[i] = p.publish(ctx, int64(w.share(i)*f.per), stop) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	sentLines := func() int64 {
		var n int64
		for _, p := range f.pubs {
			n += p.sent.Load()
		}
		return n
	}
	err := WaitDelivered(ctx, done, func() (int64, int64) {
		low := int64(-1)
		for _, t := range f.tallies {
			if n := t.Count(); low < 0 || n < low {
				low = n
			}
		}
		if progress != nil {
			progress.Store(low / int64(f.per))
		}
		return low, sentLines()
	})
	<-done
	for _, e := range errs {
		if e != nil {
			return MulticastRate(start, sentLines()/int64(f.per), f.per, f.tallies), e
		}
	}
	r := MulticastRate(start, sentLines()/int64(f.per), f.per, f.tallies)
	if err != nil {
		return r, fmt.Errorf("raw: %w (lines per subscriber: %s)", err, countsText(f.tallies))
	}
	if err == nil && ctx.Err() == nil {
		for _, p := range f.pubs {
			if qerr := p.quiesce(ctx); qerr != nil && ctx.Err() == nil {
				return r, qerr
			}
		}
	}
	return r, err
}

func (f *rawFanout) close() {
	cs := append([]*rawClient{}, f.subs...)
	for _, p := range f.pubs {
		cs = append(cs, p.c)
	}
	closeRaw(cs, true)
}

// StopAfter returns a func that reports whether d (none when 0) has
// passed since start.
func StopAfter(d time.Duration, start time.Time) func() bool {
	if d <= 0 {
		return func() bool { return false }
	}
	end := start.Add(d)
	return func() bool { return !time.Now().Before(end) }
}

// WaitDelivered polls state — the count the slowest receiver has and the
// count sent — until the senders are done and the receiver has all of
// it, ctx ends (nil: what arrived is the result), or IOTimeout passes
// after the senders stopped (an error naming the counts).
func WaitDelivered(ctx context.Context, sendersDone <-chan struct{}, state func() (got, sent int64)) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var timeout <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sendersDone:
			sendersDone = nil
			t := time.NewTimer(IOTimeout)
			defer t.Stop()
			timeout = t.C
		case <-timeout:
			got, sent := state()
			return fmt.Errorf("bench: %d of %d sent still missing %v after the last send", sent-got, sent, IOTimeout)
		case <-tick.C:
		}
		if got, sent := state(); sendersDone == nil && got >= sent {
			return nil
		}
	}
}

// countsText is what each tally counted so far, for errors.
func countsText(ts []*Tally) string {
	var b bytes.Buffer
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(t.Count(), 10))
	}
	return b.String()
}

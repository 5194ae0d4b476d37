package console

import (
	"strings"
	"sync"
	"time"
)

// bucket is a token bucket: burst tokens, one more every every.
type bucket struct {
	burst  float64
	every  time.Duration
	tokens float64
	last   time.Time
}

// take takes a token at now, if there is one.
func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.every))
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// limiter bounds the commands of each asker (by nick) and of all askers
// together, in bounded memory: it remembers maxAskers askers, forgetting
// the one seen least recently when full (a forgotten asker starts with a
// full bucket again, but the bucket of all askers still holds).
type limiter struct {
	mu        sync.Mutex
	askers    map[string]*asker
	maxAskers int
	per       bucket // the template of an asker's bucket
	all       bucket
	warnEvery time.Duration
}

type asker struct {
	b      bucket
	seen   time.Time
	warned time.Time
}

func newLimiter(perBurst int, perEvery time.Duration, allBurst int, allEvery time.Duration, maxAskers int) *limiter {
	return &limiter{
		askers: map[string]*asker{}, maxAskers: maxAskers,
		per:       bucket{burst: float64(perBurst), every: perEvery},
		all:       bucket{burst: float64(allBurst), every: allEvery},
		warnEvery: 30 * time.Second,
	}
}

// allow reports whether nick may run a command at now; when not, warn
// says whether to tell them (once per warnEvery).
func (l *limiter) allow(nick string, now time.Time) (ok, warn bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := strings.ToLower(nick)
	a := l.askers[key]
	if a == nil {
		if len(l.askers) >= l.maxAskers {
			l.evictLocked()
		}
		a = &asker{b: l.per}
		l.askers[key] = a
	}
	a.seen = now
	if !a.b.take(now) {
		if now.Sub(a.warned) >= l.warnEvery {
			a.warned = now
			return false, true
		}
		return false, false
	}
	if !l.all.take(now) {
		return false, false
	}
	return true, false
}

// evictLocked forgets the asker seen least recently.
func (l *limiter) evictLocked() {
	var oldest string
	var at time.Time
	for k, a := range l.askers {
		if oldest == "" || a.seen.Before(at) {
			oldest, at = k, a.seen
		}
	}
	delete(l.askers, oldest)
}

// size is how many askers are remembered.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.askers)
}

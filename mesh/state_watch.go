package mesh

import (
	"slices"
	"sync"

	"github.com/meshbot/meshbot/state"
)

// Watching a domain: a watcher gets every change of the node's copy, in
// the order the copy made them, from one goroutine of its own. Changes are
// queued without blocking the copy (the connection's reader applies live
// updates); a watcher that falls behind by maxWatchQueue changes loses the
// next ones, counted, and then gets one state.Lost change saying how many
// before the changes that follow.

// maxWatchQueue bounds the changes waiting for one watcher.
const maxWatchQueue = 1 << 16

type watcher struct {
	key  string // "" for every key
	fn   func(state.Change)
	mu   sync.Mutex
	q    []state.Change
	lost uint64
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Watch calls fn for every change of the node's copy of the domain, in
// order: puts and deletes with the key's old and new entry and the
// domain's old and new version, and the domain becoming loaded, available
// or unavailable (stale). fn runs on a goroutine of its own, never
// concurrently with itself, until stop is called or the node closes; a
// slow fn makes changes queue (see state.Lost). stop returns once fn is
// not running and will not run again; call it from another goroutine
// than fn's.
func (d *Domain) Watch(fn func(state.Change)) (stop func()) { return d.watch("", fn) }

// WatchKey is Watch for one key: its puts and deletes, and the domain's
// availability changes.
func (d *Domain) WatchKey(key string, fn func(state.Change)) (stop func()) { return d.watch(key, fn) }

func (d *Domain) watch(key string, fn func(state.Change)) func() {
	w := &watcher{key: key, fn: fn, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	m := d.m
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		close(w.done)
		return func() {}
	}
	m.watchers = append(slices.Clone(m.watchers), w)
	m.mu.Unlock()
	go w.run(m.n.done)
	return func() {
		m.mu.Lock()
		m.watchers = slices.DeleteFunc(slices.Clone(m.watchers), func(x *watcher) bool { return x == w })
		m.mu.Unlock()
		w.close()
	}
}

// push queues c for the watcher, never blocking (called under the
// mirror's lock, in the copy's order).
func (w *watcher) push(c state.Change) {
	if w.key != "" && c.Key != "" && c.Key != w.key {
		return
	}
	if w.key != "" && c.Kind == state.Loaded {
		return
	}
	w.mu.Lock()
	switch {
	case len(w.q) >= maxWatchQueue:
		w.lost++
	case w.lost > 0:
		w.q = append(w.q, state.Change{Domain: c.Domain, Kind: state.Lost, Dropped: w.lost}, c)
		w.lost = 0
	default:
		w.q = append(w.q, c)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) run(nodeDone <-chan struct{}) {
	defer close(w.done)
	for {
		select {
		case <-w.wake:
		case <-w.stop:
			return
		case <-nodeDone:
			return
		}
		w.mu.Lock()
		q := w.q
		w.q = nil
		w.mu.Unlock()
		for _, c := range q {
			select {
			case <-w.stop:
				return
			default:
			}
			w.fn(c)
		}
	}
}

// close stops the watcher and waits for its callback to return: no
// callback runs after it. Not from the callback itself (it would wait for
// itself): stop a watcher from another goroutine.
func (w *watcher) close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

package mesh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/state"
)

// Domain is a node's handle on one domain of state (docs/PROTOCOL.md §8):
// a service's share of the system state, owned by the service its name
// starts with. Every node that mirrors a domain holds a complete copy and
// reads it locally: Get, Keys and Snapshot never touch the network, and
// wait only for the first load of the domain (a newcomer has the current
// state before its first read returns). Instances of the owning service
// write with Put, Delete and Replace. Watch follows every change.
//
// Its methods are safe for concurrent use. Get one with Node.Domain.
type Domain struct{ m *mirror }

// ErrNoKey is returned by Get for a key the domain does not hold (never
// written, or deleted).
var ErrNoKey = errors.New("mesh: no such key in the domain")

// ErrDomainUnavailable is returned by WaitForDomains (and Connect with
// Config.DomainWait) when a domain is not available and loaded in time:
// no live instance of its owner holds it. The error names each domain and
// what is missing.
var ErrDomainUnavailable = errors.New("mesh: domain unavailable")

// Name returns the domain's name, Owner the service that owns it.
func (d *Domain) Name() string  { return d.m.name }
func (d *Domain) Owner() string { return state.Owner(d.m.name) }

// Wait blocks until the domain was loaded once (its copy holds the
// domain's current state), or ctx ends.
func (d *Domain) Wait(ctx context.Context) error {
	select {
	case <-d.m.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mesh: domain %s not loaded: %w", d.m.name, context.Cause(ctx))
	case <-d.m.n.done:
		return ErrClosed
	}
}

// Get returns key's entry from the node's copy; ErrNoKey when the domain
// does not hold it. It waits for the domain's first load (ctx). The entry
// is the node's copy's: while the domain is unavailable it is stale (see
// Info).
func (d *Domain) Get(ctx context.Context, key string) (state.Entry, error) {
	if err := d.Wait(ctx); err != nil {
		return state.Entry{}, err
	}
	d.m.mu.Lock()
	e, ok := d.m.r.Get(key)
	d.m.mu.Unlock()
	if !ok {
		return state.Entry{}, fmt.Errorf("%w: %s %q", ErrNoKey, d.m.name, key)
	}
	return e, nil
}

// Keys returns the domain's keys, sorted, after its first load.
func (d *Domain) Keys(ctx context.Context) ([]string, error) {
	if err := d.Wait(ctx); err != nil {
		return nil, err
	}
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	return d.m.r.Keys(), nil
}

// Snapshot returns a copy of the whole domain with its version, after its
// first load.
func (d *Domain) Snapshot(ctx context.Context) (*state.Snapshot, error) {
	if err := d.Wait(ctx); err != nil {
		return nil, err
	}
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	return d.m.r.Snapshot(), nil
}

// DomainInfo describes a node's copy of a domain.
type DomainInfo struct {
	Name, Owner string
	// Version is the domain version; Keys, Tombstones and Bytes the copy's
	// live keys, deleted keys kept, and bytes of live keys and values.
	Version                 uint64
	Keys, Tombstones, Bytes int
	// Loaded: the copy was loaded once. Current: loaded, and loaded again
	// since the connection last dropped (the node announces, serves and
	// writes only a current copy). Available: a live instance of the
	// owner holds the domain. Stale: loaded and not available.
	Loaded, Current, Available, Stale bool
	// Refused counts updates refused as not the owner's; Malformed state
	// lines that did not decode.
	Refused, Malformed uint64
}

// Info returns the copy's description now, without waiting.
func (d *Domain) Info() DomainInfo {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.r.Stats()
	return DomainInfo{Name: m.name, Owner: state.Owner(m.name), Version: m.r.Version(),
		Keys: st.Keys, Tombstones: st.Tombstones, Bytes: st.Bytes,
		Loaded: m.r.Loaded(), Current: m.r.Current(), Available: m.r.Available(), Stale: m.r.Stale(),
		Refused: m.refused, Malformed: m.bad}
}

// Domains returns the domains the node mirrors, sorted by name.
func (n *Node) Domains() []*Domain {
	ms := n.domains.all()
	slices.SortFunc(ms, func(a, b *mirror) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	out := make([]*Domain, len(ms))
	for i, m := range ms {
		out[i] = &Domain{m: m}
	}
	return out
}

// WriteOption tunes a write: a condition (a compare-and-set, §8.4), or
// Stored.
type WriteOption func(*writeOptions)

type writeOptions struct {
	cond   state.Cond
	stored bool
}

// IfVersion makes a write succeed only if the key is at version v when it
// is made and no concurrent write of the key wins; the loser gets a
// *state.ConflictError.
func IfVersion(v uint64) WriteOption { return func(o *writeOptions) { o.cond = state.IfVersion(v) } }

// IfAbsent makes a write succeed only if the key does not exist (never
// written, or deleted) and no concurrent write of the key wins.
func IfAbsent() WriteOption { return func(o *writeOptions) { o.cond = state.IfAbsent() } }

// Stored makes a write return only once a history recorder has journaled
// its update (§7.9), like PublishStored: with no recorder live nothing is
// written and the error wraps ErrNotStored.
func Stored() WriteOption { return func(o *writeOptions) { o.stored = true } }

// Put writes value to key. Only instances of the domain's owner write
// (state.ErrNotOwner otherwise); a write waits, until ctx ends, for the
// domain to be loaded (again, after a reconnect), so that it continues
// the domain's version. It returns the key as written once the server
// relayed the update back (unconditional writes), or once the settle time
// passed with no concurrent write winning (IfVersion, IfAbsent); a
// compare-and-set that lost returns a *state.ConflictError. When the
// connection drops before the outcome, the error wraps
// state.ErrUnknownOutcome: the write may or may not have taken effect.
func (d *Domain) Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (state.Entry, error) {
	o, err := d.write(ctx, opts, func(r *state.Replica, c state.Cond, now time.Time) (*envelope.Envelope, error) {
		return r.Put(key, value, c, now)
	})
	if err != nil {
		return state.Entry{}, err
	}
	return o.Entries[0], nil
}

// Delete deletes key, as Put writes it.
func (d *Domain) Delete(ctx context.Context, key string, opts ...WriteOption) (state.Entry, error) {
	o, err := d.write(ctx, opts, func(r *state.Replica, c state.Cond, now time.Time) (*envelope.Envelope, error) {
		return r.Delete(key, c, now)
	})
	if err != nil {
		return state.Entry{}, err
	}
	return o.Entries[0], nil
}

// Replace writes the whole domain in one update: every key of values is
// put, every other key deleted (a key another instance creates
// concurrently survives, §8.2). The update must fit one envelope
// (Config.MaxEnvelope). It returns the update's domain version.
func (d *Domain) Replace(ctx context.Context, values map[string][]byte, opts ...WriteOption) (uint64, error) {
	o, err := d.write(ctx, opts, func(r *state.Replica, _ state.Cond, now time.Time) (*envelope.Envelope, error) {
		return r.Replace(values, now)
	})
	if err != nil {
		return 0, err
	}
	return o.Version, nil
}

// write makes one write on the replica and sends it in the domain's
// channel, then waits for its outcome.
func (d *Domain) write(ctx context.Context, opts []WriteOption, build func(*state.Replica, state.Cond, time.Time) (*envelope.Envelope, error)) (state.Outcome, error) {
	m, n := d.m, d.m.n
	if owner := state.Owner(m.name); owner != n.cfg.Service {
		return state.Outcome{}, fmt.Errorf("%w: %s is owned by %s; this node is %s", state.ErrNotOwner, m.name, owner, n.cfg.Service)
	}
	var wo writeOptions
	for _, o := range opts {
		o(&wo)
	}
	c := wo.cond
	if wo.stored {
		if err := n.trackTopic(ctx, m.sub.topic, true); err != nil {
			return state.Outcome{}, fmt.Errorf("mesh: writing %s: %w", m.name, err)
		}
	}
	for {
		if n.sealed.Load() {
			return state.Outcome{}, ErrClosed
		}
		var (
			env     *envelope.Envelope
			err     error
			out     chan state.Outcome
			connCtx context.Context
			changed chan struct{}
		)
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return state.Outcome{}, ErrClosed
		}
		changed = m.changed
		// A compare-and-set waits for the node's earlier writes of the
		// domain to come back: it is then made on a copy that holds them
		// and goes out on a short queue, so a concurrent write reaches
		// the others soon after it (§8.4: the settle covers that delay).
		if m.r.Current() && (!c.IsSet() || m.r.Pending() == 0) {
			env, err = build(m.r, c, time.Now())
			if err == nil {
				out = make(chan state.Outcome, 1)
				m.outcomes[env.ID] = out
				connCtx = m.connCtx
			}
		}
		m.mu.Unlock()
		if err != nil {
			return state.Outcome{}, err
		}
		if env == nil { // not current (wait for the (re)load), or writes in flight
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return state.Outcome{}, fmt.Errorf("mesh: writing %s: %w: %w", m.name, state.ErrNotLoaded, context.Cause(ctx))
			case <-n.done:
				return state.Outcome{}, ErrClosed
			}
		}
		o, err := m.send(ctx, connCtx, env, out)
		if err != nil || !wo.stored {
			return o, err
		}
		if _, err := n.cfg.History.(HistoryStore).Stored(ctx, n, m.sub.topic, PubAck{ID: o.ID}); err != nil {
			return o, fmt.Errorf("mesh: writing %s: %w: %w", m.name, ErrNotStored, err)
		}
		return o, nil
	}
}

// send seals and sends an own update and waits for its outcome.
func (m *mirror) send(ctx, connCtx context.Context, env *envelope.Envelope, out chan state.Outcome) (state.Outcome, error) {
	n := m.n
	sctx, cancel := context.WithCancel(connCtx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	j, err := n.send(sctx, m.sub.channel, env)
	if err != nil {
		m.step(func(r *state.Replica, _ time.Time) { r.Abandon(env.ID, err) })
	} else {
		m.step(func(r *state.Replica, _ time.Time) { r.Sent(env.ID, j.sealed) })
		go func() {
			<-j.done
			if j.err != nil {
				m.step(func(r *state.Replica, _ time.Time) { r.Abandon(env.ID, j.err) })
			}
		}()
	}
	select {
	case o := <-out:
		if o.Err != nil {
			return o, fmt.Errorf("mesh: writing %s: %w", m.name, o.Err)
		}
		return o, nil
	case <-ctx.Done():
		m.mu.Lock()
		delete(m.outcomes, env.ID)
		m.mu.Unlock()
		return state.Outcome{}, fmt.Errorf("mesh: writing %s: %w: %w", m.name, state.ErrUnknownOutcome, context.Cause(ctx))
	}
}

package mesh

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/state"
)

// Domain state (docs/PROTOCOL.md §8): the protocol is state.Replica, whole;
// this file is its driver. Each domain the node mirrors is a sibling of
// the subscriptions behind the router's mode interface: the domain's
// channel #<ns>.<domain>._state is in n.subs with a mirror as its mode,
// so the connection's reader hands it the channel's state envelopes, the
// heartbeat loop the membership, and the connection its drops and
// returns. A mirror loads the domain when its channel is joined and again
// after every reconnect (state_load.go), serves snapshots to others, and
// carries out the node's writes (state.go).

// domains is the node's registry of mirrored domains. mu guards the map;
// it is a leaf lock.
type domains struct {
	n      *Node
	mu     sync.Mutex
	by     map[string]*mirror
	served bool // the snapshot method is registered
	// tracked are the topics a history recorder was asked to record
	// (stored.go): retained data, like the domains. topic → true, or the
	// time of the last failed attempt.
	tracked sync.Map
}

func newDomains(n *Node) *domains { return &domains{n: n, by: map[string]*mirror{}} }

// mirror is one domain mirrored by the node. mu guards the replica and
// everything below it; it is a leaf lock: nothing blocks under it
// (watchers' queues never block, waiters are closed channels).
type mirror struct {
	n      *Node
	name   string
	sub    *subscription
	loaded chan struct{} // closed once the domain was first loaded

	mu       sync.Mutex
	r        *state.Replica
	changed  chan struct{} // closed and replaced when availability, loading or the version changes
	watchers []*watcher
	outcomes map[envelope.ID]chan state.Outcome
	timer    *time.Timer     // the replica's next Tick
	connCtx  context.Context // ends with the connection: own writes not sent by then are dropped
	connStop context.CancelFunc
	loading  bool              // a load runs
	again    bool              // load again once it ends (the connection dropped meanwhile)
	beats    map[string]uint64 // holders' last beat seq seen by the anti-entropy
	ae       state.AntiEntropy
	refused  uint64 // updates refused as not the owner's
	bad      uint64 // state lines that did not decode
	closed   bool
}

// Domain returns the node's handle on domain, mirroring it from now on:
// the node joins its channel, loads its current state from a member that
// holds a copy (or from history), and keeps its copy current. Reads wait
// for that first load; after it they never wait and never touch the
// network. Only instances of the owning service may write.
func (n *Node) Domain(name string) (*Domain, error) {
	m, err := n.domains.mirror(name)
	if err != nil {
		return nil, err
	}
	return &Domain{m: m}, nil
}

// mirror returns the mirror of name, starting it when new.
func (ds *domains) mirror(name string) (*mirror, error) {
	n := ds.n
	if err := state.ValidDomain(name); err != nil {
		return nil, err
	}
	chanLen := 0
	if st := n.current(); st != nil {
		chanLen = st.chanLen
	}
	if chanLen <= 0 {
		chanLen = defChanLen
	}
	channel := Channel(n.cfg.Namespace, state.Topic(name))
	if len(channel) > chanLen {
		return nil, fmt.Errorf("%w: domain %s: channel %s is %d bytes; the server allows %d (CHANNELLEN)", ErrInvalidTopic, name, channel, len(channel), chanLen)
	}
	ds.mu.Lock()
	if m := ds.by[name]; m != nil {
		ds.mu.Unlock()
		return m, nil
	}
	if n.closing.Load() {
		ds.mu.Unlock()
		return nil, ErrClosed
	}
	r, err := state.New(state.Config{Domain: name, Self: n.sender()})
	if err != nil {
		ds.mu.Unlock()
		return nil, err
	}
	m := &mirror{n: n, name: name, r: r, loaded: make(chan struct{}), changed: make(chan struct{}),
		outcomes: map[envelope.ID]chan state.Outcome{}, beats: map[string]uint64{}}
	m.connCtx, m.connStop = context.WithCancel(context.Background())
	ds.by[name] = m
	serve := !ds.served
	ds.served = true
	ds.mu.Unlock()
	if serve {
		if err := n.Handle(state.SnapshotMethod, n.domains.serveSnapshot); err != nil {
			return nil, err
		}
	}
	s := &subscription{n: n, topic: state.Topic(name), channel: channel, mode: m,
		q: make(chan *Message), stop: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	m.sub = s
	key := strings.ToLower(channel)
	n.mu.Lock()
	n.subs[key] = s
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.join(s.ctx, channel); err != nil {
			n.log.Debug("state: joining the domain's channel", "domain", name, "err", err)
			return
		}
		// With a recorder live, it records the domain's channel before
		// anything is written there (§7.9).
		_ = n.trackTopic(s.ctx, state.Topic(name), false)
		m.joined()
	}()
	return m, nil
}

// all returns every mirror.
func (ds *domains) all() []*mirror {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	out := make([]*mirror, 0, len(ds.by))
	for _, m := range ds.by {
		out = append(out, m)
	}
	return out
}

// get returns the mirror of name, or nil.
func (ds *domains) get(name string) *mirror {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.by[name]
}

// step runs one input of the replica at the time now and carries out what
// it gathered: changes to watchers, outcomes to writers, the next tick.
func (m *mirror) step(input func(r *state.Replica, now time.Time)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stepLocked(input)
}

func (m *mirror) stepLocked(input func(r *state.Replica, now time.Time)) {
	if m.closed {
		return
	}
	before := m.signature()
	input(m.r, time.Now())
	rd := m.r.Ready()
	for _, c := range rd.Changes {
		for _, w := range m.watchers {
			w.push(c)
		}
	}
	for _, o := range rd.Outcomes {
		if ch := m.outcomes[o.ID]; ch != nil {
			ch <- o // buffered, one outcome per write
			delete(m.outcomes, o.ID)
		}
	}
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	if !rd.Next.IsZero() {
		m.timer = time.AfterFunc(time.Until(rd.Next), func() { m.step(func(r *state.Replica, now time.Time) { r.Tick(now) }) })
	}
	if m.signature() != before {
		close(m.changed)
		m.changed = make(chan struct{})
	}
}

// signature is what waiters wait on: availability, loading, the version,
// the own writes in flight.
func (m *mirror) signature() [5]uint64 {
	b := func(v bool) uint64 {
		if v {
			return 1
		}
		return 0
	}
	return [5]uint64{b(m.r.Available()), b(m.r.Loaded()), b(m.r.Current()), m.r.Version(), uint64(m.r.Pending())}
}

// line: the domain's channel carries state updates; anything else is not
// ours.
func (m *mirror) line(in *inbound) bool {
	if in.env.Kind != envelope.KindState {
		return false
	}
	m.receive(in.env, in.from, in.sealed, "live")
	return true
}

// receive applies one update envelope (live, from a snapshot page or from
// history) that the node's trust accepted, after the owner rule (§8.6).
func (m *mirror) receive(env *envelope.Envelope, nick string, sealed []byte, via string) {
	if sealed == nil {
		// Our own update confirmed on a server without echo-message (or
		// a recorded line): its encoding is the sealed bytes, signature
		// included, for envelopes of this version.
		sealed, _ = envelope.Marshal(env)
	}
	svc, _, ok := ParseNick(nick)
	if !ok {
		svc = "?" // a nick that is no mesh nick belongs to no service
	}
	u, err := state.DecodeUpdate(env, nick, svc, sealed)
	if err != nil {
		m.n.stats.rejected.Add(1)
		m.n.countReject("malformed")
		m.mu.Lock()
		m.bad++
		m.mu.Unlock()
		m.n.log.Debug("state: bad update", "domain", m.name, "from", nick, "via", via, "err", err)
		return
	}
	var rerr error
	m.step(func(r *state.Replica, now time.Time) {
		if rerr = r.Receive(u, now); rerr != nil {
			m.refused++
		}
	})
	if rerr != nil {
		m.n.stats.rejected.Add(1)
		m.n.countReject("not-owner")
		m.n.log.Warn("state: update refused", "domain", m.name, "from", nick, "via", via, "err", rerr)
	}
}

// membership: availability, anti-entropy, and mirroring every announced
// domain when asked to.
func (m *mirror) membership(all []heartbeat.Member, _ bool) {
	self := strings.ToLower(m.n.Nick())
	var pull string
	m.step(func(r *state.Replica, _ time.Time) {
		r.Members(all)
		if !r.Current() || m.loading {
			return
		}
		for _, h := range state.Holders(all, m.name) {
			nick := strings.ToLower(h.Member.Nick)
			if nick == self || m.beats[nick] == h.Member.Beat.Seq {
				continue
			}
			m.beats[nick] = h.Member.Beat.Seq
			if pull == "" && m.ae.Beat(nick, h.Version, digestOf(h.Member.Beat, m.name), r) {
				pull = h.Member.Nick
			}
		}
	})
	if pull != "" {
		m.n.log.Info("state: copy differs from a holder's; loading it", "domain", m.name, "holder", pull)
		m.startLoad("anti-entropy", pull)
	}
}

// digestOf returns the digest a beat announces for domain.
func digestOf(b heartbeat.Beat, domain string) uint64 {
	for _, d := range b.Domains {
		if d.Name == domain {
			return d.Digest
		}
	}
	return 0
}

func (*mirror) session(time.Time) {}

// connection: a drop ends the writes in flight (their outcome is unknown,
// and they are not sent again: §8.4) and marks the copy as behind; a new
// connection loads the domain again.
func (m *mirror) connection(up bool, _ time.Time) {
	if !up {
		m.step(func(r *state.Replica, _ time.Time) {
			r.Disconnected()
			m.connStop()
			m.connCtx, m.connStop = context.WithCancel(context.Background())
		})
		return
	}
	m.startLoad("reconnect", "")
}

// joined: the channel is joined for the first time; load the domain.
func (m *mirror) joined() { m.startLoad("start", "") }

// announce: the domain's channel is announced as a multicast topic, so
// that history recorders record it (§7.1).
func (m *mirror) announce() heartbeat.Sub { return heartbeat.Sub{Topic: state.Topic(m.name)} }

func (*mirror) stopping() {}

// stopped: the node closes; watchers end, writers waiting are told.
func (m *mirror) stopped() {
	m.mu.Lock()
	m.closed = true
	if m.timer != nil {
		m.timer.Stop()
	}
	ws := m.watchers
	m.watchers = nil
	for id, ch := range m.outcomes {
		select {
		case ch <- state.Outcome{ID: id, Err: ErrClosed}:
		default: // it has its outcome already
		}
		delete(m.outcomes, id)
	}
	m.connStop()
	m.mu.Unlock()
	for _, w := range ws {
		w.close()
	}
}

// beat is what the node announces of its domains (heartbeat keys 10 and
// 11): every copy that is current, and the domains it depends on.
func (ds *domains) beat() (held []heartbeat.Domain, depends []string) {
	for _, m := range ds.all() {
		m.mu.Lock()
		if m.r.Current() {
			st := m.r.Stats()
			held = append(held, heartbeat.Domain{Name: m.name, Version: m.r.Version(),
				Keys: uint64(st.Keys), Bytes: uint64(st.Bytes), Digest: m.r.Digest()})
		}
		m.mu.Unlock()
	}
	sortDomains(held)
	return held, ds.n.cfg.DomainDepends
}

func sortDomains(ds []heartbeat.Domain) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].Name < ds[j-1].Name; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

// mirrorAnnounced mirrors every domain a live member announces
// (Config.MirrorAllDomains).
func (ds *domains) mirrorAnnounced(all []heartbeat.Member) {
	for _, mem := range all {
		if mem.State == heartbeat.Dead {
			continue
		}
		for _, d := range mem.Beat.Domains {
			if ds.get(d.Name) == nil {
				if _, err := ds.mirror(d.Name); err != nil {
					ds.n.log.Debug("state: not mirroring an announced domain", "domain", d.Name, "err", err)
				}
			}
		}
	}
}

// start mirrors the domains of the node's Config: those it owns, those it
// depends on; with DomainWait it waits for its dependencies (§8.8).
func (ds *domains) start(ctx context.Context) error {
	n := ds.n
	for _, d := range append(append([]string(nil), n.cfg.Owns...), n.cfg.DomainDepends...) {
		if _, err := ds.mirror(d); err != nil {
			return err
		}
	}
	if n.cfg.MirrorAllDomains {
		ds.mirrorAnnounced(n.AllMembers())
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			t := time.NewTicker(n.cfg.HeartbeatInterval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					ds.mirrorAnnounced(n.AllMembers())
				case <-n.done:
					return
				}
			}
		}()
	}
	if len(n.cfg.DomainDepends) > 0 {
		// A cycle between domains is reported at start, once the members'
		// beats are in (§8.8): a warning, not an error.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			select {
			case <-time.After(2 * n.cfg.HeartbeatInterval):
			case <-n.done:
				return
			}
			if _, cycles := n.DomainDependencies(); len(cycles) > 0 {
				n.log.Warn("dependency cycle among domains", "cycles", cycles)
			}
		}()
	}
	if n.cfg.DomainWait > 0 && len(n.cfg.DomainDepends) > 0 {
		wctx, cancel := context.WithTimeout(ctx, n.cfg.DomainWait)
		defer cancel()
		return n.WaitForDomains(wctx)
	}
	return nil
}

package mesh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/state"
)

// Loading a domain (docs/PROTOCOL.md §8.5): a mirror that starts, or that
// comes back after its connection dropped, joins the domain's channel
// first (live updates apply from then on) and then fetches the updates
// that make the domain's current state from a member that announces a
// current copy, page by page over DMs, three requests in flight
// (state.Loader). Every update of a page is verified with the node's own
// trust and the owner rule, exactly like a live one. With no holder, the
// domain's recorded history is replayed (Config.History: recorders, or
// the server's CHATHISTORY), and with none of those either the domain
// starts empty at version 0. Only then is the copy current: the node
// announces it, serves it, and writes.

// CodeNotHeld is the code of a snapshot request's answer from a member
// that holds no current copy of the domain.
const CodeNotHeld uint32 = 409

// holderWarmup is the least a node waits for heartbeats before it
// concludes that no member holds a domain: every member beats once an
// interval, so by then it heard each one present (and a bit).
func (n *Node) holderWarmup() time.Duration { return n.cfg.HeartbeatInterval * 6 / 5 }

// startLoad loads the domain in a goroutine, one load at a time: asked
// while one runs, it runs once more after it. holder, when set, is the
// nick to load from first (anti-entropy).
func (m *mirror) startLoad(why, holder string) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	if m.loading {
		m.again = true
		m.mu.Unlock()
		return
	}
	m.loading = true
	m.mu.Unlock()
	n := m.n
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			m.load(why, holder)
			m.mu.Lock()
			if !m.again || m.closed {
				m.loading = false
				m.mu.Unlock()
				return
			}
			m.again, why, holder = false, "again", ""
			m.mu.Unlock()
		}
	}()
}

// load runs until the copy is current or the node closes.
func (m *mirror) load(why, prefer string) {
	n := m.n
	ctx := m.sub.ctx
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(n.cfg.HeartbeatInterval):
			case <-ctx.Done():
				return
			}
		}
		if err := n.waitConnected(ctx); err != nil {
			return
		}
		gen := n.connGeneration()
		start := time.Now()
		holders := m.holders(ctx, prefer)
		prefer = ""
		var (
			from  string
			pages int
			err   error
		)
		if len(holders) > 0 {
			from, pages, err = m.loadFrom(ctx, holders)
		} else {
			from, err = m.fromHistory(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Info("state: domain not loaded; trying again", "domain", m.name, "why", why, "err", err)
			continue
		}
		if n.connGeneration() != gen || n.current() == nil {
			continue // the connection dropped meanwhile: lines may be missing
		}
		var version uint64
		m.step(func(r *state.Replica, _ time.Time) {
			r.SetLoaded()
			version = r.Version()
		})
		select {
		case <-m.loaded:
		default:
			// Reads wait for the first load; they must also find the
			// domain's availability right, which the heartbeats tell.
			m.awaitAvailability(ctx, start)
			close(m.loaded)
		}
		n.beatSoon() // announce the copy: it is current now
		n.log.Info("state: domain loaded", "domain", m.name, "why", why, "from", from, "pages", pages,
			"version", version, "in", time.Since(start).Round(time.Millisecond))
		return
	}
}

// awaitAvailability waits until the node knows whether the domain is
// available: an instance of its owner announces it, or the node heard
// every instance present in the namespace (and at least holderWarmup
// passed since since), or DeadAfter intervals passed. A node that loaded
// from an owner's instance before hearing its beat would otherwise call a
// live domain stale.
func (m *mirror) awaitAvailability(ctx context.Context, since time.Time) {
	n := m.n
	deadline := since.Add(time.Duration(n.cfg.DeadAfter * float64(n.cfg.HeartbeatInterval)))
	self := strings.ToLower(n.Nick())
	for {
		m.mu.Lock()
		avail := m.r.Available()
		m.mu.Unlock()
		if avail || time.Now().After(deadline) ||
			(time.Since(since) >= n.holderWarmup() && n.heardAll(n.AllMembers(), self)) {
			return
		}
		n.hb.mu.Lock()
		changed := n.hb.changed
		n.hb.mu.Unlock()
		select {
		case <-changed:
		case <-time.After(min(time.Until(deadline), 50*time.Millisecond)):
		case <-ctx.Done():
			return
		}
	}
}

// connGeneration returns the current connection's number.
func (n *Node) connGeneration() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.connGen
}

// holders returns the nicks of the members announcing a current copy of
// the domain, best first (state.Holders), prefer first when it is one.
// When none is known, it waits — at most DeadAfter heartbeat intervals —
// until every instance present in the namespace has beaten since the
// node's connection became ready: a member that holds a copy is then
// known. Concluding too early that nobody holds the domain would restart
// its version (§8.5).
func (m *mirror) holders(ctx context.Context, prefer string) []string {
	n := m.n
	deadline := time.Now().Add(time.Duration(n.cfg.DeadAfter * float64(n.cfg.HeartbeatInterval)))
	since := time.Now()
	for {
		self := strings.ToLower(n.Nick())
		var out []string
		all := n.AllMembers()
		for _, h := range state.Holders(all, m.name) {
			if nick := h.Member.Nick; strings.ToLower(nick) != self {
				if strings.EqualFold(nick, prefer) {
					out = append([]string{nick}, out...)
				} else {
					out = append(out, nick)
				}
			}
		}
		if len(out) > 0 || time.Now().After(deadline) || (time.Since(since) >= n.holderWarmup() && n.heardAll(all, self)) {
			return out
		}
		if prefer == "" && len(all) <= 1 {
			// Nothing heard yet (a node that just connected): the owner's
			// instances present in the namespace are likely holders; ask
			// them first rather than wait for their beats. One that holds
			// no current copy says so (CodeNotHeld), and the load goes on
			// from what the beats tell.
			for _, nick := range n.Present(state.Owner(m.name)) {
				if strings.ToLower(nick) != self {
					out = append(out, nick)
				}
			}
			if len(out) > 0 {
				return out
			}
		}
		n.hb.mu.Lock()
		changed := n.hb.changed
		n.hb.mu.Unlock()
		select {
		case <-changed:
		case <-time.After(min(time.Until(deadline), 50*time.Millisecond)):
		case <-ctx.Done():
			return nil
		}
	}
}

// heardAll reports whether every mesh nick present in the namespace (but
// self) is a member the view heard beat.
func (n *Node) heardAll(all []heartbeat.Member, self string) bool {
	heard := map[string]bool{}
	for _, m := range all {
		if m.State != heartbeat.Dead && !m.LastBeat.IsZero() {
			heard[strings.ToLower(m.Nick)] = true
		}
	}
	for _, nick := range n.Present("") {
		if l := strings.ToLower(nick); l != self && !heard[l] {
			return false
		}
	}
	return true
}

// pageResult is one answered (or failed) page request.
type pageResult struct {
	seq    int
	holder string
	page   *state.Page
	err    error
}

// loadFrom loads the domain from the holders, best first, moving to the
// next when one fails. It returns the holder that served the last page.
func (m *mirror) loadFrom(ctx context.Context, holders []string) (string, int, error) {
	n := m.n
	ctx, cancel := context.WithTimeout(ctx, n.cfg.BackfillTimeout)
	defer cancel()
	dec := n.NewDecoder()
	var l *state.Loader
	m.mu.Lock()
	l = state.NewLoader(m.r, state.DefaultWindow)
	m.mu.Unlock()
	results := make(chan pageResult, state.DefaultWindow*2)
	outstanding := 0
	defer func() {
		cancel()
		for ; outstanding > 0; outstanding-- {
			<-results
		}
	}()
	hi := 0
	var errs []error
	for {
		m.mu.Lock()
		done := l.Done()
		var rqs []state.LoadRequest
		if !done {
			rqs = l.Requests()
		}
		m.mu.Unlock()
		if done {
			return holders[min(hi, len(holders)-1)], l.Pages(), nil
		}
		for _, rq := range rqs {
			holder := holders[hi]
			payload, err := state.EncodePageRequest(&rq.Request)
			if err != nil {
				return "", 0, err
			}
			outstanding++
			go func(seq int) {
				resp, err := n.requestTo(ctx, holder, state.SnapshotMethod, payload)
				var p *state.Page
				if err == nil {
					p, err = state.DecodePage(resp)
				}
				results <- pageResult{seq: seq, holder: holder, page: p, err: err}
			}(rq.Seq)
		}
		var res pageResult
		select {
		case res = <-results:
			outstanding--
		case <-ctx.Done():
			return "", 0, fmt.Errorf("loading %s: %w", m.name, context.Cause(ctx))
		}
		if res.err == nil {
			m.applyPage(dec, res.page)
			m.mu.Lock()
			res.err = l.Page(res.seq, res.page)
			m.mu.Unlock()
		}
		if res.err != nil {
			m.mu.Lock()
			l.Failed(res.seq)
			m.mu.Unlock()
			errs = append(errs, fmt.Errorf("%s: %w", res.holder, res.err))
			if res.holder == holders[hi] {
				hi++
				if hi == len(holders) {
					return "", 0, fmt.Errorf("loading %s: every holder failed: %w", m.name, errors.Join(errs...))
				}
				n.log.Info("state: holder failed; asking the next", "domain", m.name, "holder", res.holder, "err", res.err)
			}
		}
	}
}

// applyPage verifies and applies every update of a page (§8.5).
func (m *mirror) applyPage(dec *envelope.Decoder, p *state.Page) {
	now := time.Now()
	var count ReplayCount
	for _, s := range p.Updates {
		env, err := dec.Open(s.Envelope, now)
		if err != nil {
			count.Reject(err)
			continue
		}
		if env.Kind != envelope.KindState || env.Topic != m.name {
			count.Reject(fmt.Errorf("%w: not an update of %s", envelope.ErrMalformed, m.name))
			continue
		}
		m.receive(env, s.Nick, s.Envelope, "snapshot")
	}
	if count.RejectedTotal() > 0 {
		m.n.stats.rejected.Add(count.RejectedTotal())
		for r, c := range count.Rejected {
			for range c {
				m.n.countReject(r)
			}
		}
		m.n.log.Warn("state: snapshot updates refused by this node's keys", "domain", m.name, "refused", count.RejectedTotal(), "reasons", count.rejectedText())
	}
}

// fromHistory replays the domain's recorded channel: from the history
// source (recorders, or the server's CHATHISTORY through it), else from
// the server's CHATHISTORY where it has one. With neither, nothing is
// read and the domain starts from what the node has.
func (m *mirror) fromHistory(ctx context.Context) (string, error) {
	n := m.n
	topic := state.Topic(m.name)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.BackfillTimeout)
	defer cancel()
	if src := n.cfg.History; src != nil {
		apply := func(rec Recorded) error {
			if rec.Envelope.Kind == envelope.KindState {
				m.receive(rec.Envelope, rec.Nick, nil, "history")
			}
			return nil
		}
		if latest, ok := src.(StateHistory); ok {
			// The latest update of each key, from the recorders' index.
			count, err := latest.LatestState(ctx, n, m.name, apply)
			n.warnRejected("state: loading from history", topic, count)
			if err == nil {
				return "history (latest per key)", nil
			}
			if ctx.Err() != nil {
				return "", err
			}
			if !errors.Is(err, ErrNoResponders) {
				n.log.Info("state: no latest state from the recorders; replaying the domain's record", "domain", m.name, "err", err)
			}
		}
		count, err := src.Replay(ctx, n, topic, time.Time{}, apply)
		n.warnRejected("state: loading from history", topic, count)
		switch {
		case err == nil:
			return "history", nil
		case errors.Is(err, ErrNoResponders):
			return "nothing (no holder, no history)", nil
		case ctx.Err() != nil:
			return "", err
		}
		n.log.Warn("state: the domain's history could not be read", "domain", m.name, "err", err)
		return "nothing (history failed)", nil
	}
	if n.ChatHistoryLimit() == 0 {
		return "nothing (no holder, no history)", nil
	}
	return "chathistory", m.fromChatHistory(ctx, topic)
}

// fromChatHistory pages the server's CHATHISTORY of the domain's channel.
func (m *mirror) fromChatHistory(ctx context.Context, topic string) error {
	n := m.n
	dec := n.NewDecoder()
	var after time.Time
	var afterID string
	for {
		p, err := n.ChatHistory(ctx, topic, after, afterID, 0)
		if err != nil {
			return err
		}
		now := time.Now()
		for _, l := range p.Lines {
			dl := dec.DecodeLine(l.Nick, l.Tags, l.Body, now)
			for _, e := range dl.Envelopes {
				if e.Err == nil && e.Envelope.Kind == envelope.KindState {
					m.receive(e.Envelope, l.Nick, e.Sealed, "chathistory")
				}
			}
		}
		if p.Items < n.ChatHistoryLimit() || (p.NextMsgID == "" && p.NextTime.IsZero()) {
			return nil
		}
		after, afterID = p.NextTime, p.NextMsgID
	}
}

// StateHistory is a HistorySource that can also read the latest update of
// every key of a domain without replaying the domain's whole record
// (history.Source: the recorders' index, docs/PROTOCOL.md §8.10). A node
// loading a domain with no holder uses it when its history source has it,
// and replays the record otherwise (or when it fails).
type StateHistory interface {
	LatestState(ctx context.Context, n *Node, domain string, fn func(Recorded) error) (ReplayCount, error)
}

// serveSnapshot answers a snapshot page request from the node's copy.
func (ds *domains) serveSnapshot(_ context.Context, r *Request) ([]byte, error) {
	req, err := state.DecodePageRequest(r.Payload)
	if err != nil {
		return nil, Errorf(CodeBadRequest, "%v", err)
	}
	m := ds.get(req.Domain)
	if m == nil {
		return nil, Errorf(CodeNotHeld, "%s does not mirror %s", ds.n.Nick(), req.Domain)
	}
	m.mu.Lock()
	if !m.r.Current() {
		m.mu.Unlock()
		return nil, Errorf(CodeNotHeld, "%s has no current copy of %s", ds.n.Nick(), req.Domain)
	}
	p := m.r.ServePage(req, state.DefaultPageBytes)
	m.mu.Unlock()
	if req.After == "" && req.Until == "" {
		// A load begins: a newcomer that has not heard our beat yet
		// learns now that we hold the domain (it reads availability from
		// beats) instead of a heartbeat interval later.
		ds.n.beatSoon()
	}
	return state.EncodePage(p)
}

// requestTo sends a request to one instance, by nick, and returns its
// answer: for requests that must reach a given member (a snapshot from a
// holder of the domain), where Request picks an instance of a service.
// It fails when the instance leaves, the connection drops, or ctx ends.
func (n *Node) requestTo(ctx context.Context, nick, method string, payload []byte) ([]byte, error) {
	if n.sealed.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	env := envelope.New(envelope.KindRequest, n.sender(), method, payload, time.Now())
	env.Deadline = deadline.UnixNano()
	pr := &pendingRequest{resp: make(chan *inbound, 1), moved: make(chan string, 8), target: nick}
	n.mu.Lock()
	n.pending[env.ID] = pr
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.pending, env.ID)
		n.mu.Unlock()
	}()
	if err := n.waitConnected(ctx); err != nil {
		return nil, err
	}
	if _, err := n.send(ctx, nick, env); err != nil {
		return nil, err
	}
	for {
		select {
		case in := <-pr.resp:
			if e := in.env.Error; e != nil {
				return nil, &RemoteError{Service: in.env.Sender.Service, Instance: in.env.Sender.Instance, Code: e.Code, Message: e.Message}
			}
			return in.env.Payload, nil
		case who := <-pr.moved:
			if who == "" || strings.EqualFold(who, nick) {
				return nil, fmt.Errorf("%w: %s left (or the connection dropped) before answering", ErrNoResponders, nick)
			}
		case <-ctx.Done():
			n.mu.Lock()
			refused := pr.refused
			n.mu.Unlock()
			if refused != nil {
				return nil, fmt.Errorf("mesh: request %s to %s: %w: %w", method, nick, ErrAnswerRefused, refused)
			}
			return nil, fmt.Errorf("mesh: request %s to %s: %w", method, nick, context.Cause(ctx))
		}
	}
}

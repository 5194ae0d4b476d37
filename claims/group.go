package claims

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// A Group is one member's part in one anycast group of one topic: the
// whole protocol of docs/PROTOCOL.md §6 between the envelopes the member
// receives in the topic's channel and what it must do about them. It wraps
// the member's Core (claims, acks, takeovers), its completed Prefix and the
// group's Consensus (§6.13), turns received envelopes into their inputs,
// and turns their decisions into envelopes ready to send.
//
// Its inputs are methods that take "now"; its outputs gather until Ready
// (or Handlers) takes them. Like Core it reads no clock, starts nothing,
// does no I/O and signs nothing, and is not safe for concurrent use: one
// owner feeds it and carries out what it asks, in the manner of etcd's
// raft.RawNode. The driver's loop is:
//
//	g.Receive(line, now)        // and the other inputs, as they happen
//	rd := g.Handlers()          // at once: cancel, then start, handlers
//	...
//	rd = g.Ready()              // when no batch is in flight: everything
//	publish rd.DeadLetters, each then its Marker; seal and send rd.Send
//	wake up at rd.Next (or g.Next()) and call g.Tick
type Group struct {
	cfg  GroupConfig
	core *Core
	self Claimant

	// payloads of the events seen and not completed: handlers and dead
	// letters need them.
	events map[envelope.ID]Received
	peak   int // the most events held since the map was last rebuilt (shrink.go)

	last    time.Time // the latest input's time: batched envelopes carry it
	members []Member  // the group's members as last fed
	live    []string  // their alive ids

	// Consensus offsets (§6.13).
	prefix      *Prefix
	cons        Consensus
	claimedOff  envelope.Offset   // our last HistoryClaim
	claimedComm envelope.Offset   // the committed offset it carried
	claimedLive []Claimant        // the alive members then
	alive       []Claimant        // the alive members now
	behind      []envelope.Offset // offsets of events the prefix tracks, oldest first
	behindIDs   []envelope.ID     // the ids of those it passed, in the same order
	// A member whose view has a hole — it reset, or it is replaying the
	// record — vouches for no offset: its prefix stands still, it rejects
	// every claim and claims only the committed offset, until Replayed or
	// until the committed offset passes holeEnd, the first live line it
	// saw after the hole (§6.13).
	holed   bool
	holeEnd envelope.Offset
	// split: a member of the namespace is unreachable (a netsplit, §6.14).
	// The member's view has a hole from the split on: lines of the other
	// side never reach it. The hole's end is the first line after the
	// group is whole again. absent counts the group's members that are not
	// alive but not known gone (suspect, unreachable, silent): they count
	// against a commit's majority.
	split  bool
	absent int
	// ready is what SetReady said; the core claims only when the member
	// is ready and not replaying the record.
	ready, replaying bool

	out       Ready  // gathered outputs, Send and DeadLetters excepted
	claimsOut []Item // claims and acks gather into as few envelopes as fit
	acksOut   []Item
	sendOut   []*envelope.Envelope // nacks and releases, then votes and HistoryClaims
	malformed uint64
}

// GroupConfig configures a Group.
type GroupConfig struct {
	// Config holds the Core's timings and bounds; its Self is set from
	// Sender.
	Config
	// Topic is the topic whose channel the group works in; Group the
	// group's name (the topic field of its claims lines).
	Topic, Group string
	// Sender is this member: the sender of every envelope the Group builds,
	// and (service/instance, incarnation) its claimant identity.
	Sender envelope.Sender
	// Passive makes an observer: it follows the group by the same rules
	// but never claims, votes or posts a HistoryClaim (SetReady is
	// ignored). meshbot claims is one.
	Passive bool
	// NewID gives the ids of the envelopes the Group builds (nil:
	// envelope.NewID). Tests make them deterministic.
	NewID func() envelope.ID
}

// Received is one envelope as it arrived in the topic's channel.
type Received struct {
	Envelope *envelope.Envelope
	// From is the sender's nick.
	From string
	// ServerTime and MsgID are the line's tags (zero and "" where the
	// server sends none): its offset (§6.13), with the time of receipt
	// standing in for a missing server-time.
	ServerTime time.Time
	MsgID      string
	// Key routes an event (ByKey); "" routes it by id. Only events use it.
	Key string
}

// offset is the line's offset when received at now. A msgid that could
// not travel in a HistoryClaim is left out: the offset is then its time.
func (r *Received) offset(now time.Time) envelope.Offset {
	at := r.ServerTime
	if at.IsZero() {
		at = now
	}
	msgid := r.MsgID
	if !validMsgID(msgid) {
		msgid = ""
	}
	return envelope.OffsetAt(at, msgid)
}

// OfProtocol reports whether envelopes of kind k are anycast's: events,
// and the claims and consensus lines of the groups (§6.2, §6.13).
func OfProtocol(k envelope.Kind) bool {
	switch k {
	case envelope.KindEvent, envelope.KindClaim, envelope.KindAck, envelope.KindNack, envelope.KindDeadLetter,
		envelope.KindHistoryClaim, envelope.KindHistoryAck, envelope.KindHistoryReject:
		return true
	}
	return false
}

// CodeReleased in a NACK's error says the claimant gave the event back
// without failing it (it is shutting down): no attempt is counted (§6.7).
const CodeReleased = 1

// maxReason bounds the text of a NACK's or DEAD marker's reason.
const maxReason = 300

// NewGroup returns the Group of one member.
func NewGroup(cfg GroupConfig) *Group {
	cfg.Self = ClaimantOf(cfg.Sender)
	if cfg.NewID == nil {
		cfg.NewID = envelope.NewID
	}
	g := &Group{cfg: cfg, core: New(cfg.Config), events: make(map[envelope.ID]Received)}
	g.self = g.core.cfg.Self
	g.cfg.Config = g.core.cfg
	g.prefix = NewPrefix(g.cfg.MaxEvents)
	return g
}

// ClaimantOf is the claimant identity of an envelope's sender.
func ClaimantOf(s envelope.Sender) Claimant {
	return Claimant{ID: s.Service + "/" + s.Instance, Incarnation: s.Incarnation}
}

// Config returns the configuration in use, defaults filled in.
func (g *Group) Config() GroupConfig { return g.cfg }

// Receive takes one envelope received in the topic's channel (our own
// included, which is how a claimant learns that its claim went out):
// events of the topic, and the claims, acks, nacks, dead markers and
// HistoryClaims, -Acks and -Rejects of the group. It reports whether the
// envelope was one of those; anything else (another group's lines, other
// kinds: see OfProtocol) is ignored.
func (g *Group) Receive(r Received, now time.Time) bool {
	if g.holed && g.holeEnd.IsZero() && !g.split {
		g.holeEnd = r.offset(now)
	}
	return g.receive(r, now)
}

func (g *Group) receive(r Received, now time.Time) bool {
	g.last = now
	env := r.Envelope
	if env.Kind == envelope.KindEvent {
		g.event(r, now)
		return true
	}
	if env.Topic != g.cfg.Group {
		return false
	}
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck, envelope.KindNack, envelope.KindDeadLetter:
		g.claimsLine(r, now)
	case envelope.KindHistoryClaim, envelope.KindHistoryAck, envelope.KindHistoryReject:
		g.consensusLine(r, now)
	default:
		return false
	}
	return true
}

// Resume begins a replay of the topic's record (§6.12), after a start or
// a Reset: committed is the group's committed offset found in the record
// (zero: none), which the member's own only grows to. Until Replayed the
// member claims no event (the record may say it is completed further on)
// and vouches for no offset; lines of the record (Replay) and live lines
// (Receive) may come in any order meanwhile.
func (g *Group) Resume(committed envelope.Offset, now time.Time) {
	g.last = now
	g.cons.Resume(committed)
	g.holed, g.holeEnd, g.replaying = true, envelope.Offset{}, true
	g.syncReady(now)
}

// Replay takes one envelope of the record: its events and the claims,
// acks, nacks and dead markers of the group, as Receive does. Consensus
// lines of the record are not replayed (their votes are long cast). It
// reports whether the envelope was taken.
func (g *Group) Replay(r Received, now time.Time) bool {
	switch r.Envelope.Kind {
	case envelope.KindEvent, envelope.KindClaim, envelope.KindAck, envelope.KindNack, envelope.KindDeadLetter:
		return g.receive(r, now)
	}
	return false
}

// Replayed ends a replay that covered the record from the committed
// offset given to Resume, less a margin (or from the window, without
// one): the member's view is whole again. Its prefix takes the events in
// the order of their lines, and it vouches and claims again. After a
// Reset that came during the replay it does nothing: that hole needs a
// replay of its own.
func (g *Group) Replayed(now time.Time) {
	g.last = now
	if !g.replaying {
		return // a Reset came during the replay: its hole is not filled
	}
	g.prefix.sortPending(g.behind[len(g.behindIDs):])
	// (While a split lasts, what the other side does meanwhile is a hole
	// still: a replay after the network joins fills it.)
	g.holed, g.holeEnd, g.replaying = g.split, envelope.Offset{}, false
	g.syncReady(now)
}

// ReplayFailed ends a replay that could not cover what it had to: the
// member claims again (its own view is no worse than before the replay),
// but its hole stays, so it vouches for no offset until a replay fills it
// or the committed offset passes it.
func (g *Group) ReplayFailed(now time.Time) {
	g.last = now
	if !g.replaying {
		return
	}
	g.replaying = false
	g.syncReady(now)
}

func (g *Group) event(r Received, now time.Time) {
	id := r.Envelope.ID
	e := g.core.events[id]
	if e != nil && (e.outcome != Pending || e.hasEvent) {
		return // completed before we saw it, or a repeated copy
	}
	g.apply(g.core.Event(id, r.Key, now))
	e = g.core.events[id]
	if e == nil || !e.hasEvent {
		return // refused (over MaxEvents), or completed and forgotten (tombs.go)
	}
	g.events[id] = r
	// The prefix follows the events in the order they arrived, whether or
	// not their claims came first.
	if off := r.offset(now); g.prefix.Seen(id, off) {
		g.behind = append(g.behind, off)
	}
}

func (g *Group) claimsLine(r Received, now time.Time) {
	env := r.Envelope
	who := ClaimantOf(env.Sender)
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck:
		items, err := DecodeItems(env.Payload)
		if err != nil {
			g.bad(r, err)
			return
		}
		lease := time.Duration(env.LeaseMillis) * time.Millisecond
		for _, it := range items {
			if env.Kind == envelope.KindClaim {
				g.apply(g.core.Claim(who, it, lease, now))
			} else {
				g.apply(g.core.Ack(who, it, now))
				g.dropIfDone(it.Event)
			}
		}
	case envelope.KindNack:
		it, err := correlated(env)
		if err != nil {
			g.bad(r, err)
			return
		}
		if env.Error != nil && env.Error.Code == CodeReleased {
			g.apply(g.core.Released(who, it, now))
			return
		}
		reason := ""
		if env.Error != nil {
			reason = env.Error.Message
		}
		g.apply(g.core.Nack(who, it, time.Duration(env.LeaseMillis)*time.Millisecond, reason, now))
	case envelope.KindDeadLetter:
		it, err := correlated(env)
		if err != nil {
			g.bad(r, err)
			return
		}
		var reasons []string
		if env.Error != nil && env.Error.Message != "" {
			reasons = strings.Split(env.Error.Message, "; ")
		}
		g.core.begin()
		g.core.markDead(who, it, env.Attempt, reasons, now)
		g.apply(g.core.out)
		g.dropIfDone(it.Event)
	}
}

// correlated is the item a NACK or DEAD marker names.
func correlated(env *envelope.Envelope) (Item, error) {
	if env.Correlation.IsZero() || env.Epoch == 0 {
		return Item{}, errMalformedf("%s without event or epoch", env.Kind)
	}
	return Item{Event: env.Correlation, Epoch: env.Epoch}, nil
}

func (g *Group) consensusLine(r Received, now time.Time) {
	env := r.Envelope
	who := ClaimantOf(env.Sender)
	if env.Kind == envelope.KindHistoryClaim {
		off, committed, err := DecodeHistoryClaim(env.Payload)
		if err != nil {
			g.bad(r, err)
			return
		}
		// The claimant's committed offset was counted by the group: a
		// member that missed the votes takes it.
		g.cons.Resume(committed)
		g.cons.ClaimAt(env.ID, who.ID, off, claimMark(r, now))
		g.advance()
		if who.ID != g.self.ID && !g.cfg.Passive {
			g.vote(env.ID, off, !g.holed && g.core.Quorum() && g.prefix.Reaches(off))
		}
		return
	}
	_, err := DecodeOffset(env.Payload)
	if err == nil && env.Correlation.IsZero() {
		err = errMalformedf("%s without its claim", env.Kind)
	}
	if err != nil {
		g.bad(r, err)
		return
	}
	// Our own votes count too: they come back like everyone's.
	g.cons.Vote(env.Correlation, who.ID, env.Kind == envelope.KindHistoryAck)
	g.advance()
}

// claimMark is where another member's HistoryClaim stands among our own
// lines, for forgetting (§6.13). With server-time its offset is one all
// members share, and needs no mark. Without it, every offset is a time on
// its member's receive clock: the claim's offset does not say which of
// our lines it covers, but its line does. The claimant passed the events
// it vouches for before it sent the claim, and a server relays the lines
// it takes in that order to everyone, so they all reached us before the
// claim's line: the line's own time is past them.
func claimMark(r Received, now time.Time) envelope.Offset {
	if !r.ServerTime.IsZero() {
		return envelope.Offset{}
	}
	return r.offset(now)
}

func (g *Group) bad(r Received, err error) {
	g.malformed++
	g.out.Malformed = append(g.out.Malformed, Malformed{From: r.From, Kind: r.Envelope.Kind, Err: err})
}

// dropIfDone forgets the payload of an event that is no longer pending.
func (g *Group) dropIfDone(id envelope.ID) {
	if e := g.core.events[id]; e == nil || e.outcome != Pending {
		delete(g.events, id)
	}
}

// Members takes the heartbeat view's members (all of them): those that
// announce the group for the topic are the group (GroupMembers).
func (g *Group) Members(all []heartbeat.Member, now time.Time) {
	g.last = now
	// A netsplit shows as any member unreachable, in the group or not (a
	// publisher on the other side): lines of the other side stop reaching
	// us from now, a hole in our view (§6.14).
	split := false
	for i := range all {
		split = split || all[i].State == heartbeat.Unreachable
	}
	if split && !g.split {
		g.holed, g.holeEnd = true, envelope.Offset{}
	}
	g.split = split
	if g.sameMembers(all) {
		return
	}
	ms := GroupMembers(all, g.cfg.Topic, g.cfg.Group)
	for _, m := range ms {
		if k := slices.IndexFunc(g.members, func(x Member) bool { return x.ID == m.ID }); k >= 0 && absent(g.members[k]) && !absent(m) {
			// Back from a split or from silence: it missed our last
			// HistoryClaim; the next commit tick posts one (§6.14).
			g.claimedLive = nil
		}
	}
	g.members = ms
	g.live, g.alive = g.live[:0], g.alive[:0]
	g.absent = 0
	for _, m := range ms {
		if m.State == heartbeat.Alive {
			g.live = append(g.live, m.ID)
			g.alive = append(g.alive, m.Claimant)
		}
		if inGroup(m) && m.State != heartbeat.Alive {
			g.absent++ // suspect, unreachable, silent: may vote elsewhere
		}
	}
	g.apply(g.core.Members(ms, now))
}

// Split reports whether a member of the namespace is unreachable: the
// network is split (§6.14).
func (g *Group) Split() bool { return g.split }

// Quorum reports whether this member sees a majority of its group alive,
// and so may claim (§6.14).
func (g *Group) Quorum() bool { return g.core.Quorum() }

// Holed reports whether this member's view has a hole (a lost connection,
// a replay in progress, a split): it vouches for no offset until a replay
// of the record fills it or the group's committed offset passes it.
func (g *Group) Holed() bool { return g.holed }

// sameMembers reports whether all holds the group's members as last fed
// (without building them: the view is fed at every heartbeat).
func (g *Group) sameMembers(all []heartbeat.Member) bool {
	n := 0
	for i := range all {
		m := &all[i]
		if !announces(m, g.cfg.Topic, g.cfg.Group) {
			continue
		}
		if n == len(g.members) {
			return false
		}
		// GroupMembers orders by id: the view's own order may differ.
		k := slices.IndexFunc(g.members, func(x Member) bool { return isID(x.ID, m.Service, m.Instance) })
		if k < 0 || g.members[k].Incarnation != m.Incarnation || g.members[k].State != m.State ||
			g.members[k].Departed != m.Departed || !g.members[k].Fence.Equal(m.Fence) {
			return false
		}
		n++
	}
	return n == len(g.members) && g.members != nil
}

// isID reports whether id is service/instance.
func isID(id, service, instance string) bool {
	return len(id) == len(service)+1+len(instance) && id[len(service)] == '/' &&
		id[:len(service)] == service && id[len(service)+1:] == instance
}

func announces(m *heartbeat.Member, topic, group string) bool {
	for _, s := range m.Beat.Subs {
		if s.Group == group && strings.EqualFold(s.Topic, topic) {
			return true
		}
	}
	return false
}

// GroupMembers returns the members of all that announce group for topic
// in their heartbeats (§6.1), ordered by id.
func GroupMembers(all []heartbeat.Member, topic, group string) []Member {
	ms := []Member{}
	for i := range all {
		if m := &all[i]; announces(m, topic, group) {
			ms = append(ms, Member{Claimant: Claimant{ID: m.ID(), Incarnation: m.Incarnation}, State: m.State,
				Departed: m.Departed, Fence: m.Fence})
		}
	}
	slices.SortFunc(ms, func(a, b Member) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return cmp.Compare(a.Incarnation, b.Incarnation)
	})
	return ms
}

// Session: our heartbeats keep us alive in others' eyes until until (see
// Core.Session).
func (g *Group) Session(until, now time.Time) {
	g.last = now
	g.apply(g.core.Session(until, now))
}

// SetReady says whether this member may claim (see Core.SetReady). A
// passive Group is never ready.
func (g *Group) SetReady(ready bool, now time.Time) {
	g.last = now
	g.ready = ready
	g.syncReady(now)
}

// syncReady tells the core whether it may claim.
func (g *Group) syncReady(now time.Time) {
	g.apply(g.core.SetReady(g.ready && !g.replaying && !g.cfg.Passive, now))
}

// Done: the handler started for the event at epoch returned. err nil acks
// the event; else it is nacked with err's text, to be retried after retry.
// The result of a cancelled handler is dropped.
func (g *Group) Done(id envelope.ID, epoch uint64, err error, retry time.Duration, now time.Time) {
	g.last = now
	g.apply(g.core.Done(id, epoch, err, retry, now))
}

// Tick advances time: leases, timeouts, settles, renewals, retention.
func (g *Group) Tick(now time.Time) {
	g.last = now
	g.apply(g.core.Tick(now))
	g.shrink() // shrink.go: return what a burst left
}

// Reset: the connection dropped; the member may have missed lines (§6.11).
// Every handler is cancelled, pending events are forgotten, what was not
// sent yet is dropped, and the completed prefix starts again (the
// committed offset, known to all, stays). The member's view has a hole:
// it vouches for no offset until a replay of the record fills it (Resume,
// Replay, Replayed) or the group's committed offset passes it (§6.13).
func (g *Group) Reset(now time.Time) {
	g.last = now
	g.claimsOut, g.acksOut, g.sendOut = g.claimsOut[:0], g.acksOut[:0], nil
	g.out.DeadLetters = nil
	g.out.Start = nil // the core cancels them below: never run
	g.apply(g.core.Reset(now))
	clear(g.events)
	g.prefix = NewPrefix(g.cfg.MaxEvents)
	// Events the prefix passed are completed: they stay, to be dropped
	// once the committed offset passes them; the rest is forgotten.
	g.behind = g.behind[:len(g.behindIDs)]
	g.holed, g.holeEnd, g.replaying = true, envelope.Offset{}, false
	g.syncReady(now)
}

// ReleaseAll gives back every claim of ours not yet acked (the member is
// shutting down and no handler of its runs any more): NACKs with code
// CodeReleased, so that others take the events over at once.
func (g *Group) ReleaseAll(now time.Time) {
	g.last = now
	g.ready = false
	g.apply(g.core.ReleaseAll(now))
}

// Commit is the member's commit tick (every CommitInterval, §6.13): it
// posts a HistoryClaim for its completed prefix when the prefix moved
// since its last claim, when only the group's committed offset did (so
// that the group's last claim in the record carries its latest commit),
// or when the group's alive members changed (one that joined or came back
// learns the committed offset from the claim). A member that cannot vouch
// for its prefix — it has a hole since a Reset, or its prefix is behind
// the committed offset — claims the committed offset itself.
func (g *Group) Commit(now time.Time) {
	g.last = now
	prefix := g.advance()
	committed := g.cons.Committed()
	claimed := prefix
	if g.holed || !g.core.Quorum() || !g.prefix.Reaches(committed) {
		// A hole, no majority (the other side of a split may have seen
		// what we did not), or a prefix behind the committed offset:
		// vouch for the committed offset only. (Reaches, not Before:
		// two lines of one millisecond are told apart only by the lines
		// the prefix passed.)
		claimed = committed
	}
	if g.cfg.Passive || claimed.IsZero() {
		return
	}
	if !g.claimedOff.Before(claimed) && !g.claimedComm.Before(committed) && slices.Equal(g.claimedLive, g.alive) {
		return
	}
	payload, err := EncodeHistoryClaim(claimed, committed)
	if err != nil {
		return // an offset out of the wire's bounds: nothing to claim
	}
	g.claimedOff, g.claimedComm, g.claimedLive = claimed, committed, append(g.claimedLive[:0], g.alive...)
	env := g.envelope(envelope.KindHistoryClaim, payload)
	var mark envelope.Offset // our own prefix is a line of ours
	if claimed == prefix {
		mark = claimed
	}
	g.cons.ClaimAt(env.ID, g.self.ID, claimed, mark)
	g.sendOut = append(g.sendOut, env)
}

// Committed returns the group's committed offset as this member counts
// it: every event of the topic up to that line is completed (zero: none
// yet).
func (g *Group) Committed() envelope.Offset { return g.cons.Committed() }

// advance moves the completed prefix and, with a committed offset, drops
// from the core the completed events behind it. It returns the prefix.
func (g *Group) advance() envelope.Offset {
	prefix := g.prefix.Offset()
	if !g.holed {
		var passed []envelope.ID
		prefix, passed = g.prefix.Advance(func(id envelope.ID) bool {
			e := g.core.events[id]
			return e == nil || e.outcome != Pending
		})
		g.behindIDs = append(g.behindIDs, passed...)
	}
	committed := g.cons.CommitWith(g.live, g.absent)
	if g.holed && !g.holeEnd.IsZero() && (g.holeEnd.Time < committed.Time || g.holeEnd == committed) {
		g.holed = false // the group vouched for what we missed
	}
	n := Covered(g.behind[:len(g.behindIDs)], committed)
	if m := Covered(g.behind[:len(g.behindIDs)], g.cons.Mark()); m > n {
		n = m // on receive clocks: what came before the committed claim's line
	}
	if g.absent > 0 || g.split {
		// A member may be away on the other side of a split: keep what we
		// completed, to send it again when it comes back (§6.14).
		n = 0
	}
	for i, id := range g.behindIDs[:n] {
		// Nor what was completed lately: a split is noticed only a while
		// after it began (silence takes DeadAfter intervals).
		if e := g.core.events[id]; e != nil && e.outcome != Pending && g.last.Sub(e.doneAt) < rejoinMargin {
			n = i
			break
		}
	}
	for _, id := range g.behindIDs[:n] {
		g.core.Forget(id)
	}
	clear(g.behind[:n]) // their msgids: the arrays stay until they are rebuilt
	g.behind, g.behindIDs = g.behind[n:], g.behindIDs[n:]
	if n > 0 {
		g.core.shrink()
		g.shrink()
	}
	return prefix
}

// Next returns when Tick has work, or the zero time.
func (g *Group) Next() time.Time { return g.core.Next() }

// Stats returns the counters; Malformed counts the group's lines that did
// not decode.
func (g *Group) Stats() Stats {
	s := g.core.Stats()
	s.Malformed = g.malformed
	return s
}

// Snapshot returns every tracked event, oldest first (see Core.Snapshot).
func (g *Group) Snapshot() []Info { return g.core.Snapshot() }

// Status returns what is known of one event (see Core.Status).
func (g *Group) Status(id envelope.ID) (Outcome, Claimant, uint64, bool) { return g.core.Status(id) }

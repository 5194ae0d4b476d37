package heartbeat

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// State of a member.
type State uint8

// Member states. Alive → Suspect after SuspectAfter missed intervals,
// → Dead after DeadAfter; a heartbeat brings a suspect or dead member back
// to Alive. Leaving the heartbeat channel (QUIT, PART, KICK) is Dead at once.
// A member that left in a netsplit (the server's split QUIT, naming two
// servers) is Unreachable: alive, as far as anyone knows, on the other
// side; it comes back with its next heartbeat or its JOIN when the network
// joins again, and is Dead only after Config.SplitTimeout.
const (
	Alive State = iota + 1
	Suspect
	Dead
	Unreachable
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	case Unreachable:
		return "unreachable"
	}
	return "unknown"
}

// EventKind says what happened to a member.
type EventKind uint8

// Topology events.
const (
	Joined    EventKind = iota + 1 // first heartbeat of an instance
	Suspected                      // heartbeats late
	Recovered                      // a suspect, dead or unreachable member beat (or, unreachable, joined) again
	Restarted                      // a new incarnation replaced the old one
	Left                           // dead: left the server, or heartbeats stopped
	SplitAway                      // unreachable: left in a netsplit
)

func (k EventKind) String() string {
	names := [...]string{"", "joined", "suspected", "recovered", "restarted", "left", "unreachable"}
	if int(k) < len(names) {
		return names[k]
	}
	return "unknown"
}

// Event is a change in the view.
type Event struct {
	Kind   EventKind
	Member Member
	// Reason explains Left (the server's QUIT text, "heartbeats stopped")
	// and SplitAway (the split QUIT's text).
	Reason string
	// Split is, for SplitAway and for a Recovered member that was
	// unreachable, the netsplit it was lost in (zero otherwise): a
	// Recovered event with a split says the network joined again, and
	// that lines of the member's side since Split.Since never reached
	// this observer. A member Recovered from death by silence (not one
	// that left for certain) carries a split with only Since, its last
	// beat: a split this observer did not see (it moved to another
	// server meanwhile) looks like that, and so does a frozen member.
	Split Split
}

// Split is a netsplit as the server's QUIT names it.
type Split struct {
	// Near and Far are the two servers the QUIT named: Near is still
	// linked to the observer's server, Far is the one whose link broke;
	// the member was on Far's side.
	Near, Far string
	// Since is when lines of the member's side may have stopped reaching
	// the observer: the last beat it heard from any member lost in the
	// split, or the split's first QUIT when that came earlier.
	Since time.Time
}

// IsZero reports whether s names no split.
func (s Split) IsZero() bool { return s.Near == "" && s.Far == "" }

// Member is one instance as the view sees it.
type Member struct {
	Service, Instance string
	Nick              string
	Incarnation       uint64
	State             State
	// Since is when the member entered State; LastBeat when its last
	// heartbeat arrived (the receiver's clock).
	Since, LastBeat time.Time
	// Beat is the last heartbeat.
	Beat Beat
	// Departed is set when the server said the member left (a QUIT that
	// is not a split, a PART or a KICK): it is dead for certain. A member
	// dead by silence, or unreachable, may still be alive somewhere.
	Departed bool
	// Split is the netsplit an Unreachable member was lost in.
	Split Split
	// Fence is, for an Unreachable member, when it would have been
	// suspected had its beats stopped when it split away (its last beat
	// plus SuspectAfter of its intervals): anycast takes over its claims
	// from then (docs/PROTOCOL.md §6.14).
	Fence time.Time
}

// ID names the member across its incarnations: "service/instance" (how
// rendezvous weighs it, claims name claimants and history pages name
// recorders).
func (m Member) ID() string { return m.Service + "/" + m.Instance }

// Config sets the thresholds. Zero fields take the defaults.
type Config struct {
	// Interval is assumed for members whose beats announce none (1 s).
	Interval time.Duration
	// SuspectAfter and DeadAfter are counted in the member's own
	// intervals since its last beat (2 and 3).
	SuspectAfter, DeadAfter float64
	// Forget drops dead members from the view after this long (30 s).
	Forget time.Duration
	// SplitTimeout is how long a member lost in a netsplit stays
	// Unreachable before it is taken for dead (60 s): a split longer
	// than this is treated like a crash of the other side.
	SplitTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.SuspectAfter <= 0 {
		c.SuspectAfter = 2
	}
	if c.DeadAfter <= c.SuspectAfter {
		c.DeadAfter = c.SuspectAfter + 1
	}
	if c.Forget <= 0 {
		c.Forget = 30 * time.Second
	}
	if c.SplitTimeout <= 0 {
		c.SplitTimeout = time.Minute
	}
	return c
}

type key struct{ service, instance string }

// View is the membership of a namespace as one instance sees it: a pure
// state machine. Its inputs are heartbeats, the server's presence lines and
// the time; its outputs are events. It reads no clock, starts nothing, and
// is not safe for concurrent use: one owner feeds it.
type View struct {
	cfg       Config
	members   map[key]*Member
	byNick    map[string]key // lower-case nick → member
	suspended bool
	// due is no later than the next time Tick has something to do (zero:
	// Tick looks at every member). A beat lowers it to its member's next
	// deadline; every other change clears it. A node ticks ten times an
	// interval, and looking at hundreds of members each time cost more
	// than their beats.
	due time.Time
}

// New returns an empty view.
func New(cfg Config) *View {
	return &View{cfg: cfg.withDefaults(), members: map[key]*Member{}, byNick: map[string]key{}}
}

// Heartbeat takes a beat received from nick.
func (v *View) Heartbeat(nick string, b *Beat, now time.Time) []Event {
	k := key{b.Service, b.Instance}
	m := v.members[k]
	// A member dead by silence whose beats resume was cut off from us
	// (or frozen): what its side sent since its last beat may be missing.
	var silentSince time.Time
	if m != nil && m.State == Dead && !m.Departed {
		silentSince = m.LastBeat
	}
	var kind EventKind
	switch {
	case m == nil:
		m = &Member{Service: b.Service, Instance: b.Instance}
		v.members[k] = m
		v.set(m, b, Alive, now)
		kind = Joined
	case b.Incarnation < m.Incarnation:
		return nil // a late beat of an earlier incarnation
	case b.Incarnation > m.Incarnation:
		v.set(m, b, Alive, now)
		kind = Restarted
	case b.Seq != 0 && b.Seq <= m.Beat.Seq:
		return nil // reordered or duplicated: not newer than the last beat
	default:
		m.LastBeat, m.Beat = now, *b
		if m.State != Alive {
			m.State, m.Since = Alive, now
			kind = Recovered
		}
	}
	split := m.Split
	if !silentSince.IsZero() && kind == Recovered && split.IsZero() {
		split = Split{Since: silentSince}
	}
	m.Departed, m.Split, m.Fence = false, Split{}, time.Time{}
	v.setNick(k, m, nick)
	if t, ok := v.nextOf(m); ok && !v.due.IsZero() && t.Before(v.due) {
		v.due = t
	}
	if kind == 0 {
		return nil
	}
	return []Event{{Kind: kind, Member: *m, Split: split}}
}

func (v *View) set(m *Member, b *Beat, s State, now time.Time) {
	m.Incarnation, m.State, m.Since, m.LastBeat, m.Beat = b.Incarnation, s, now, now, *b
}

// setNick records that k now uses nick; its old nick is dropped only if it
// still names k (another instance may have taken it since). Only accepted
// beats get here, so a stale beat never takes a nick.
func (v *View) setNick(k key, m *Member, nick string) {
	lnick := strings.ToLower(nick)
	if old := strings.ToLower(m.Nick); m.Nick != "" && old != lnick && v.byNick[old] == k {
		delete(v.byNick, old)
	}
	m.Nick = nick
	v.byNick[lnick] = k
}

// Gone takes the server's word that nick left the heartbeat channel or the
// server (QUIT, PART, KICK): its member is dead at once, whatever its
// heartbeats said. This is IRC's "last will".
func (v *View) Gone(nick, reason string, now time.Time) []Event {
	lnick := strings.ToLower(nick)
	k, ok := v.byNick[lnick]
	if !ok {
		return nil
	}
	delete(v.byNick, lnick)
	m := v.members[k]
	if m == nil || m.State == Dead || !strings.EqualFold(m.Nick, nick) {
		return nil
	}
	m.State, m.Since, m.Departed, m.Split, m.Fence = Dead, now, true, Split{}, time.Time{}
	v.due = time.Time{}
	return []Event{{Kind: Left, Member: *m, Reason: reason}}
}

// SplitAway takes the server's word that nick left in a netsplit: its QUIT
// named two servers (ParseSplitQuit), near and far. Its member is
// Unreachable: not judged by silence, not among Members, and back with its
// next heartbeat or its JOIN (Rejoined); Dead after Config.SplitTimeout.
// Members lost in the same split share its Since: the earliest last beat
// heard from any of them (or the QUIT, when that is earlier). A member already dead
// by silence is unreachable too (a frozen server's link timed out: its
// users were behind it); one that left for certain stays dead.
func (v *View) SplitAway(nick, near, far string, now time.Time) []Event {
	k, ok := v.byNick[strings.ToLower(nick)]
	if !ok {
		return nil
	}
	m := v.members[k]
	if m == nil || m.Departed || m.State == Unreachable || !strings.EqualFold(m.Nick, nick) {
		return nil
	}
	// Lines of the member's side may be lost from its last beat on (a
	// frozen server holds them long before its link times out), not only
	// from the QUIT.
	since := now
	if !m.LastBeat.IsZero() && m.LastBeat.Before(since) {
		since = m.LastBeat
	}
	for _, o := range v.members {
		if o.State == Unreachable && o.Split.Near == near && o.Split.Far == far && o.Split.Since.Before(since) {
			since = o.Split.Since
		}
	}
	m.Fence = v.suspectAt(m)
	m.State, m.Since, m.Split = Unreachable, now, Split{Near: near, Far: far, Since: since}
	v.due = time.Time{}
	return []Event{{Kind: SplitAway, Member: *m, Reason: near + " " + far, Split: m.Split}}
}

// Rejoined takes the server's word that nick joined the heartbeat channel.
// A member that was lost in a netsplit, or whose heartbeats stopped, and
// still goes by that nick is back: the network joined again (the JOIN
// comes in the server's burst, before any line of the member). It is
// Alive with a fresh interval from now; its next beat tells whether it is
// the same incarnation. A member that left for certain (Departed) comes
// back only with a beat.
func (v *View) Rejoined(nick string, now time.Time) []Event {
	k, ok := v.byNick[strings.ToLower(nick)]
	if !ok {
		return nil
	}
	m := v.members[k]
	if m == nil || m.Departed || !strings.EqualFold(m.Nick, nick) || (m.State != Unreachable && m.State != Dead) {
		return nil
	}
	split := m.Split
	if m.State == Dead {
		split = Split{Since: m.LastBeat} // back from silence: see Heartbeat
	}
	m.State, m.Since, m.LastBeat, m.Split, m.Fence = Alive, now, now, Split{}, time.Time{}
	v.due = time.Time{}
	return []Event{{Kind: Recovered, Member: *m, Split: split}}
}

// Renamed follows a nick change.
func (v *View) Renamed(from, to string) {
	k, ok := v.byNick[strings.ToLower(from)]
	if !ok {
		return
	}
	delete(v.byNick, strings.ToLower(from))
	if m := v.members[k]; m != nil && strings.EqualFold(m.Nick, from) {
		m.Nick = to
		v.byNick[strings.ToLower(to)] = k
	}
}

// Suspend stops judging freshness: the observer itself is cut off (its
// connection dropped), so silence says nothing about the others.
func (v *View) Suspend() { v.suspended, v.due = true, time.Time{} }

// Resume starts judging again after a reconnect, giving every member a
// fresh start from now (an unreachable one stays so: its split is not
// over because we reconnected).
func (v *View) Resume(now time.Time) {
	v.suspended, v.due = false, time.Time{}
	for _, m := range v.members {
		if m.State != Dead && m.State != Unreachable {
			m.LastBeat = now
		}
	}
}

// interval is m's own heartbeat interval.
func (v *View) interval(m *Member) time.Duration {
	if d := m.Beat.Interval(); d > 0 {
		return d
	}
	return v.cfg.Interval
}

func (v *View) suspectAt(m *Member) time.Time {
	return m.LastBeat.Add(time.Duration(v.cfg.SuspectAfter * float64(v.interval(m))))
}

func (v *View) deadAt(m *Member) time.Time {
	return m.LastBeat.Add(time.Duration(v.cfg.DeadAfter * float64(v.interval(m))))
}

// Tick advances time: members whose beats are late become suspect, then
// dead; dead members are forgotten after Config.Forget.
func (v *View) Tick(now time.Time) []Event {
	if !v.due.IsZero() && now.Before(v.due) {
		return nil
	}
	var out []Event
	var due time.Time
	for k, m := range v.members {
		switch m.State {
		case Alive, Suspect:
			if v.suspended {
				continue
			}
			if !now.Before(v.deadAt(m)) {
				m.State, m.Since = Dead, now
				out = append(out, Event{Kind: Left, Member: *m, Reason: "heartbeats stopped"})
			} else if m.State == Alive && !now.Before(v.suspectAt(m)) {
				m.State, m.Since = Suspect, now
				out = append(out, Event{Kind: Suspected, Member: *m})
			}
		case Unreachable:
			if !now.Before(m.Since.Add(v.cfg.SplitTimeout)) {
				reason := fmt.Sprintf("unreachable for %v since the split %s %s", v.cfg.SplitTimeout, m.Split.Near, m.Split.Far)
				m.State, m.Since, m.Split, m.Fence = Dead, now, Split{}, time.Time{}
				out = append(out, Event{Kind: Left, Member: *m, Reason: reason})
			}
		case Dead:
			if now.Sub(m.Since) >= v.cfg.Forget {
				delete(v.members, k)
				if k2, ok := v.byNick[strings.ToLower(m.Nick)]; ok && k2 == k {
					delete(v.byNick, strings.ToLower(m.Nick))
				}
				continue
			}
		}
		if t, ok := v.nextOf(m); ok && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	v.due = due
	sortEvents(out)
	return out
}

// Next returns when Tick next has something to do (the zero time when
// nothing is pending).
func (v *View) Next() time.Time {
	var next time.Time
	for _, m := range v.members {
		if t, ok := v.nextOf(m); ok && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// nextOf is when Tick next has something to do with m; false when never
// (a live member while the view is suspended).
func (v *View) nextOf(m *Member) (time.Time, bool) {
	switch m.State {
	case Alive:
		return v.suspectAt(m), !v.suspended
	case Suspect:
		return v.deadAt(m), !v.suspended
	case Unreachable:
		return m.Since.Add(v.cfg.SplitTimeout), true
	case Dead:
		return m.Since.Add(v.cfg.Forget), true
	}
	return time.Time{}, false
}

// Members returns the live (alive or suspect) instances of service, or of
// every service when service is "", sorted by service and instance.
// Unreachable members are not among them: nothing sent now reaches them.
func (v *View) Members(service string) []Member {
	var out []Member
	for _, m := range v.members {
		if (m.State == Alive || m.State == Suspect) && (service == "" || m.Service == service) {
			out = append(out, *m)
		}
	}
	sortMembers(out)
	return out
}

// All returns every member the view knows, dead ones not yet forgotten
// included, sorted.
func (v *View) All() []Member {
	out := make([]Member, 0, len(v.members))
	for _, m := range v.members {
		out = append(out, *m)
	}
	sortMembers(out)
	return out
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.Instance, b.Instance)
	})
}

func sortEvents(es []Event) {
	slices.SortStableFunc(es, func(a, b Event) int {
		if c := strings.Compare(a.Member.Service, b.Member.Service); c != 0 {
			return c
		}
		return strings.Compare(a.Member.Instance, b.Member.Instance)
	})
}

package heartbeat

import (
	"slices"
	"strings"
	"time"
)

// State of a member.
type State uint8

// Member states. Alive → Suspect after SuspectAfter missed intervals,
// → Dead after DeadAfter; a heartbeat brings a suspect or dead member back
// to Alive. Leaving the heartbeat channel (QUIT, PART, KICK) is Dead at once.
const (
	Alive State = iota + 1
	Suspect
	Dead
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	}
	return "unknown"
}

// EventKind says what happened to a member.
type EventKind uint8

// Topology events.
const (
	Joined    EventKind = iota + 1 // first heartbeat of an instance
	Suspected                      // heartbeats late
	Recovered                      // a suspect or dead member beat again
	Restarted                      // a new incarnation replaced the old one
	Left                           // dead: left the server, or heartbeats stopped
)

func (k EventKind) String() string {
	return [...]string{"", "joined", "suspected", "recovered", "restarted", "left"}[k]
}

// Event is a change in the view.
type Event struct {
	Kind   EventKind
	Member Member
	// Reason explains Left (the server's QUIT text, "heartbeats stopped").
	Reason string
}

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
}

// Config sets the thresholds. Zero fields take the defaults.
type Config struct {
	// Interval is assumed for members whose beats announce none (1 s).
	Interval time.Duration
	// SuspectAfter and DeadAfter are counted in the member's own
	// intervals since its last beat (2 and 3).
	SuspectAfter, DeadAfter float64
	// Forget drops dead members from the view after this long (30 s).
	Forget time.Duration
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
}

// New returns an empty view.
func New(cfg Config) *View {
	return &View{cfg: cfg.withDefaults(), members: map[key]*Member{}, byNick: map[string]key{}}
}

// Heartbeat takes a beat received from nick.
func (v *View) Heartbeat(nick string, b *Beat, now time.Time) []Event {
	k := key{b.Service, b.Instance}
	m := v.members[k]
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
	v.setNick(k, m, nick)
	if kind == 0 {
		return nil
	}
	return []Event{{Kind: kind, Member: *m}}
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
	m.State, m.Since = Dead, now
	return []Event{{Kind: Left, Member: *m, Reason: reason}}
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
func (v *View) Suspend() { v.suspended = true }

// Resume starts judging again after a reconnect, giving every member a
// fresh start from now.
func (v *View) Resume(now time.Time) {
	v.suspended = false
	for _, m := range v.members {
		if m.State != Dead {
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
	var out []Event
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
		case Dead:
			if now.Sub(m.Since) >= v.cfg.Forget {
				delete(v.members, k)
				if k2, ok := v.byNick[strings.ToLower(m.Nick)]; ok && k2 == k {
					delete(v.byNick, strings.ToLower(m.Nick))
				}
			}
		}
	}
	sortEvents(out)
	return out
}

// Next returns when Tick next has something to do (the zero time when
// nothing is pending).
func (v *View) Next() time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, m := range v.members {
		switch m.State {
		case Alive:
			if !v.suspended {
				earlier(v.suspectAt(m))
			}
		case Suspect:
			if !v.suspended {
				earlier(v.deadAt(m))
			}
		case Dead:
			earlier(m.Since.Add(v.cfg.Forget))
		}
	}
	return next
}

// Members returns the live (alive or suspect) instances of service, or of
// every service when service is "", sorted by service and instance.
func (v *View) Members(service string) []Member {
	var out []Member
	for _, m := range v.members {
		if m.State != Dead && (service == "" || m.Service == service) {
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

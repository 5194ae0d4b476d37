// Package claimsview is what a passive member of an anycast group sees: a
// claims.Group that never claims, fed the lines of the topic's channel and
// the heartbeats, judging claims by the members' own rules
// (docs/PROTOCOL.md §6). 'meshbot claims' prints it; the console's claims
// command answers with it. It sees only what happens while it watches.
package claimsview

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Bounds of the view.
const (
	// MaxBuffered bounds the lines kept while the group is not chosen yet.
	MaxBuffered = 100_000
	// Rows of the table: pending events, then the last completed ones.
	maxPendingRows = 50
	maxDoneRows    = 10
)

// Watch is a passive member's view of one (topic, group): a
// claims.Group that never claims, fed what the channel and the heartbeats
// show. Its methods are safe for concurrent use.
type Watch struct {
	mu    sync.Mutex
	topic string
	group string
	self  envelope.Sender
	g     *claims.Group // nil until start

	// Before start: the lines seen, to replay once the group is known.
	buffered []bufferedLine
	// groupsSeen are the groups of the claims lines seen (for the error
	// when the group is ambiguous).
	groupsSeen map[string]bool
	members    []claims.Member
	since      time.Time
	lines      map[string]uint64 // lines the group took, by kind
	dropped    uint64            // lines not kept: over MaxBuffered
}

type bufferedLine struct {
	at time.Time
	r  claims.Received
}

// NewWatch returns the view of topic's group ("" until SetGroup, or
// DefaultGroup), for an observer whose own sender is self. It takes lines
// from now on (Line), and judges them once Start gave it the members.
func NewWatch(topic, group string, self envelope.Sender) *Watch {
	return &Watch{topic: topic, group: group, self: self, groupsSeen: map[string]bool{}, lines: map[string]uint64{},
		since: time.Now()}
}

// Line takes one envelope seen in the topic's channel.
func (w *Watch) Line(r claims.Received, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	kind := r.Envelope.Kind
	if !claims.OfProtocol(kind) {
		return
	}
	if kind != envelope.KindEvent && len(w.groupsSeen) < 100 {
		w.groupsSeen[r.Envelope.Topic] = true
	}
	if w.g == nil {
		if len(w.buffered) >= MaxBuffered {
			w.dropped++
			return
		}
		w.buffered = append(w.buffered, bufferedLine{now, r})
		return
	}
	w.feed(r, now)
}

// feed hands one line to the group. A passive group asks for nothing but
// reports lines that did not decode (its Stats count them).
func (w *Watch) feed(r claims.Received, now time.Time) {
	if w.g.Receive(r, now) {
		w.lines[r.Envelope.Kind.String()]++
	}
	w.g.Ready()
}

// GroupsAnnounced returns the anycast groups that members not dead announce
// for the topic in their heartbeats.
func (w *Watch) GroupsAnnounced(all []heartbeat.Member) []string {
	var out []string
	for _, m := range all {
		if m.State == heartbeat.Dead {
			continue
		}
		for _, s := range m.Beat.Subs {
			if s.Group != "" && strings.EqualFold(s.Topic, w.topic) && !slices.Contains(out, s.Group) {
				out = append(out, s.Group)
			}
		}
	}
	slices.Sort(out)
	return out
}

// DefaultGroup is the only group announced for the topic; a *GroupError
// when there are none or several.
func (w *Watch) DefaultGroup(all []heartbeat.Member) (string, error) {
	groups := w.GroupsAnnounced(all)
	if len(groups) == 1 {
		return groups[0], nil
	}
	w.mu.Lock()
	var inLines []string
	for g := range w.groupsSeen {
		inLines = append(inLines, g)
	}
	w.mu.Unlock()
	slices.Sort(inLines)
	return "", &GroupError{Topic: w.topic, Groups: groups, Seen: inLines}
}

// GroupError says why no default group could be chosen: the groups the
// heartbeats announce for Topic (none, or several), and those seen in
// claims lines.
type GroupError struct {
	Topic        string
	Groups, Seen []string
}

func (e *GroupError) Error() string {
	seen := ""
	if len(e.Seen) > 0 {
		q := make([]string, len(e.Seen))
		for i, g := range e.Seen {
			q[i] = fmt.Sprintf("%q", g)
		}
		seen = "; groups seen in claims lines: " + strings.Join(q, ", ")
	}
	if len(e.Groups) == 0 {
		return fmt.Sprintf("no member announces an anycast group for %s in its heartbeats%s", e.Topic, seen)
	}
	return fmt.Sprintf("%d anycast groups share %s: %s%s", len(e.Groups), e.Topic, strings.Join(e.Groups, ", "), seen)
}

// Topic returns the topic watched.
func (w *Watch) Topic() string { return w.topic }

// Group returns the group watched ("" until chosen).
func (w *Watch) Group() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.group
}

// SetGroup chooses the group, before Start.
func (w *Watch) SetGroup(g string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.group = g
}

// Start creates the passive group for w.group, gives it the members and
// replays the lines seen so far, on the clock they were seen at.
func (w *Watch) Start(all []heartbeat.Member, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.g = claims.NewGroup(claims.GroupConfig{Topic: w.topic, Group: w.group, Sender: w.self, Passive: true})
	first := now
	if len(w.buffered) > 0 {
		first = w.buffered[0].at
	}
	w.members = claims.GroupMembers(all, w.topic, w.group)
	w.g.Members(all, first)
	for _, l := range w.buffered {
		w.g.Tick(l.at)
		w.feed(l.r, l.at)
	}
	w.buffered = nil
	w.g.Tick(now)
	w.g.Ready()
}

// Tick advances the group to now with its current members.
func (w *Watch) Tick(all []heartbeat.Member, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.g == nil {
		return
	}
	w.members = claims.GroupMembers(all, w.topic, w.group)
	w.g.Members(all, now)
	w.g.Tick(now)
	w.g.Ready()
}

// Doc is the view at one moment: what meshbot claims prints as JSON, and the text table's
// data.
type Doc struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace"`
	Channel   string    `json:"channel"`
	Topic     string    `json:"topic"`
	Group     string    `json:"group"`
	Observer  string    `json:"observer"`
	// Since is when this command started watching: it knows nothing from
	// before.
	Since   time.Time    `json:"since"`
	Members []MemberView `json:"members"`
	Totals  Totals       `json:"totals"`
	// Events are the events tracked: pending ones first (oldest first),
	// then completed ones (latest first).
	Events []*EventView `json:"events"`
	// Lines counts the lines taken into account, by kind.
	Lines map[string]uint64 `json:"lines"`
	// Dropped counts lines missed: the observer's queue or the buffer
	// before the group was known overflowed.
	Dropped uint64 `json:"dropped,omitempty"`
}

type MemberView struct {
	ID          string `json:"id"`
	Incarnation uint64 `json:"incarnation"`
	State       string `json:"state"`
}

type Totals struct {
	Pending        int    `json:"pending"`
	Acked          uint64 `json:"acked"`
	Dead           uint64 `json:"dead"`
	FailedAttempts uint64 `json:"failed_attempts"`
	// Released counts claims given back by members shutting down (not
	// failed attempts).
	Released uint64 `json:"released"`
	// Malformed counts lines of the group that did not decode.
	Malformed uint64 `json:"malformed,omitempty"`
}

// Event states.
const (
	StateClaimed = "claimed"
	StateWaiting = "waiting"
)

type EventView struct {
	Event string `json:"event"`
	Short string `json:"short"`
	// Seen is false for an event published before the command started:
	// only its claims were seen.
	Seen  bool   `json:"seen"`
	State string `json:"state"` // claimed, waiting, acked, dead
	// Owner holds the claim (claimed) or completed the event.
	Owner            string `json:"owner,omitempty"`
	OwnerIncarnation uint64 `json:"owner_incarnation,omitempty"`
	Epoch            uint64 `json:"epoch"`
	// Attempts counts the failed attempts seen.
	Attempts uint32 `json:"attempts"`
	// LeaseLeftMS is what remains of the owner's lease (claimed only).
	LeaseLeftMS *int64    `json:"lease_left_ms,omitempty"`
	First       time.Time `json:"first"`
	AgeMS       int64     `json:"age_ms"`
	Reasons     []string  `json:"reasons"`
}

// Doc returns the view at now: pending events first (oldest first), then
// completed ones (latest first).
func (w *Watch) Doc(now time.Time) *Doc {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := &Doc{Time: now.UTC(), Topic: w.topic, Group: w.group, Since: w.since.UTC(),
		Members: []MemberView{}, Events: []*EventView{}, Lines: map[string]uint64{},
		Dropped: w.dropped}
	for k, v := range w.lines {
		d.Lines[k] = v
	}
	for _, m := range w.members {
		d.Members = append(d.Members, MemberView{ID: m.ID, Incarnation: m.Incarnation, State: m.State.String()})
	}
	if w.g == nil {
		return d
	}
	skew := w.g.Config().Skew
	var pending, done []*EventView
	for _, in := range w.g.Snapshot() {
		v := &EventView{Event: in.Event.String(), Short: in.Event.Short(), Seen: in.Seen,
			Owner: in.Owner.ID, OwnerIncarnation: in.Owner.Incarnation, Epoch: in.Epoch, Attempts: in.Attempts,
			First: in.First.UTC(), AgeMS: max(0, now.Sub(in.First).Milliseconds()), Reasons: in.Reasons}
		if v.Reasons == nil {
			v.Reasons = []string{}
		}
		switch in.Outcome {
		case claims.Acked, claims.DeadLettered:
			v.State = in.Outcome.String()
			done = append(done, v)
			continue
		}
		if in.Owner.ID != "" {
			v.State = StateClaimed
			left := max(0, in.Until.Add(-skew).Sub(now).Milliseconds())
			v.LeaseLeftMS = &left
		} else {
			v.State = StateWaiting
		}
		pending = append(pending, v)
	}
	slices.Reverse(done)
	d.Events = append(append(d.Events, pending...), done...)
	st := w.g.Stats()
	d.Totals = Totals{Pending: len(pending), Acked: st.Acked, Dead: st.Dead, FailedAttempts: st.Takeovers,
		Released: st.Released, Malformed: st.Malformed}
	return d
}

// WriteTable prints the doc for people.
func WriteTable(w io.Writer, d *Doc) {
	fmt.Fprintf(w, "%s  %s  group %s  watching since %s (%s)\n", d.Time.Local().Format("15:04:05"), d.Channel, d.Group,
		d.Since.Local().Format("15:04:05"), d.Time.Sub(d.Since).Round(100*time.Millisecond))
	if len(d.Members) == 0 {
		fmt.Fprintf(w, "members: none announce group %s for %s\n", d.Group, d.Topic)
	} else {
		ms := make([]string, len(d.Members))
		for i, m := range d.Members {
			ms[i] = m.ID
			if m.State != heartbeat.Alive.String() {
				ms[i] += " (" + m.State + ")"
			}
		}
		fmt.Fprintf(w, "members: %s\n", strings.Join(ms, ", "))
	}
	fmt.Fprintln(w)
	var pending, done []*EventView
	for _, e := range d.Events {
		if e.State == StateClaimed || e.State == StateWaiting {
			pending = append(pending, e)
		} else {
			done = append(done, e)
		}
	}
	if len(pending)+len(done) == 0 {
		fmt.Fprintln(w, "no events seen")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT\tSTATE\tOWNER\tEPOCH\tFAILED\tLEASE LEFT\tAGE\tREASONS")
		unseen := false
		row := func(e *EventView) {
			short := e.Short
			if !e.Seen {
				short += "*"
				unseen = true
			}
			lease := "-"
			if e.LeaseLeftMS != nil {
				lease = fmt.Sprintf("%.1fs", float64(*e.LeaseLeftMS)/1000)
			}
			reasons := "-"
			if len(e.Reasons) > 0 {
				reasons = envelope.Legible(strings.Join(e.Reasons, "; "), 100)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", short, e.State, orDash(e.Owner), e.Epoch, e.Attempts, lease,
				durationShort(time.Duration(e.AgeMS)*time.Millisecond), reasons)
		}
		for i, e := range pending {
			if i == maxPendingRows {
				fmt.Fprintf(tw, "… %d more pending\n", len(pending)-i)
				break
			}
			row(e)
		}
		for i, e := range done {
			if i == maxDoneRows {
				fmt.Fprintf(tw, "… %d more completed\n", len(done)-i)
				break
			}
			row(e)
		}
		_ = tw.Flush()
		if unseen {
			fmt.Fprintln(w, "* published before this command started watching: only its claims were seen")
		}
	}
	fmt.Fprintln(w)
	t := d.Totals
	fmt.Fprintf(w, "%d pending, %d acked, %d dead-lettered, %d failed %s", t.Pending, t.Acked, t.Dead, t.FailedAttempts, plural(int(t.FailedAttempts), "attempt", "attempts"))
	if t.Released > 0 {
		fmt.Fprintf(w, ", %d released", t.Released)
	}
	if t.Malformed > 0 {
		fmt.Fprintf(w, ", %d malformed claims lines", t.Malformed)
	}
	if d.Dropped > 0 {
		fmt.Fprintf(w, ", %d lines missed (too many)", d.Dropped)
	}
	fmt.Fprintln(w)
}

// durationShort renders an age: "0.4s", "12.0s", "3m5s".
func durationShort(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Lines is the view in a few lines for a person in an IRC client: the
// group and its totals, then the pending events (at most max-1).
func Lines(d *Doc, max int) []string {
	t := d.Totals
	ms := make([]string, len(d.Members))
	for i, m := range d.Members {
		ms[i] = m.ID
		if m.State != heartbeat.Alive.String() {
			ms[i] += " (" + m.State + ")"
		}
	}
	members := "no members"
	if len(ms) > 0 {
		members = "members " + strings.Join(ms, " ")
	}
	out := []string{fmt.Sprintf("%s group %s (%s), watched %s: %d pending, %d acked, %d dead-lettered, %d failed %s",
		d.Topic, d.Group, members, durationShort(d.Time.Sub(d.Since)), t.Pending, t.Acked, t.Dead, t.FailedAttempts,
		plural(int(t.FailedAttempts), "attempt", "attempts"))}
	for _, e := range d.Events {
		if e.State != StateClaimed && e.State != StateWaiting {
			continue
		}
		if len(out) == max-1 && t.Pending > max-1 {
			out = append(out, fmt.Sprintf("… %d more pending", t.Pending-(max-2)))
			break
		}
		line := e.Short + " " + e.State
		if e.Owner != "" {
			line += " by " + e.Owner
		}
		line += fmt.Sprintf(", epoch %d, %d failed", e.Epoch, e.Attempts)
		if e.LeaseLeftMS != nil {
			line += ", lease " + durationShort(time.Duration(*e.LeaseLeftMS)*time.Millisecond) + " left"
		}
		line += ", age " + durationShort(time.Duration(e.AgeMS)*time.Millisecond)
		if len(e.Reasons) > 0 {
			line += ": " + envelope.Legible(strings.Join(e.Reasons, "; "), 100)
		}
		out = append(out, line)
	}
	return out
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/mesh"
)

const (
	// claimsSettle is how long claims listens before it picks the group
	// and starts judging claims: a bit more than a heartbeat interval, so
	// that every member of the group has announced itself.
	claimsSettle = 1500 * time.Millisecond
	// claimsTick is how often the observer's view advances (leases,
	// timeouts) and takes the group's members from the heartbeats.
	claimsTick = 100 * time.Millisecond
	// claimsEvery is the reprint interval of --watch.
	claimsEvery = time.Second
	// maxClaimsBuffered bounds the lines kept while the group is not
	// chosen yet.
	maxClaimsBuffered = 100_000
	// Rows of the table: pending events, then the last completed ones.
	maxPendingRows = 50
	maxDoneRows    = 10
)

func newClaimsCmd(st *state) *cobra.Command {
	var (
		conn           connFlags
		id             identityFlags
		trust          trustFlags
		group          string
		follow, asJSON bool
		watchFor       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "claims TOPIC [--group GROUP]",
		Short: "Show a topic's anycast events in flight: owner, epoch, attempts, lease",
		Long: `Watch the channel of TOPIC as a passive member of an anycast group: follow
the events published there and the group's claims, acks, nacks and dead
markers, and the group's members from their heartbeats, and judge them by
the same rules as the members do (docs/PROTOCOL.md §6), without ever
claiming. Then print the events in flight, pending ones first, then the
last ones completed:

  EVENT     STATE    OWNER     EPOCH  FAILED  LEASE LEFT  AGE    REASONS
  7c7828ce  claimed  worker/2  2      1       28.7s       1.3s   worker/1: boom
  4776bf3e  acked    worker/1  1      0       -           2.1s   -

  1 pending, 48 acked, 0 dead-lettered, 1 failed attempt

STATE is claimed (a live member holds it), waiting (no live claim: the
next owner has not claimed yet, or a nack's retry delay runs), acked or
dead (sent to the dead-letter topic TOPIC._dead). OWNER is the member
(service/instance) holding the claim, or the one that completed it;
EPOCH grows with every takeover; FAILED counts the failed attempts seen;
LEASE LEFT is what remains of the owner's lease (renewed at half its
length while the handler runs); AGE is since the event, or its first
claim, was seen. REASONS say why attempts failed. An event marked * was
published before this command started: only its claims were seen.

It only sees what happens while it watches: events published before it
started, and claims made then, are unknown to it, and the totals count from
its start. Members are known from their heartbeats, so it listens 1.5s
before judging claims.

GROUP defaults to the one group announced for TOPIC in the members'
heartbeats; when there are none or several, give --group.

Without --watch, it watches for --for (3s) and prints once. With --watch,
it reprints every second until interrupted. --json prints one JSON
document instead (one per line with --watch).`,
		Example: `  meshbot claims orders.created
  meshbot claims orders.created --group billing --for 10s
  meshbot claims orders.created --watch
  meshbot claims orders.created --json | jq '.events[] | select(.state == "waiting")'`,
		Args: nargs(1, 1, "TOPIC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if watchFor <= 0 {
				return usagef("claims: --for %v: want a positive duration", watchFor)
			}
			if cmd.Flags().Changed("for") && follow {
				return usagef("claims: --for and --watch exclude each other")
			}
			if cmd.Flags().Changed("group") {
				if err := mesh.ValidateGroup(group); err != nil {
					return usagef("claims: --group: %v", err)
				}
			}
			topics, err := topicArgs(conn.namespace, a)
			if err != nil {
				return err
			}
			topic := topics[0]
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			if err := mesh.ValidateTopic(cfg.Namespace, topic, 0); err != nil {
				return usageError{err}
			}
			ctx := cmd.Context()
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				if follow && ctx.Err() != nil {
					return nil
				}
				return err
			}
			defer conn.closeNode(st, n)
			r := &claimsRun{
				st: st, n: n, w: st.env.stdout, json: asJSON, follow: follow, watchFor: watchFor,
				namespace: cfg.Namespace, channel: mesh.Channel(cfg.Namespace, topic), server: cfg.Server,
				watch: newClaimsWatch(topic, group, envelope.Sender{Service: n.Service(), Instance: n.Instance()}),
			}
			return r.run(ctx)
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, true)
	f.StringVar(&group, "group", "", "the anycast `GROUP` (default: the only group announced for TOPIC)")
	f.DurationVar(&watchFor, "for", 3*time.Second, "without --watch, how long to watch before printing (1.5s at least)")
	f.BoolVar(&follow, "watch", false, "reprint every second until interrupted")
	f.BoolVar(&asJSON, "json", false, "print one JSON document (one per line with --watch)")
	return cmd
}

// claimsRun is one run of the claims command.
type claimsRun struct {
	st       *state
	n        *mesh.Node
	w        io.Writer
	json     bool
	follow   bool
	watchFor time.Duration
	// namespace, channel and server describe the observation.
	namespace, channel, server string
	watch                      *claimsWatch
	printed                    bool // a table was printed
}

func (r *claimsRun) run(ctx context.Context) error {
	start := time.Now()
	w := r.watch
	o, err := observe(ctx, r.n, w.topic, func(ob mesh.Observation) {
		if ob.Envelope != nil && ob.Err == nil {
			w.line(claims.Received{Envelope: ob.Envelope, From: ob.From, ServerTime: ob.Time, MsgID: ob.MsgID}, time.Now())
		}
	})
	if err != nil {
		if r.follow && ctx.Err() != nil {
			return nil
		}
		return interrupted(ctx, fmt.Errorf("watching %s: %w", w.topic, err))
	}
	defer o.stop()
	stopped := func() error {
		if r.follow {
			return nil
		}
		return fmt.Errorf("interrupted")
	}
	if !sleepCtx(ctx, claimsSettle) {
		return stopped()
	}
	all := r.n.AllMembers()
	if w.group == "" {
		g, err := w.defaultGroup(all)
		if err != nil {
			return err
		}
		w.group = g
	}
	w.start(all, time.Now())

	t := time.NewTicker(claimsTick)
	defer t.Stop()
	next := start.Add(r.watchFor)
	if r.follow {
		next = time.Now()
		fmt.Fprintf(r.st.env.stderr, "meshbot: watching group %s of %s on %s as %s; Ctrl-C to stop\n", w.group, r.channel, r.server, r.n.Nick())
	}
	for {
		now := time.Now()
		w.tick(r.n.AllMembers(), now)
		if !now.Before(next) {
			doc := w.doc(now)
			doc.Namespace, doc.Channel, doc.Observer = r.namespace, r.channel, r.n.Nick()
			doc.Dropped += o.o.Dropped()
			if err := r.print(doc); err != nil {
				return err
			}
			if !r.follow {
				return nil
			}
			next = now.Add(claimsEvery)
		}
		select {
		case <-ctx.Done():
			return stopped()
		case <-t.C:
		}
	}
}

func (r *claimsRun) print(doc *claimsDoc) error {
	if r.json {
		enc := json.NewEncoder(r.w)
		if !r.follow {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(doc)
	}
	var b strings.Builder
	if r.follow && isTerminalWriter(r.w) {
		b.WriteString("\x1b[H\x1b[2J") // clear the screen
	} else if r.printed {
		b.WriteString("\n")
	}
	writeClaimsTable(&b, doc)
	r.printed = true
	_, err := io.WriteString(r.w, b.String())
	return err
}

// isTerminalWriter reports whether w is an interactive terminal.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// sleepCtx waits for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// claimsWatch is a passive member's view of one (topic, group): a
// claims.Group that never claims, fed what the channel and the heartbeats
// show. Its methods are safe for concurrent use.
type claimsWatch struct {
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
	dropped    uint64            // lines not kept: over maxClaimsBuffered
}

type bufferedLine struct {
	at time.Time
	r  claims.Received
}

func newClaimsWatch(topic, group string, self envelope.Sender) *claimsWatch {
	return &claimsWatch{topic: topic, group: group, self: self, groupsSeen: map[string]bool{}, lines: map[string]uint64{},
		since: time.Now()}
}

// line takes one envelope seen in the topic's channel.
func (w *claimsWatch) line(r claims.Received, now time.Time) {
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
		if len(w.buffered) >= maxClaimsBuffered {
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
func (w *claimsWatch) feed(r claims.Received, now time.Time) {
	if w.g.Receive(r, now) {
		w.lines[r.Envelope.Kind.String()]++
	}
	w.g.Ready()
}

// groupsAnnounced returns the anycast groups that members not dead announce
// for the topic in their heartbeats.
func (w *claimsWatch) groupsAnnounced(all []heartbeat.Member) []string {
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

// defaultGroup is the only group announced for the topic; an error that
// lists the groups seen when there are none or several.
func (w *claimsWatch) defaultGroup(all []heartbeat.Member) (string, error) {
	groups := w.groupsAnnounced(all)
	if len(groups) == 1 {
		return groups[0], nil
	}
	w.mu.Lock()
	var inLines []string
	for g := range w.groupsSeen {
		inLines = append(inLines, fmt.Sprintf("%q", g))
	}
	w.mu.Unlock()
	slices.Sort(inLines)
	seen := ""
	if len(inLines) > 0 {
		seen = "; groups seen in claims lines: " + strings.Join(inLines, ", ")
	}
	if len(groups) == 0 {
		return "", usagef("claims: no member announces an anycast group for %s in its heartbeats%s; give --group", w.topic, seen)
	}
	return "", usagef("claims: %d anycast groups share %s: %s%s; choose one with --group", len(groups), w.topic, strings.Join(groups, ", "), seen)
}

// start creates the passive group for w.group, gives it the members and
// replays the lines seen so far, on the clock they were seen at.
func (w *claimsWatch) start(all []heartbeat.Member, now time.Time) {
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

// tick advances the group to now with its current members.
func (w *claimsWatch) tick(all []heartbeat.Member, now time.Time) {
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

// claimsDoc is what claims prints: its JSON form, and the text table's
// data.
type claimsDoc struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace"`
	Channel   string    `json:"channel"`
	Topic     string    `json:"topic"`
	Group     string    `json:"group"`
	Observer  string    `json:"observer"`
	// Since is when this command started watching: it knows nothing from
	// before.
	Since   time.Time          `json:"since"`
	Members []claimsMemberView `json:"members"`
	Totals  claimsTotals       `json:"totals"`
	// Events are the events tracked: pending ones first (oldest first),
	// then completed ones (latest first).
	Events []*claimsEventView `json:"events"`
	// Lines counts the lines taken into account, by kind.
	Lines map[string]uint64 `json:"lines"`
	// Dropped counts lines missed: the observer's queue or the buffer
	// before the group was known overflowed.
	Dropped uint64 `json:"dropped,omitempty"`
}

type claimsMemberView struct {
	ID          string `json:"id"`
	Incarnation uint64 `json:"incarnation"`
	State       string `json:"state"`
}

type claimsTotals struct {
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
	stateClaimed = "claimed"
	stateWaiting = "waiting"
)

type claimsEventView struct {
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

// doc returns the view at now: pending events first (oldest first), then
// completed ones (latest first).
func (w *claimsWatch) doc(now time.Time) *claimsDoc {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := &claimsDoc{Time: now.UTC(), Topic: w.topic, Group: w.group, Since: w.since.UTC(),
		Members: []claimsMemberView{}, Events: []*claimsEventView{}, Lines: map[string]uint64{},
		Dropped: w.dropped}
	for k, v := range w.lines {
		d.Lines[k] = v
	}
	for _, m := range w.members {
		d.Members = append(d.Members, claimsMemberView{ID: m.ID, Incarnation: m.Incarnation, State: m.State.String()})
	}
	if w.g == nil {
		return d
	}
	skew := w.g.Config().Skew
	var pending, done []*claimsEventView
	for _, in := range w.g.Snapshot() {
		v := &claimsEventView{Event: in.Event.String(), Short: in.Event.Short(), Seen: in.Seen,
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
			v.State = stateClaimed
			left := max(0, in.Until.Add(-skew).Sub(now).Milliseconds())
			v.LeaseLeftMS = &left
		} else {
			v.State = stateWaiting
		}
		pending = append(pending, v)
	}
	slices.Reverse(done)
	d.Events = append(append(d.Events, pending...), done...)
	st := w.g.Stats()
	d.Totals = claimsTotals{Pending: len(pending), Acked: st.Acked, Dead: st.Dead, FailedAttempts: st.Takeovers,
		Released: st.Released, Malformed: st.Malformed}
	return d
}

// writeClaimsTable prints the doc for people.
func writeClaimsTable(w io.Writer, d *claimsDoc) {
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
	var pending, done []*claimsEventView
	for _, e := range d.Events {
		if e.State == stateClaimed || e.State == stateWaiting {
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
		row := func(e *claimsEventView) {
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
				reasons = clip(clean(strings.Join(e.Reasons, "; ")), 100)
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/wait"
	"github.com/meshbot/meshbot/mesh"
)

func newMembersCmd(st *state) *cobra.Command {
	var (
		conn                connFlags
		id                  identityFlags
		trust               trustFlags
		all, asJSON, follow bool
		settle              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "members [SERVICE...]",
		Short: "List the live service instances and their dependencies, from heartbeats",
		Long: `Join the namespace's heartbeat channel (#NAMESPACE._hb) as an observer,
listen for --settle (1.5s: every node beats every second, so that is enough
to hear each of them once), and print what the heartbeats say:

  SERVICE  INSTANCE  NICK  STATE  LAST BEAT  LOAD  SUBSCRIPTIONS  METHODS  DEPENDS

then the dependency graph (service → the services it depends on; a
dependency with no live instance is marked) and every dependency cycle,
flagged as "cycle: a → b → a". STATE is alive, or suspect when beats are
late (2 intervals); after 3 intervals or when the server reports it gone, an
instance is dead and shown only with --all (dead ones are those seen dying
while this command listened). Subscriptions are topics, "group:topic" for
an anycast group, "(kicked)" for a topic a channel operator removed the
instance from; METHODS are the request methods it answers (try one with
'meshbot req SERVICE METHOD PAYLOAD'). Given SERVICE arguments, only those
services are shown (and the cycles through them).

With --watch, the table is followed by every change as it happens, until
interrupted:

  TIME  KIND  SERVICE/INSTANCE  NICK  [REASON or details]

KIND is joined, suspected, recovered, restarted (a new incarnation), left,
or cycle / cycle-broken when a dependency cycle forms or ends.

The tool's own node (service "meshbot" by default) beats too, so other
observers see it; it leaves itself out. In a mesh that signs its envelopes,
give --keyring: signed heartbeats are only accepted with the keys to check
them.

--json prints one JSON document (members, dependencies, missing, cycles);
with --watch, one JSON object per line instead: the members present after
--settle as kind "present", the cycles then as kind "cycle", then the
events.`,
		Example: `  meshbot members
  meshbot members orders pricing --namespace shop
  meshbot members --all --settle 3s
  meshbot members --json | jq -r '.members[] | select(.state != "alive") | .nick'
  meshbot members --watch
  meshbot members orders --watch --json >> topology.jsonl`,
		Args: nargs(0, -1, "[SERVICE...]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if settle < 0 {
				return usagef("members: --settle %v: want a duration of 0 or more", settle)
			}
			for _, s := range a {
				if err := checkServiceArg(s); err != nil {
					return err
				}
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
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
			m := &membersRun{
				st: st, n: n, w: st.env.stdout, filter: newServiceFilter(a),
				all: all, json: asJSON, settle: settle,
				namespace: cfg.Namespace, hbChannel: mesh.HeartbeatChannel(cfg.Namespace), server: cfg.Server,
			}
			if follow {
				return m.watch(ctx)
			}
			return m.once(ctx)
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, true)
	f.DurationVar(&settle, "settle", 1500*time.Millisecond, "how long to listen for heartbeats before printing (a bit more than one heartbeat interval)")
	f.BoolVar(&all, "all", false, "include dead instances (those seen dying while listening)")
	f.BoolVar(&asJSON, "json", false, "print one JSON document; with --watch, one JSON object per line")
	f.BoolVar(&follow, "watch", false, "keep running and print every membership change until interrupted")
	return cmd
}

// checkServiceArg checks a SERVICE argument by the mesh's naming rules, so
// that a typo is not silently an empty result.
func checkServiceArg(s string) error {
	if s == "" {
		return usagef("members: empty SERVICE")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')
		if !ok {
			return usagef("members: service %q: names are a-z, 0-9, _ and - (starting with a letter or digit)", s)
		}
	}
	return nil
}

// serviceFilter selects services; empty selects all.
type serviceFilter map[string]bool

func newServiceFilter(services []string) serviceFilter {
	f := serviceFilter{}
	for _, s := range services {
		f[s] = true
	}
	return f
}

func (f serviceFilter) has(service string) bool { return len(f) == 0 || f[service] }

// hasAny reports whether the filter selects one of services.
func (f serviceFilter) hasAny(services []string) bool {
	return slices.ContainsFunc(services, f.has)
}

// membersRun is one run of the members command.
type membersRun struct {
	st        *state
	n         *mesh.Node
	w         io.Writer
	filter    serviceFilter
	all, json bool
	settle    time.Duration
	namespace string
	hbChannel string
	server    string
}

// self reports whether m is this tool's own node.
func (r *membersRun) self(m heartbeat.Member) bool {
	return m.Service == r.n.Service() && m.Instance == r.n.Instance()
}

// wait listens for the settle time; false when ctx ended first.
func (r *membersRun) wait(ctx context.Context) bool { return wait.Sleep(ctx, r.settle) }

// topology is what the view holds at one moment, the tool's own node left
// out.
type topology struct {
	at      time.Time
	members []heartbeat.Member  // every member known, dead ones included
	graph   map[string][]string // of the live members
	cycles  [][]string
	// domainCycles are the cycles between domains (mesh.DomainGraph).
	domainCycles [][]string
}

func (r *membersRun) topology() *topology {
	t := &topology{at: time.Now()}
	for _, m := range r.n.AllMembers() {
		if !r.self(m) {
			t.members = append(t.members, m)
		}
	}
	t.graph = heartbeat.Dependencies(t.members) // skips dead members
	t.cycles = heartbeat.Cycles(t.graph)
	t.domainCycles = heartbeat.Cycles(mesh.DomainGraph(t.members))
	return t
}

// shownCycles are the cycles through a selected service.
func (r *membersRun) shownCycles(cycles [][]string) [][]string {
	out := [][]string{}
	for _, c := range cycles {
		if r.filter.hasAny(c) {
			out = append(out, c)
		}
	}
	return out
}

// membersDoc is the JSON document of a one-shot run.
type membersDoc struct {
	Time      time.Time     `json:"time"`
	Namespace string        `json:"namespace"`
	Channel   string        `json:"channel"`
	Observer  string        `json:"observer"`
	SettleMS  int64         `json:"settle_ms"`
	Members   []*memberView `json:"members"`
	// Dependencies maps each shown live service to the services it
	// depends on.
	Dependencies map[string][]string `json:"dependencies"`
	// Missing maps a shown service to its dependencies without a live
	// instance.
	Missing map[string][]string `json:"missing"`
	Cycles  [][]string          `json:"cycles"`
	// DomainCycles are dependency cycles between domains of state.
	DomainCycles [][]string `json:"domain_cycles"`
}

type memberView struct {
	Service       string    `json:"service"`
	Instance      string    `json:"instance"`
	Nick          string    `json:"nick"`
	Incarnation   uint64    `json:"incarnation"`
	State         string    `json:"state"`
	Since         time.Time `json:"since"`
	LastBeat      time.Time `json:"last_beat"`
	LastBeatAgeMS int64     `json:"last_beat_age_ms"`
	IntervalMS    uint32    `json:"interval_ms"`
	Seq           uint64    `json:"seq"`
	Load          float32   `json:"load"`
	StateVersion  uint64    `json:"state_version,omitempty"`
	Subs          []subView `json:"subs"`
	// Kicked are the subscriptions a channel operator removed it from.
	Kicked []subView `json:"kicked,omitempty"`
	// Methods are the request methods it answers.
	Methods []string `json:"methods"`
	Depends []string `json:"depends"`
}

type subView struct {
	Topic string `json:"topic"`
	Group string `json:"group,omitempty"`
}

func newMemberView(m heartbeat.Member, now time.Time) *memberView {
	v := &memberView{
		Service: m.Service, Instance: m.Instance, Nick: m.Nick, Incarnation: m.Incarnation,
		State: m.State.String(), Since: m.Since, LastBeat: m.LastBeat,
		LastBeatAgeMS: max(0, now.Sub(m.LastBeat).Milliseconds()),
		IntervalMS:    m.Beat.IntervalMillis, Seq: m.Beat.Seq, Load: m.Beat.Load,
		StateVersion: m.Beat.StateVersion,
		Subs:         []subView{}, Depends: []string{}, Methods: []string{},
	}
	for _, s := range m.Beat.Subs {
		v.Subs = append(v.Subs, subView{s.Topic, s.Group})
	}
	for _, s := range m.Beat.Kicked {
		v.Kicked = append(v.Kicked, subView{s.Topic, s.Group})
	}
	v.Methods = append(v.Methods, m.Beat.Methods...)
	v.Depends = append(v.Depends, m.Beat.Depends...)
	return v
}

// shown returns the members to print: selected services, live ones unless
// --all.
func (r *membersRun) shown(t *topology) []heartbeat.Member {
	var out []heartbeat.Member
	for _, m := range t.members {
		if r.filter.has(m.Service) && (r.all || m.State != heartbeat.Dead) {
			out = append(out, m)
		}
	}
	return out
}

// once prints the members after the settle time.
func (r *membersRun) once(ctx context.Context) error {
	if !r.wait(ctx) {
		return errors.New("interrupted")
	}
	t := r.topology()
	shown := r.shown(t)
	if r.json {
		if err := r.printDoc(t, shown); err != nil {
			return err
		}
	} else {
		r.printTable(t, shown)
	}
	services := map[string]bool{}
	for _, m := range shown {
		services[m.Service] = true
	}
	var absent []string
	for s := range r.filter {
		if !services[s] {
			absent = append(absent, s)
		}
	}
	slices.Sort(absent)
	if len(absent) > 0 {
		fmt.Fprintf(r.st.env.stderr, "meshbot: no live instance of %s on %s\n", strings.Join(absent, ", "), r.hbChannel)
	}
	return nil
}

func (r *membersRun) printDoc(t *topology, shown []heartbeat.Member) error {
	doc := membersDoc{
		Time: t.at.UTC(), Namespace: r.namespace,
		Channel: r.hbChannel, Observer: r.n.Nick(), SettleMS: r.settle.Milliseconds(),
		Members: []*memberView{}, Dependencies: map[string][]string{}, Missing: map[string][]string{},
		Cycles: r.shownCycles(t.cycles), DomainCycles: append([][]string{}, t.domainCycles...),
	}
	for _, m := range shown {
		doc.Members = append(doc.Members, newMemberView(m, t.at))
	}
	for s, deps := range t.graph {
		if !r.filter.has(s) {
			continue
		}
		doc.Dependencies[s] = append([]string{}, deps...)
		if miss := missingDeps(t.graph, deps); len(miss) > 0 {
			doc.Missing[s] = miss
		}
	}
	enc := json.NewEncoder(r.w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// missingDeps returns the dependencies without a live instance.
func missingDeps(graph map[string][]string, deps []string) []string {
	var out []string
	for _, d := range deps {
		if _, ok := graph[d]; !ok {
			out = append(out, d)
		}
	}
	return out
}

// printTable prints the members, the dependency graph and its cycles.
func (r *membersRun) printTable(t *topology, shown []heartbeat.Member) {
	if len(shown) == 0 {
		what := "no live members"
		if r.all {
			what = "no members"
		}
		if len(r.filter) > 0 {
			names := make([]string, 0, len(r.filter))
			for s := range r.filter {
				names = append(names, s)
			}
			slices.Sort(names)
			what += " of " + strings.Join(names, ", ")
		}
		fmt.Fprintf(r.w, "%s seen on %s in %v\n", what, r.hbChannel, r.settle)
		return
	}
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCE\tNICK\tSTATE\tLAST BEAT\tLOAD\tSUBSCRIPTIONS\tMETHODS\tDEPENDS")
	for _, m := range shown {
		subs := subsText(m.Beat.Subs)
		if k := subsText(m.Beat.Kicked); k != "" {
			subs = strings.TrimPrefix(subs+", "+strings.ReplaceAll(k, ", ", " (kicked), ")+" (kicked)", ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\n", m.Service, m.Instance, m.Nick, m.State,
			ago(t.at.Sub(m.LastBeat)), m.Beat.Load, orDash(subs), orDash(strings.Join(m.Beat.Methods, ", ")), orDash(strings.Join(m.Beat.Depends, ", ")))
	}
	_ = tw.Flush()

	fmt.Fprintln(r.w)
	fmt.Fprintln(r.w, "DEPENDENCIES")
	services := make([]string, 0, len(t.graph))
	for s, deps := range t.graph {
		if r.filter.has(s) && len(deps) > 0 {
			services = append(services, s)
		}
	}
	slices.Sort(services)
	cycles := r.shownCycles(t.cycles)
	onCycle := map[string]bool{}
	for _, c := range cycles {
		for _, s := range c {
			onCycle[s] = true
		}
	}
	if len(services) == 0 {
		fmt.Fprintln(r.w, "  (none announced)")
	}
	tw = tabwriter.NewWriter(r.w, 0, 0, 2, ' ', 0)
	for _, s := range services {
		deps := make([]string, len(t.graph[s]))
		for i, d := range t.graph[s] {
			deps[i] = d
			if _, ok := t.graph[d]; !ok {
				deps[i] += " (no live instance)"
			}
		}
		note := ""
		if onCycle[s] {
			note = "\t(on a cycle)"
		}
		fmt.Fprintf(tw, "  %s → %s%s\n", s, strings.Join(deps, ", "), note)
	}
	_ = tw.Flush()
	fmt.Fprintln(r.w)
	if len(cycles) == 0 {
		fmt.Fprintln(r.w, "no dependency cycles")
	}
	for _, c := range cycles {
		fmt.Fprintf(r.w, "cycle: %s\n", cycleText(c))
	}
	for _, c := range t.domainCycles {
		fmt.Fprintf(r.w, "domain cycle: %s\n", cycleText(c))
	}
}

// cycleText renders a cycle closed: a → b → a.
func cycleText(c []string) string {
	return strings.Join(append(slices.Clone(c), c[0]), " → ")
}

func subsText(subs []heartbeat.Sub) string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.Topic
		if s.Group != "" {
			out[i] = s.Group + ":" + s.Topic
		}
	}
	return strings.Join(out, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago renders an age: "0.4s ago", "2m5s ago".
func ago(d time.Duration) string {
	d = max(d, 0)
	if d < time.Minute {
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	}
	return d.Round(time.Second).String() + " ago"
}

// Event kinds of --watch besides heartbeat.EventKind.
const (
	kindPresent     = "present"
	kindCycle       = "cycle"
	kindCycleBroken = "cycle-broken"
)

// eventView is one line of members --watch --json.
type eventView struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Reason string    `json:"reason,omitempty"`
	Cycle  []string  `json:"cycle,omitempty"`
	*memberView
}

// watcher prints membership events; its methods run under mu.
type watcher struct {
	r      *membersRun
	mu     sync.Mutex
	live   bool
	seen   map[string]heartbeat.Member // the first snapshot, to skip its events
	cycles map[string][]string         // the cycles shown, by key
	events int
}

// watch prints the members after the settle time, then every change until
// ctx ends.
func (r *membersRun) watch(ctx context.Context) error {
	w := &watcher{r: r, cycles: map[string][]string{}}
	stop := r.n.WatchMembers(w.event)
	defer stop()
	if !r.wait(ctx) {
		return nil
	}

	w.mu.Lock()
	t := r.topology()
	w.live = true
	w.seen = map[string]heartbeat.Member{}
	for _, m := range t.members {
		w.seen[m.ID()] = m
	}
	shown := r.shown(t)
	if r.json {
		for _, m := range shown {
			w.print(&eventView{Time: t.at, Kind: kindPresent, memberView: newMemberView(m, t.at)})
		}
	} else {
		r.printTable(t, shown)
		fmt.Fprintln(r.w)
	}
	for _, c := range r.shownCycles(t.cycles) {
		w.cycles[strings.Join(c, " ")] = c
		if r.json {
			w.print(&eventView{Time: t.at, Kind: kindCycle, Cycle: c})
		}
	}
	w.mu.Unlock()

	fmt.Fprintf(r.st.env.stderr, "meshbot: watching %s on %s as %s; Ctrl-C to stop\n", r.hbChannel, r.server, r.n.Nick())
	<-ctx.Done()
	stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(r.st.env.stderr, "meshbot: %d membership events\n", w.events)
	return nil
}

// event takes one event from Node.WatchMembers.
func (w *watcher) event(ev heartbeat.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := ev.Member
	if !w.live || w.r.self(m) {
		return // before the snapshot, which shows its effect
	}
	k := m.ID()
	if s, ok := w.seen[k]; ok {
		delete(w.seen, k)
		if s.Incarnation == m.Incarnation && s.State == m.State && s.Since.Equal(m.Since) {
			return // already in the snapshot
		}
	}
	at := m.Since
	if at.IsZero() {
		at = time.Now()
	}
	if w.r.filter.has(m.Service) {
		w.events++
		if w.r.json {
			w.print(&eventView{Time: at, Kind: ev.Kind.String(), Reason: ev.Reason, memberView: newMemberView(m, at)})
		} else {
			w.printText(at, ev.Kind.String(), m.ID(), m.Nick, eventDetail(ev))
		}
	}
	w.checkCycles(at)
}

// checkCycles reports cycles that formed or ended.
func (w *watcher) checkCycles(at time.Time) {
	now := map[string][]string{}
	for _, c := range w.r.shownCycles(w.r.topology().cycles) {
		now[strings.Join(c, " ")] = c
	}
	report := func(kind string, c []string) {
		w.events++
		if w.r.json {
			w.print(&eventView{Time: at, Kind: kind, Cycle: c})
		} else {
			w.printText(at, kind, cycleText(c), "", "")
		}
	}
	for _, k := range sortedKeys(now) {
		if _, ok := w.cycles[k]; !ok {
			report(kindCycle, now[k])
		}
	}
	for _, k := range sortedKeys(w.cycles) {
		if _, ok := now[k]; !ok {
			report(kindCycleBroken, w.cycles[k])
		}
	}
	w.cycles = now
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// eventDetail is the last column of an event line: the reason a member
// left, what a new member announces.
func eventDetail(ev heartbeat.Event) string {
	m := ev.Member
	switch ev.Kind {
	case heartbeat.Left:
		return ev.Reason
	case heartbeat.Joined, heartbeat.Restarted:
		var d []string
		if ev.Kind == heartbeat.Restarted {
			d = append(d, fmt.Sprintf("incarnation=%d", m.Incarnation))
		}
		if s := subsText(m.Beat.Subs); s != "" {
			d = append(d, "subs="+strings.ReplaceAll(s, ", ", ","))
		}
		if len(m.Beat.Methods) > 0 {
			d = append(d, "methods="+strings.Join(m.Beat.Methods, ","))
		}
		if len(m.Beat.Depends) > 0 {
			d = append(d, "depends="+strings.Join(m.Beat.Depends, ","))
		}
		return strings.Join(d, "  ")
	}
	return ev.Reason
}

// printText writes an event line:
//
//	07:00:38.834  joined        beta/2           beta-2           depends=alpha
//	07:00:38.834  cycle         alpha → beta → alpha
//	07:00:39.336  left          beta/2           beta-2           quit: meshbot: closing
//	07:00:39.336  cycle-broken  alpha → beta → alpha
func (w *watcher) printText(at time.Time, kind, who, nick, detail string) {
	var b strings.Builder
	b.WriteString(at.Local().Format("15:04:05.000"))
	b.WriteString("  ")
	pad(&b, kind, 13)
	if nick == "" && detail == "" {
		b.WriteString(who)
	} else {
		pad(&b, who, 16)
		pad(&b, nick, 16)
		b.WriteString(detail)
	}
	fmt.Fprintln(w.r.w, strings.TrimRight(b.String(), " "))
}

func (w *watcher) print(v *eventView) {
	v.Time = v.Time.UTC()
	b, err := json.Marshal(v)
	if err != nil {
		w.r.st.log.Error("encoding event", "err", err)
		return
	}
	fmt.Fprintln(w.r.w, string(b))
}

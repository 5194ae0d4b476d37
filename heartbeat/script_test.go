package heartbeat

// Script tests: scenarios for the View written as small text files under
// testdata/scripts/*.txt and replayed by TestScripts, in the manner of
// etcd's raft interaction tests. testdata/scripts/README.md is the short
// guide for writers and reviewers; this comment is the reference.
//
// A script is a sequence of commands, one per line. After a command that
// produces output comes a line holding exactly "----" and the expected
// output, up to the next blank line or "#" line; a command with no output
// (only "at") has no "----" block. Lines starting with "#" are prose for
// the reader and blank lines separate blocks; both are kept as they are
// when the expected outputs are rewritten:
//
//	# a beats every second: suspect 2s after its last beat.
//	beat a s/a inc=1 seq=1
//	----
//	joined s/a inc=1
//	next 2s
//
//	at 2s
//	tick
//	----
//	suspected s/a inc=1
//	next 3s
//
// The commands:
//
//	config [interval=D] [suspect=F] [dead=F] [forget=D] [split-timeout=D]
//	    Starts a scenario: a new View with this Config (a missing key takes
//	    the default) and the clock back at the epoch. Prints the thresholds
//	    in force. Every scenario starts with config.
//	at T | at +D
//	    Sets the virtual clock to T after the epoch, or advances it by D
//	    (Go durations: 1.5s, 200ms, 0). The clock never goes back.
//	beat NICK SVC/INST [inc=N] [seq=N] [interval=D] [load=F] [subs=T[:G],...] [deps=SVC,...] [state=N]
//	    View.Heartbeat: NICK sends a beat of instance INST of service SVC
//	    (also written service=SVC instance=INST). Missing keys are zero,
//	    except interval (1s); interval=0 announces none. subs lists
//	    topic:group (anycast) or topic (multicast) subscriptions.
//	gone NICK ["REASON"]
//	    View.Gone: the server says NICK left (QUIT, PART, KICK). The reason
//	    is a Go quoted string, or the rest of the line as it is.
//	split NICK NEAR FAR
//	    View.SplitAway: NICK quit in a netsplit whose QUIT named NEAR FAR.
//	rejoin NICK
//	    View.Rejoined: NICK joined the heartbeat channel (a netjoin's burst).
//	rename FROM TO
//	    View.Renamed: FROM changed its nick to TO.
//	suspend | resume | tick
//	    View.Suspend, View.Resume(now), View.Tick(now).
//	members [SVC]
//	    View.Members(SVC): the live members, one per line, or "(none)".
//	all
//	    View.All: every member the view holds, the dead included.
//	pick SVC [key=K] [tiebreak=N] [skip=NICK,...]
//	    Chooses an instance of SVC as the mesh does for a request: among
//	    Members(SVC), skipping the listed nicks, Rendezvous(K) when a key is
//	    given, else LeastLoaded with the tiebreak. Prints "picked SVC/INST
//	    nick=NICK" or "none".
//	deps
//	    Dependencies over Members("") and its Cycles: one "SVC depends on
//	    DEP, ..." line per service ("nothing" when it announces none),
//	    sorted, then one "cycle A -> B -> A" line per cycle, or "no cycles".
//
// The output of beat, gone, split, rejoin, rename, suspend, resume and
// tick is the events the call returned, in the order returned:
//
//	joined|suspected|recovered|restarted SVC/INST inc=N [split="NEAR FAR" since=T]
//	left SVC/INST inc=N reason="..."
//	unreachable SVC/INST inc=N reason="NEAR FAR" split="NEAR FAR" since=T
//
// then "next T": View.Next() after the call ("none" for the zero time). A
// member prints as
//
//	SVC/INST inc=N STATE nick=NICK since=T last=T seq=N interval=D [load=F] [subs=...] [deps=...] [state=N] [departed] [split="NEAR FAR" since=T fence=T]
//
// with since and last the member's Since and LastBeat, the fields of its
// last beat written as the beat command takes them, then departed for a
// member the server said left, and an unreachable member's split and
// fence. All times are
// durations after the epoch. Outputs are printed in the order the view
// returns them, so a sorting bug is a difference.
//
// Besides the outputs, after every command the harness checks that the
// view's nick index is consistent (checkNickTable) and that every event
// carries the member exactly as the view now holds it. Each script runs
// several times on fresh views, and its outputs must be the same every
// time (map order varies between runs).
//
// go test ./heartbeat -run TestScripts -rewrite replaces every expected
// output with the actual one; review the diff before committing it.

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var flagRewrite = flag.Bool("rewrite", false, "TestScripts: rewrite the expected outputs in testdata/scripts from the actual ones")

const (
	scriptDir = "testdata/scripts"
	// scriptRuns is how many times each script runs; its outputs must
	// agree every time.
	scriptRuns = 5
	scriptSep  = "----"
)

func TestScripts(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(scriptDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no scripts in %s", scriptDir)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := replayScript(path, string(src))
			if err != nil {
				t.Fatal(err)
			}
			if *flagRewrite {
				if res.rewritten != string(src) {
					if err := os.WriteFile(path, []byte(res.rewritten), 0o644); err != nil {
						t.Fatal(err)
					}
					t.Logf("rewrote %s", path)
				}
				return
			}
			for _, m := range res.mismatches {
				t.Error(m)
			}
			if len(res.mismatches) > 0 {
				t.Logf("if the new outputs are right: go test ./heartbeat -run TestScripts -rewrite, then review the diff")
			}
		})
	}
}

// scriptItem is one line of a script: prose (a comment or a blank line),
// or a command with its expected output.
type scriptItem struct {
	text string
	line int // 1-based
	cmd  bool
	want []string
}

func isProse(l string) bool {
	l = strings.TrimSpace(l)
	return l == "" || strings.HasPrefix(l, "#")
}

func parseScript(path, src string) ([]scriptItem, error) {
	lines := strings.Split(src, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var items []scriptItem
	for i := 0; i < len(lines); {
		l := lines[i]
		switch {
		case isProse(l):
			items = append(items, scriptItem{text: l, line: i + 1})
			i++
		case strings.TrimSpace(l) == scriptSep:
			return nil, fmt.Errorf("%s:%d: %q with no command before it", path, i+1, scriptSep)
		default:
			it := scriptItem{text: l, line: i + 1, cmd: true}
			i++
			if i < len(lines) && strings.TrimSpace(lines[i]) == scriptSep {
				for i++; i < len(lines) && !isProse(lines[i]); i++ {
					it.want = append(it.want, lines[i])
				}
			}
			items = append(items, it)
		}
	}
	return items, nil
}

// scriptResult is what replaying a script found.
type scriptResult struct {
	// rewritten is the script with every expected output replaced by the
	// actual one.
	rewritten string
	// mismatches describe, one per command, the outputs that differ.
	mismatches []string
}

// replayScript runs the script at path (whose text is src) scriptRuns
// times. An error is a broken script, an output that changes from run to
// run, or a view that breaks an invariant.
func replayScript(path, src string) (scriptResult, error) {
	items, err := parseScript(path, src)
	if err != nil {
		return scriptResult{}, err
	}
	var got [][]string
	for run := range scriptRuns {
		g, err := runScript(path, items)
		if err != nil {
			return scriptResult{}, err
		}
		if run == 0 {
			got = g
			continue
		}
		for i := range items {
			if !slices.Equal(g[i], got[i]) {
				return scriptResult{}, fmt.Errorf("%s:%d: %s\nthe output differs between runs:\n%s",
					path, items[i].line, items[i].text, lineDiff(got[i], g[i]))
			}
		}
	}
	var res scriptResult
	var b strings.Builder
	for i, it := range items {
		b.WriteString(it.text + "\n")
		if !it.cmd {
			continue
		}
		if !slices.Equal(it.want, got[i]) {
			res.mismatches = append(res.mismatches, fmt.Sprintf("%s:%d: %s\nexpected (-) and got (+):\n%s",
				path, it.line, strings.TrimSpace(it.text), lineDiff(it.want, got[i])))
		}
		if len(got[i]) == 0 {
			continue
		}
		b.WriteString(scriptSep + "\n")
		for _, l := range got[i] {
			b.WriteString(l + "\n")
		}
		if i+1 < len(items) && strings.TrimSpace(items[i+1].text) != "" {
			b.WriteString("\n") // a blank line ends the output
		}
	}
	res.rewritten = b.String()
	return res, nil
}

// runScript runs the commands of a script on fresh views and returns each
// item's output (nil for prose).
func runScript(path string, items []scriptItem) ([][]string, error) {
	r := &scriptRunner{}
	out := make([][]string, len(items))
	for i, it := range items {
		if !it.cmd {
			continue
		}
		o, err := r.exec(strings.TrimSpace(it.text))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", path, it.line, strings.TrimSpace(it.text), err)
		}
		out[i] = o
	}
	return out, nil
}

// scriptRunner holds the view and the virtual clock of a running script.
type scriptRunner struct {
	v   *View
	now time.Duration // since t0
}

func (r *scriptRunner) exec(line string) ([]string, error) {
	name, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	args := strings.Fields(rest)
	if name == "config" {
		return r.config(args)
	}
	if r.v == nil {
		return nil, errors.New("no scenario: start it with config")
	}
	now := t0.Add(r.now)
	var evs []Event
	switch name {
	case "at":
		return nil, r.at(args)
	case "beat":
		b, nick, err := scriptBeat(args)
		if err != nil {
			return nil, err
		}
		evs = r.v.Heartbeat(nick, b, now)
	case "gone":
		if len(args) == 0 {
			return nil, errors.New("usage: gone NICK [\"REASON\"]")
		}
		reason := strings.TrimSpace(strings.TrimPrefix(rest, args[0]))
		if strings.HasPrefix(reason, `"`) {
			var err error
			if reason, err = strconv.Unquote(reason); err != nil {
				return nil, fmt.Errorf("reason: %w", err)
			}
		}
		evs = r.v.Gone(args[0], reason, now)
	case "split":
		if len(args) != 3 {
			return nil, errors.New("usage: split NICK NEAR FAR")
		}
		evs = r.v.SplitAway(args[0], args[1], args[2], now)
	case "rejoin":
		if len(args) != 1 {
			return nil, errors.New("usage: rejoin NICK")
		}
		evs = r.v.Rejoined(args[0], now)
	case "rename":
		if len(args) != 2 {
			return nil, errors.New("usage: rename FROM TO")
		}
		r.v.Renamed(args[0], args[1])
	case "suspend", "resume", "tick":
		if len(args) != 0 {
			return nil, fmt.Errorf("%s takes no arguments", name)
		}
		switch name {
		case "suspend":
			r.v.Suspend()
		case "resume":
			r.v.Resume(now)
		default:
			evs = r.v.Tick(now)
		}
	case "members":
		if len(args) > 1 {
			return nil, errors.New("usage: members [SVC]")
		}
		return scriptMembers(r.v.Members(strings.Join(args, ""))), nil
	case "all":
		if len(args) != 0 {
			return nil, errors.New("all takes no arguments")
		}
		return scriptMembers(r.v.All()), nil
	case "pick":
		return r.pick(args)
	case "deps":
		if len(args) != 0 {
			return nil, errors.New("deps takes no arguments")
		}
		return scriptDeps(r.v.Members("")), nil
	default:
		return nil, fmt.Errorf("unknown command %q", name)
	}
	if err := r.check(evs); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range evs {
		out = append(out, scriptEvent(e))
	}
	return append(out, "next "+scriptTime(r.v.Next())), nil
}

// check holds the view to what every command must leave true.
func (r *scriptRunner) check(evs []Event) error {
	if _, err := nickTableErr(r.v); err != nil {
		return fmt.Errorf("nick index: %w", err)
	}
	for _, e := range evs {
		m := r.v.members[key{e.Member.Service, e.Member.Instance}]
		if m == nil || !reflect.DeepEqual(*m, e.Member) {
			return fmt.Errorf("event %q does not carry the member as the view holds it:\nevent %+v\nview  %+v", scriptEvent(e), e.Member, m)
		}
	}
	return nil
}

func (r *scriptRunner) config(args []string) ([]string, error) {
	kv, err := scriptArgs(args, 0, "interval", "suspect", "dead", "forget", "split-timeout")
	if err != nil {
		return nil, err
	}
	var c Config
	if c.Interval, err = kv.duration("interval", 0); err != nil {
		return nil, err
	}
	if c.SuspectAfter, err = kv.float("suspect", 64); err != nil {
		return nil, err
	}
	if c.DeadAfter, err = kv.float("dead", 64); err != nil {
		return nil, err
	}
	if c.Forget, err = kv.duration("forget", 0); err != nil {
		return nil, err
	}
	if c.SplitTimeout, err = kv.duration("split-timeout", 0); err != nil {
		return nil, err
	}
	r.v, r.now = New(c), 0
	c = r.v.cfg
	return []string{fmt.Sprintf("interval=%v suspect=%v dead=%v forget=%v split-timeout=%v",
		c.Interval, c.SuspectAfter, c.DeadAfter, c.Forget, c.SplitTimeout)}, nil
}

func (r *scriptRunner) at(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: at T | at +D")
	}
	rel := strings.HasPrefix(args[0], "+")
	d, err := time.ParseDuration(strings.TrimPrefix(args[0], "+"))
	if err != nil {
		return err
	}
	if rel {
		d += r.now
	}
	if d < r.now {
		return fmt.Errorf("the clock is at %v and never goes back", r.now)
	}
	r.now = d
	return nil
}

func (r *scriptRunner) pick(args []string) ([]string, error) {
	kv, err := scriptArgs(args, 1, "key", "tiebreak", "skip")
	if err != nil || len(kv.pos) != 1 {
		return nil, errors.Join(errors.New("usage: pick SVC [key=K] [tiebreak=N] [skip=NICK,...]"), err)
	}
	tiebreak, err := kv.uint("tiebreak", 64)
	if err != nil {
		return nil, err
	}
	skipped := map[string]bool{}
	for _, n := range kv.list("skip") {
		skipped[strings.ToLower(n)] = true
	}
	skip := func(m Member) bool { return skipped[strings.ToLower(m.Nick)] }
	ms := r.v.Members(kv.pos[0])
	var m Member
	var ok bool
	if k, has := kv.m["key"]; has {
		m, ok = Rendezvous(k, ms, skip)
	} else {
		m, ok = LeastLoaded(ms, skip, tiebreak)
	}
	if !ok {
		return []string{"none"}, nil
	}
	return []string{fmt.Sprintf("picked %s/%s nick=%s", m.Service, m.Instance, m.Nick)}, nil
}

// scriptBeat parses the arguments of a beat command.
func scriptBeat(args []string) (*Beat, string, error) {
	kv, err := scriptArgs(args, 2, "service", "instance", "inc", "seq", "interval", "load", "subs", "deps", "state")
	if err != nil {
		return nil, "", err
	}
	b := &Beat{Service: kv.m["service"], Instance: kv.m["instance"]}
	switch len(kv.pos) {
	case 2:
		var ok bool
		if b.Service, b.Instance, ok = strings.Cut(kv.pos[1], "/"); !ok || b.Service == "" || b.Instance == "" || kv.m["service"] != "" || kv.m["instance"] != "" {
			return nil, "", fmt.Errorf("%q: want SVC/INST, or service= and instance=", kv.pos[1])
		}
	case 1:
		if b.Service == "" || b.Instance == "" {
			return nil, "", errors.New("no instance: SVC/INST, or service= and instance=")
		}
	default:
		return nil, "", errors.New("usage: beat NICK SVC/INST [key=value...]")
	}
	if b.Incarnation, err = kv.uint("inc", 64); err != nil {
		return nil, "", err
	}
	if b.Seq, err = kv.uint("seq", 64); err != nil {
		return nil, "", err
	}
	if b.StateVersion, err = kv.uint("state", 64); err != nil {
		return nil, "", err
	}
	iv, err := kv.duration("interval", time.Second)
	if err != nil {
		return nil, "", err
	}
	if iv < 0 || iv%time.Millisecond != 0 || iv/time.Millisecond > 1<<32-1 {
		return nil, "", fmt.Errorf("interval %v: not a whole number of milliseconds that fits the wire", iv)
	}
	b.IntervalMillis = uint32(iv / time.Millisecond)
	load, err := kv.float("load", 32)
	if err != nil {
		return nil, "", err
	}
	b.Load = float32(load)
	for _, s := range kv.list("subs") {
		topic, group, _ := strings.Cut(s, ":")
		b.Subs = append(b.Subs, Sub{Topic: topic, Group: group})
	}
	b.Depends = kv.list("deps")
	return b, kv.pos[0], nil
}

// scriptKV holds a command's arguments: positional ones, then key=value.
type scriptKV struct {
	pos []string
	m   map[string]string
}

// scriptArgs splits args into at most maxPos positional arguments and
// key=value pairs with the allowed keys, each at most once.
func scriptArgs(args []string, maxPos int, allowed ...string) (scriptKV, error) {
	kv := scriptKV{m: map[string]string{}}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case !ok:
			if len(kv.m) > 0 || len(kv.pos) == maxPos {
				return kv, fmt.Errorf("unexpected argument %q", a)
			}
			kv.pos = append(kv.pos, a)
		case !slices.Contains(allowed, k):
			return kv, fmt.Errorf("unknown key %q (want one of %s)", k, strings.Join(allowed, ", "))
		default:
			if _, dup := kv.m[k]; dup {
				return kv, fmt.Errorf("%s given twice", k)
			}
			kv.m[k] = v
		}
	}
	return kv, nil
}

func (kv scriptKV) uint(k string, bits int) (uint64, error) {
	s, ok := kv.m[k]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", k, err)
	}
	return n, nil
}

func (kv scriptKV) float(k string, bits int) (float64, error) {
	s, ok := kv.m[k]
	if !ok {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", k, err)
	}
	return f, nil
}

func (kv scriptKV) duration(k string, def time.Duration) (time.Duration, error) {
	s, ok := kv.m[k]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", k, err)
	}
	return d, nil
}

func (kv scriptKV) list(k string) []string {
	if s := kv.m[k]; s != "" {
		return strings.Split(s, ",")
	}
	return nil
}

// scriptTime writes t as a duration after the epoch; "none" for the zero
// time.
func scriptTime(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Sub(t0).String()
}

func scriptEvent(e Event) string {
	s := fmt.Sprintf("%s %s/%s inc=%d", e.Kind, e.Member.Service, e.Member.Instance, e.Member.Incarnation)
	if e.Kind == Left || e.Reason != "" {
		s += " reason=" + strconv.Quote(e.Reason)
	}
	if !e.Split.IsZero() {
		s += fmt.Sprintf(" split=%q since=%s", e.Split.Near+" "+e.Split.Far, scriptTime(e.Split.Since))
	}
	return s
}

func scriptMembers(ms []Member) []string {
	if len(ms) == 0 {
		return []string{"(none)"}
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		b := m.Beat
		s := fmt.Sprintf("%s/%s inc=%d %s nick=%s since=%s last=%s seq=%d interval=%v",
			m.Service, m.Instance, m.Incarnation, m.State, m.Nick, scriptTime(m.Since), scriptTime(m.LastBeat), b.Seq, b.Interval())
		if b.Load != 0 {
			s += " load=" + strconv.FormatFloat(float64(b.Load), 'g', -1, 32)
		}
		if len(b.Subs) > 0 {
			var subs []string
			for _, sub := range b.Subs {
				subs = append(subs, strings.TrimSuffix(sub.Topic+":"+sub.Group, ":"))
			}
			s += " subs=" + strings.Join(subs, ",")
		}
		if len(b.Depends) > 0 {
			s += " deps=" + strings.Join(b.Depends, ",")
		}
		if b.StateVersion != 0 {
			s += fmt.Sprintf(" state=%d", b.StateVersion)
		}
		if m.Departed {
			s += " departed"
		}
		if !m.Split.IsZero() || !m.Fence.IsZero() {
			s += fmt.Sprintf(" split=%q since=%s fence=%s", m.Split.Near+" "+m.Split.Far, scriptTime(m.Split.Since), scriptTime(m.Fence))
		}
		out = append(out, s)
	}
	return out
}

func scriptDeps(ms []Member) []string {
	g := Dependencies(ms)
	var out []string
	for _, s := range slices.Sorted(maps.Keys(g)) {
		deps := strings.Join(g[s], ", ")
		if deps == "" {
			deps = "nothing"
		}
		out = append(out, s+" depends on "+deps)
	}
	cycles := Cycles(g)
	for _, c := range cycles {
		out = append(out, "cycle "+strings.Join(append(slices.Clone(c), c[0]), " -> "))
	}
	if len(cycles) == 0 {
		out = append(out, "no cycles")
	}
	return out
}

// lineDiff shows how got differs from want, line by line: "-" for a line
// only expected, "+" for a line only got, " " for a line in both.
func lineDiff(want, got []string) string {
	// lcs[i][j] is the longest common subsequence of want[i:] and got[j:].
	lcs := make([][]int, len(want)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(got)+1)
	}
	for i := len(want) - 1; i >= 0; i-- {
		for j := len(got) - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case i < len(want) && j < len(got) && want[i] == got[j]:
			b.WriteString("    " + want[i] + "\n")
			i, j = i+1, j+1
		case j == len(got) || i < len(want) && lcs[i+1][j] >= lcs[i][j+1]:
			b.WriteString("  - " + want[i] + "\n")
			i++
		default:
			b.WriteString("  + " + got[j] + "\n")
			j++
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// TestScriptHarness checks the harness on scripts of its own: a wrong or
// missing output is reported at its command's line with a diff, -rewrite
// puts in the actual outputs and keeps the prose, and a broken script is an
// error that names its line.
func TestScriptHarness(t *testing.T) {
	src := `# a comment
config
----
interval=1s suspect=2 dead=3 forget=30s split-timeout=1m0s

beat a s/a inc=1 seq=1
----
joined s/a inc=9
next 2s

at 2s
tick
members
----
s/a inc=1 alive
# prose right after an output ends it
all
----
s/a inc=1 suspect nick=a since=2s last=0s seq=1 interval=1s
`
	want := `# a comment
config
----
interval=1s suspect=2 dead=3 forget=30s split-timeout=1m0s

beat a s/a inc=1 seq=1
----
joined s/a inc=1
next 2s

at 2s
tick
----
suspected s/a inc=1
next 3s

members
----
s/a inc=1 suspect nick=a since=2s last=0s seq=1 interval=1s

# prose right after an output ends it
all
----
s/a inc=1 suspect nick=a since=2s last=0s seq=1 interval=1s
`
	res, err := replayScript("x.txt", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.mismatches) != 3 {
		t.Fatalf("%d mismatches, want 3 (beat, tick, members):\n%s", len(res.mismatches), strings.Join(res.mismatches, "\n"))
	}
	for i, w := range []string{
		"x.txt:6: beat a s/a inc=1 seq=1\nexpected (-) and got (+):\n  - joined s/a inc=9\n  + joined s/a inc=1\n    next 2s",
		"x.txt:12: tick\nexpected (-) and got (+):\n  + suspected s/a inc=1\n  + next 3s",
		"x.txt:13: members\nexpected (-) and got (+):\n  - s/a inc=1 alive\n  + s/a inc=1 suspect",
	} {
		if !strings.HasPrefix(res.mismatches[i], w) {
			t.Errorf("mismatch %d:\n%s\nwant it to start with\n%s", i, res.mismatches[i], w)
		}
	}
	if res.rewritten != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", res.rewritten, want)
	}
	again, err := replayScript("x.txt", res.rewritten)
	if err != nil || len(again.mismatches) != 0 || again.rewritten != res.rewritten {
		t.Errorf("the rewritten script does not replay cleanly: %v %q", err, again.mismatches)
	}

	for _, c := range []struct{ src, err string }{
		{"config\nfrobnicate\n", `x.txt:2: frobnicate: unknown command "frobnicate"`},
		{"tick\n", "x.txt:1: tick: no scenario: start it with config"},
		{"config\nat 2s\nat 1s\n", "x.txt:3: at 1s: the clock is at 2s and never goes back"},
		{"# x\n----\n", `x.txt:2: "----" with no command before it`},
		{"config\nbeat a s/a inc=x\n", "x.txt:2: beat a s/a inc=x: inc: "},
		{"config\nbeat a s/a color=red\n", `x.txt:2: beat a s/a color=red: unknown key "color"`},
		{"config\nbeat a sa\n", `x.txt:2: beat a sa: "sa": want SVC/INST`},
		{"config\ngone a \"open\n", "x.txt:2: gone a \"open: reason: "},
	} {
		if _, err := replayScript("x.txt", c.src); err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("script %q: error %v, want one starting %q", c.src, err, c.err)
		}
	}
}

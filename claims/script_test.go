package claims_test

// Script tests: scenarios for claims.Group — the anycast protocol of one
// member — written as small text files under testdata/scripts/*.txt and
// replayed by TestScripts, in the manner of etcd's raft interaction tests
// (and of heartbeat/script_test.go, whose conventions these follow).
// testdata/scripts/README.md is the short guide; this comment is the
// reference.
//
// A script is a sequence of commands, one per line. After a command that
// produces output comes a line holding exactly "----" and the expected
// output, up to the next blank line or "#" line; a command with no output
// has no "----" block. Lines starting with "#" are prose for the reader and
// blank lines separate blocks; both are kept as they are when the expected
// outputs are rewritten.
//
// A scenario has replicas — members whose Group runs and whose decisions
// are printed, named a, b, c... (member svc/a...) — and lines that arrive
// in the topic's channel: events from a publisher, lines other members
// sent (written by hand), and what the replicas sent (deliver). Every line
// the channel carries gets an offset: the clock's time and a msgid, which
// is the event's name for an event's line and l1, l2... for the others.
// Offsets print as TIME/MSGID ("1.5s/e3"); a command takes an event's name
// for its line's offset, or TIME/MSGID.
//
// The commands:
//
//	config [lease=D] [settle=D] [claim-timeout=D] [skew=D] [max-attempts=N] [retain=D] [max-events=N] [max-in-flight=N] [rejoin=D]
//	    Starts a scenario: no replicas, the clock at 0. Every replica
//	    takes these (a missing key is the test timing: lease=10s
//	    settle=20ms claim-timeout=1s skew=200ms, else the default).
//	    Prints the configuration in force.
//	replica NAME [inc=N] [not-ready] [passive] [KEY=VALUE of config...]
//	    A Group for member svc/NAME (incarnation 1 unless given), fed the
//	    current view, a session that never ends and SetReady(true) unless
//	    not-ready.
//	view [NAME[:INC][=STATE]...]
//	    The heartbeat view every replica takes (Group.Members): the
//	    members of the group, alive unless the state says otherwise,
//	    incarnation 1 unless given. States: suspect; dead (the server said
//	    it left: departed); silent (dead by silence, not departed);
//	    unreachable (lost in a netsplit), with its fence now or, as
//	    unreachable+D, D from now.
//	at T | at +D
//	    Sets the clock to T after the epoch, or advances it by D.
//	event E [key=K] [to=A,B]
//	    The publisher's event E arrives (its id is fixed by its name).
//	claim NAME E@EPOCH[/ATTEMPT]... [lease=D] [inc=N] [group=G] [to=A,B]
//	ack NAME E@EPOCH... [inc=N] [to=A,B]
//	nack NAME E@EPOCH [retry=D] [reason="..."] [inc=N] [to=A,B]
//	release NAME E@EPOCH [inc=N] [to=A,B]
//	dead NAME E@EPOCH [attempts=N] [reasons="..."] [inc=N] [to=A,B]
//	    A line of member svc/NAME arrives: a CLAIM or ACK with these items
//	    (the attempt defaults to the epoch's for a claim, 0 for an ack), a
//	    NACK (code 0; release: code 1), a DEAD marker; of the group svc,
//	    or of group G.
//	hclaim NAME OFF [committed=OFF] [inc=N] [to=A,B]
//	hack NAME CLAIM OFF [inc=N] [to=A,B] | hrej NAME CLAIM OFF ...
//	    A HistoryClaim of svc/NAME, printed as a name (h1, h2...) that
//	    votes refer to; a vote on it.
//	junk NAME KIND [to=A,B]
//	    A line of the group of kind KIND (claim, ack, nack, dead, hclaim,
//	    hack) whose payload or fields do not decode.
//	deliver [NAME...]
//	    What the replicas (those named, else all) sent and no line carried
//	    yet arrives, in the order sent, at every replica.
//	done NAME E@EPOCH [err="..."] [retry=D]
//	    Group.Done: the replica's handler returned (err: it failed).
//	tick | commit | reset | release-all | replayed  [NAME...]
//	    Group.Tick, Commit, Reset, ReleaseAll, Replayed on the replicas
//	    named, else on all.
//	ready NAME true|false
//	session NAME T
//	    Group.SetReady; Group.Session (until T after the epoch).
//	resume NAME [committed=OFF]
//	replay NAME LINE...
//	    Group.Resume; Group.Replay of earlier lines, by number (l3) or
//	    event name, as the record holds them.
//	status NAME [E...]
//	    The replica's tracked events (Group.Snapshot), or those given:
//	    E STATE epoch=N attempts=N [owner=ID] [until=T] [mine] [running]
//	    [unseen] [reasons="..."]; "(none)" when it tracks none.
//	stats NAME
//	    Group.Stats, the counters that are not zero.
//	committed | next  [NAME...]
//	    Group.Committed; Group.Next.
//	owners E [key=K]
//	    The members of the view not known gone (alive, suspect,
//	    unreachable, silent: not dead) ranked by rendezvous weight of E's
//	    id (or the key), highest first, each not alive marked with its
//	    state: the owner of epoch e is at rank (e-1) mod n, and one that is
//	    not alive passes its epoch on at once. Computed here with the rule
//	    of docs/PROTOCOL.md §6.3, not with the package's code.
//
// After an input, every replica's outputs (Group.Ready) print, replica by
// replica in the order they were made, each line "NAME: ":
//
//	cancel E@EPOCH "reason" | start E@EPOCH attempt=N token=0x...
//	send claim E@EPOCH/ATTEMPT... lease=D | send ack E@EPOCH...
//	send nack E@EPOCH retry=D "reason" | send release E@EPOCH "reason"
//	send hclaim hN OFF committed=OFF | send hack|hrej hN OFF
//	dead-letter E attempts=N reasons="..." then send dead E@EPOCH attempts=N "reasons"
//	malformed KIND from NICK: error
//
// Each script runs several times, and its outputs must be the same every
// time. go test ./claims -run TestScripts -rewrite replaces every expected
// output with the actual one; review the diff before committing it.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	scriptDir  = "testdata/scripts"
	scriptRuns = 3
	scriptSep  = "----"
	scriptSvc  = "svc"
	scriptTop  = "jobs"
	scriptGrp  = "svc"
)

var scriptT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

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
				t.Logf("if the new outputs are right: go test ./claims -run TestScripts -rewrite, then review the diff")
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

type scriptResult struct {
	rewritten  string
	mismatches []string
}

// replayScript runs the script scriptRuns times. An error is a broken
// script, or an output that changes from run to run.
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
lease=10s settle=20ms claim-timeout=1s skew=200ms max-attempts=5 retain=2m0s max-events=100000 max-in-flight=0 rejoin=1s

view a
replica a
event e1
----
a: send claim e1@2/1 lease=10s
# prose right after an output ends it
status a
`
	want := `# a comment
config
----
lease=10s settle=20ms claim-timeout=1s skew=200ms max-attempts=5 retain=2m0s max-events=100000 max-in-flight=0 rejoin=1s

view a
replica a
event e1
----
a: send claim e1@1/1 lease=10s

# prose right after an output ends it
status a
----
e1 pending epoch=1 attempts=0 mine
`
	res, err := replayScript("x.txt", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.mismatches) != 2 {
		t.Fatalf("%d mismatches, want 2 (event, status):\n%s", len(res.mismatches), strings.Join(res.mismatches, "\n"))
	}
	for i, w := range []string{
		"x.txt:8: event e1\nexpected (-) and got (+):\n  - a: send claim e1@2/1 lease=10s\n  + a: send claim e1@1/1 lease=10s",
		"x.txt:12: status a\nexpected (-) and got (+):\n  + e1 pending epoch=1 attempts=0 mine",
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
		{"config\nclaim b e1\n", `x.txt:2: claim b e1: "e1": want E@EPOCH`},
		{"config\nreplica a color=red\n", `x.txt:2: replica a color=red: unknown key "color"`},
		{"config\ntick z\n", `x.txt:2: tick z: no replica "z"`},
		{"config\nhack b h9 1s/x\n", `x.txt:2: hack b h9 1s/x: no HistoryClaim "h9"`},
		{"config\nnack b e1@1 reason=\"open\n", "x.txt:2: nack b e1@1 reason=\"open: quoted value: "},
	} {
		if _, err := replayScript("x.txt", c.src); err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("script %q: error %v, want one starting %q", c.src, err, c.err)
		}
	}
}

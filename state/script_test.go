package state

// Script tests: scenarios for replicas written as small text files under
// testdata/scripts/*.txt and replayed by TestScripts, in the manner of
// etcd's raft interaction tests and heartbeat's scripts (same format,
// same -rewrite flag). testdata/scripts/README.md is the short guide; this
// comment is the reference.
//
// A script is a sequence of commands, one per line. After a command that
// produces output comes a line holding exactly "----" and the expected
// output, up to the next blank line or "#" line. "#" lines are prose and
// blank lines separate blocks; both are kept when outputs are rewritten.
//
// The commands:
//
//	config domain=D [settle=D]
//	    Starts a scenario: no replicas, the clock at the epoch, update
//	    names from u1. Prints the domain and its owner.
//	replica NAME SVC/INST
//	    A new, empty replica NAME held by instance INST of service SVC.
//	at T | at +D
//	    Sets the virtual clock (it never goes back).
//	put NAME KEY=VALUE [if=N|absent]
//	del NAME KEY [if=N|absent]
//	replace NAME [KEY=VALUE ...]
//	    NAME writes (Put, Delete, Replace). The update gets the next name
//	    (u1, u2, ...) and is printed, or the error is. Nothing is received:
//	    recv delivers updates, the writer's own included.
//	update writer=SVC/INST v=N [from=NICK] [put=KEY@KV=VALUE,...] [del=KEY@KV,...] [whole]
//	    An update made elsewhere, with the next name; printed.
//	recv NAME U...
//	    NAME receives the named updates in order. Prints the changes and
//	    outcomes, then "next T" when a compare-and-set waits to be judged.
//	tick NAME | loaded NAME | disconnected NAME
//	    Replica.Tick(now), SetLoaded, Disconnected; prints as recv.
//	members NAME [SVC/INST:STATE[:DOMAIN@V] ...]
//	    Replica.Members with these members (STATE alive, suspect or dead;
//	    DOMAIN@V: a copy announced at version V). Prints as recv.
//	get NAME KEY | keys NAME | dump NAME
//	    Reads: one key, the live keys, or everything the replica holds
//	    (version, flags, every key with its stamp, tombstones included).
//	page NAME [after=K] [until=K] [max=N] [have=U,...]
//	    ServePage: the updates (by name), last, end, then.
//	load NAME from=OTHER [max=N] [window=N]
//	    NAME loads OTHER's copy with a Loader, pages served by OTHER with
//	    a budget of N bytes, answered oldest request first. Prints each
//	    request and page, then the changes.
//	same NAME...
//	    Checks that the replicas hold the same keys, values and versions:
//	    prints "same vN keys=K" or the first difference.
//
// A change prints as
//
//	NAME: put KEY@KV="VALUE" by SVC/INST (was @KV="OLD") vA→vB [whole]
//	NAME: deleted KEY@KV by SVC/INST (was ...) vA→vB
//	NAME: available | unavailable | loaded vN
//
// and an outcome as "NAME: U ok vN", "NAME: U conflict: ERROR" or
// "NAME: U ERROR". Each script runs several times and must print the same.
//
// go test ./state -run TestScripts -rewrite replaces every expected output
// with the actual one; review the diff before committing it.

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

var flagRewrite = flag.Bool("rewrite", false, "TestScripts: rewrite the expected outputs in testdata/scripts from the actual ones")

const (
	scriptDir  = "testdata/scripts"
	scriptRuns = 3
	scriptSep  = "----"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

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
			rewritten, mismatches, err := replayScript(path, string(src))
			if err != nil {
				t.Fatal(err)
			}
			if *flagRewrite {
				if rewritten != string(src) {
					if err := os.WriteFile(path, []byte(rewritten), 0o644); err != nil {
						t.Fatal(err)
					}
					t.Logf("rewrote %s", path)
				}
				return
			}
			for _, m := range mismatches {
				t.Error(m)
			}
			if len(mismatches) > 0 {
				t.Logf("if the new outputs are right: go test ./state -run TestScripts -rewrite, then review the diff")
			}
		})
	}
}

type scriptItem struct {
	text string
	line int
	cmd  bool
	want []string
}

func isProse(l string) bool {
	l = strings.TrimSpace(l)
	return l == "" || strings.HasPrefix(l, "#")
}

func parseScript(path, src string) ([]scriptItem, error) {
	lines := strings.Split(strings.TrimSuffix(src, "\n"), "\n")
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

func replayScript(path, src string) (rewritten string, mismatches []string, err error) {
	items, err := parseScript(path, src)
	if err != nil {
		return "", nil, err
	}
	var got [][]string
	for run := range scriptRuns {
		g, err := runScript(path, items)
		if err != nil {
			return "", nil, err
		}
		if run == 0 {
			got = g
			continue
		}
		for i := range items {
			if !slices.Equal(g[i], got[i]) {
				return "", nil, fmt.Errorf("%s:%d: %s\nthe output differs between runs:\n%s", path, items[i].line, items[i].text, lineDiff(got[i], g[i]))
			}
		}
	}
	var b strings.Builder
	for i, it := range items {
		b.WriteString(it.text + "\n")
		if !it.cmd {
			continue
		}
		if !slices.Equal(it.want, got[i]) {
			mismatches = append(mismatches, fmt.Sprintf("%s:%d: %s\nexpected (-) and got (+):\n%s", path, it.line, strings.TrimSpace(it.text), lineDiff(it.want, got[i])))
		}
		if len(got[i]) == 0 {
			continue
		}
		b.WriteString(scriptSep + "\n")
		for _, l := range got[i] {
			b.WriteString(l + "\n")
		}
		if i+1 < len(items) && strings.TrimSpace(items[i+1].text) != "" {
			b.WriteString("\n")
		}
	}
	return b.String(), mismatches, nil
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

// lineDiff shows want and got line by line (- missing, + extra).
func lineDiff(want, got []string) string {
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

// scriptRunner holds the replicas, the updates and the clock of a script.
type scriptRunner struct {
	domain   string
	settle   time.Duration
	now      time.Duration
	replicas map[string]*Replica
	selves   map[string]envelope.Sender
	updates  map[string]*Update
	names    map[envelope.ID]string
	seq      int
}

func (r *scriptRunner) tnow() time.Time { return t0.Add(r.now) }

func (r *scriptRunner) newID() envelope.ID {
	r.seq++
	var id envelope.ID
	id[0] = byte(r.seq >> 8)
	id[1] = byte(r.seq)
	return id
}

// name returns the name of update id (the next uN when new).
func (r *scriptRunner) name(id envelope.ID) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	n := fmt.Sprintf("u%d", len(r.names)+1)
	r.names[id] = n
	return n
}

func (r *scriptRunner) exec(line string) ([]string, error) {
	name, rest, _ := strings.Cut(line, " ")
	args := strings.Fields(rest)
	if name == "config" {
		return r.config(args)
	}
	if r.replicas == nil {
		return nil, errors.New("no scenario: start it with config")
	}
	switch name {
	case "at":
		return nil, r.at(args)
	case "replica":
		if len(args) != 2 {
			return nil, errors.New("usage: replica NAME SVC/INST")
		}
		svc, inst, ok := strings.Cut(args[1], "/")
		if !ok {
			return nil, errors.New("usage: replica NAME SVC/INST")
		}
		self := envelope.Sender{Service: svc, Instance: inst, Incarnation: 1}
		rep, err := New(Config{Domain: r.domain, Self: self, Settle: r.settle, NewID: r.newID})
		if err != nil {
			return nil, err
		}
		r.replicas[args[0]], r.selves[args[0]] = rep, self
		return []string{fmt.Sprintf("%s: %s/%s, empty", args[0], svc, inst)}, nil
	case "update":
		return r.update(args)
	case "same":
		return r.same(args)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("usage: %s NAME ...", name)
	}
	rep := r.replicas[args[0]]
	if rep == nil {
		return nil, fmt.Errorf("no replica %q", args[0])
	}
	rname, args := args[0], args[1:]
	switch name {
	case "put", "del", "replace":
		return r.write(rname, rep, name, args)
	case "recv":
		for _, un := range args {
			u := r.updates[un]
			if u == nil {
				return nil, fmt.Errorf("no update %q", un)
			}
			if err := rep.Receive(u, r.tnow()); err != nil {
				return append(r.ready(rname, rep), fmt.Sprintf("%s: %s refused: %v", rname, un, err)), nil
			}
		}
	case "tick":
		rep.Tick(r.tnow())
	case "loaded":
		rep.SetLoaded()
	case "disconnected":
		rep.Disconnected()
	case "members":
		ms, err := scriptMembers(args)
		if err != nil {
			return nil, err
		}
		rep.Members(ms)
	case "get":
		if len(args) != 1 {
			return nil, errors.New("usage: get NAME KEY")
		}
		e, ok := rep.Get(args[0])
		if !ok {
			return []string{fmt.Sprintf("%s: no key %s (%s)", rname, args[0], entryText(rep.Lookup(args[0])))}, nil
		}
		return []string{rname + ": " + entryText(e)}, nil
	case "keys":
		keys := strings.Join(rep.Keys(), " ")
		if keys == "" {
			keys = "(none)"
		}
		return []string{fmt.Sprintf("%s: v%d %s", rname, rep.Version(), keys)}, nil
	case "dump":
		return r.dump(rname, rep), nil
	case "page":
		return r.page(rname, rep, args)
	case "load":
		return r.load(rname, rep, args)
	default:
		return nil, fmt.Errorf("unknown command %q", name)
	}
	return r.ready(rname, rep), nil
}

func (r *scriptRunner) config(args []string) ([]string, error) {
	kv, err := scriptArgs(args, "domain", "settle")
	if err != nil {
		return nil, err
	}
	r.domain = kv["domain"]
	if err := ValidDomain(r.domain); err != nil {
		return nil, err
	}
	r.settle = DefaultSettle
	if s, ok := kv["settle"]; ok {
		if r.settle, err = time.ParseDuration(s); err != nil {
			return nil, err
		}
	}
	r.now, r.seq = 0, 0
	r.replicas, r.selves = map[string]*Replica{}, map[string]envelope.Sender{}
	r.updates, r.names = map[string]*Update{}, map[envelope.ID]string{}
	return []string{fmt.Sprintf("domain %s owned by %s, settle %v", r.domain, Owner(r.domain), r.settle)}, nil
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

// scriptArgs reads key=value arguments (and bare flags, as "true").
func scriptArgs(args []string, keys ...string) (map[string]string, error) {
	kv := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			v = "true"
		}
		if !slices.Contains(keys, k) {
			return nil, fmt.Errorf("unknown argument %q (want %s)", a, strings.Join(keys, ", "))
		}
		kv[k] = v
	}
	return kv, nil
}

func scriptCond(s string) (Cond, error) {
	switch s {
	case "":
		return Cond{}, nil
	case "absent":
		return IfAbsent(), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return IfVersion(v), err
}

// write makes NAME write; the update is sealed and kept under its name.
func (r *scriptRunner) write(rname string, rep *Replica, cmd string, args []string) ([]string, error) {
	var (
		env *envelope.Envelope
		err error
	)
	switch cmd {
	case "put", "del":
		if len(args) == 0 {
			return nil, fmt.Errorf("usage: %s NAME KEY[=VALUE] [if=N|absent]", cmd)
		}
		var c Cond
		if len(args) > 1 {
			kv, err := scriptArgs(args[1:], "if")
			if err != nil {
				return nil, err
			}
			if c, err = scriptCond(kv["if"]); err != nil {
				return nil, err
			}
		}
		if cmd == "put" {
			k, v, ok := strings.Cut(args[0], "=")
			if !ok {
				return nil, errors.New("usage: put NAME KEY=VALUE [if=N|absent]")
			}
			env, err = rep.Put(k, []byte(v), c, r.tnow())
		} else {
			env, err = rep.Delete(args[0], c, r.tnow())
		}
	case "replace":
		vals := map[string][]byte{}
		for _, a := range args {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return nil, errors.New("usage: replace NAME [KEY=VALUE ...]")
			}
			vals[k] = []byte(v)
		}
		env, err = rep.Replace(vals, r.tnow())
	}
	out := r.ready(rname, rep)
	if err != nil {
		return append(out, fmt.Sprintf("%s: %v", rname, err)), nil
	}
	sealed, err := envelope.Marshal(env)
	if err != nil {
		return nil, err
	}
	self := r.selves[rname]
	u, err := DecodeUpdate(env, self.Service+"-"+self.Instance, self.Service, sealed)
	if err != nil {
		return nil, err
	}
	rep.Sent(u.ID, sealed)
	n := r.name(u.ID)
	r.updates[n] = u
	return append([]string{fmt.Sprintf("%s: %s", rname, r.updateText(n, u))}, out...), nil
}

// update defines an update made elsewhere.
func (r *scriptRunner) update(args []string) ([]string, error) {
	kv, err := scriptArgs(args, "writer", "v", "from", "put", "del", "whole")
	if err != nil {
		return nil, err
	}
	svc, inst, ok := strings.Cut(kv["writer"], "/")
	if !ok {
		return nil, errors.New("update needs writer=SVC/INST")
	}
	u := &Update{ID: r.newID(), Domain: r.domain, Writer: envelope.Sender{Service: svc, Instance: inst, Incarnation: 1},
		SentAt: r.tnow().UnixNano(), Whole: kv["whole"] == "true"}
	if u.Version, err = strconv.ParseUint(kv["v"], 10, 64); err != nil {
		return nil, fmt.Errorf("v: %w", err)
	}
	u.From = svc + "-" + inst
	if f, ok := kv["from"]; ok {
		u.From = f
	}
	u.FromService, _, _ = strings.Cut(u.From, "-")
	for _, p := range splitList(kv["put"]) {
		kkv, val, _ := strings.Cut(p, "=")
		k, ver, err := keyAt(kkv)
		if err != nil {
			return nil, err
		}
		u.Puts = append(u.Puts, KeyPut{Key: k, Version: ver, Value: []byte(val)})
	}
	for _, d := range splitList(kv["del"]) {
		k, ver, err := keyAt(d)
		if err != nil {
			return nil, err
		}
		u.Deletes = append(u.Deletes, KeyDelete{Key: k, Version: ver})
	}
	env, err := u.Envelope()
	if err != nil {
		return []string{fmt.Sprintf("invalid: %v", err)}, nil
	}
	if u.Sealed, err = envelope.Marshal(env); err != nil {
		return nil, err
	}
	n := r.name(u.ID)
	r.updates[n] = u
	return []string{r.updateText(n, u)}, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func keyAt(s string) (string, uint64, error) {
	k, v, ok := strings.Cut(s, "@")
	if !ok {
		return "", 0, fmt.Errorf("want KEY@VERSION, got %q", s)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return k, n, err
}

func (r *scriptRunner) updateText(name string, u *Update) string {
	parts := []string{fmt.Sprintf("%s v%d by %s/%s", name, u.Version, u.Writer.Service, u.Writer.Instance)}
	if u.From != u.Writer.Service+"-"+u.Writer.Instance {
		parts = append(parts, "from "+u.From)
	}
	for _, p := range u.Puts {
		parts = append(parts, fmt.Sprintf("put %s@%d=%q", p.Key, p.Version, p.Value))
	}
	for _, d := range u.Deletes {
		parts = append(parts, fmt.Sprintf("del %s@%d", d.Key, d.Version))
	}
	if u.Whole {
		parts = append(parts, "whole")
	}
	return strings.Join(parts, " ")
}

func scriptMembers(args []string) ([]heartbeat.Member, error) {
	var ms []heartbeat.Member
	for _, a := range args {
		f := strings.Split(a, ":")
		svc, inst, ok := strings.Cut(f[0], "/")
		if !ok || len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("member %q: want SVC/INST:STATE[:DOMAIN@V]", a)
		}
		m := heartbeat.Member{Service: svc, Instance: inst, Nick: svc + "-" + inst}
		switch f[1] {
		case "alive":
			m.State = heartbeat.Alive
		case "suspect":
			m.State = heartbeat.Suspect
		case "dead":
			m.State = heartbeat.Dead
		default:
			return nil, fmt.Errorf("member %q: state %q", a, f[1])
		}
		if len(f) == 3 {
			d, v, err := keyAt(f[2])
			if err != nil {
				return nil, err
			}
			m.Beat.Domains = []heartbeat.Domain{{Name: d, Version: v}}
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// ready prints what the replica gathered.
func (r *scriptRunner) ready(rname string, rep *Replica) []string {
	rd := rep.Ready()
	var out []string
	for _, c := range rd.Changes {
		out = append(out, rname+": "+changeText(c))
	}
	for _, o := range rd.Outcomes {
		n := r.name(o.ID)
		var ce *ConflictError
		switch {
		case o.Err == nil:
			out = append(out, fmt.Sprintf("%s: %s ok v%d", rname, n, o.Version))
		case errors.As(o.Err, &ce):
			out = append(out, fmt.Sprintf("%s: %s conflict: %v", rname, n, o.Err))
		default:
			out = append(out, fmt.Sprintf("%s: %s %v", rname, n, o.Err))
		}
	}
	if !rd.Next.IsZero() {
		out = append(out, fmt.Sprintf("%s: next %v", rname, rd.Next.Sub(t0)))
	}
	return out
}

func entryText(e Entry) string {
	switch {
	case e.Version == 0:
		return "never written"
	case e.Deleted:
		return fmt.Sprintf("%s@%d deleted by %s v%d", e.Key, e.Version, e.Writer, e.DomainVersion)
	}
	return fmt.Sprintf("%s@%d=%q by %s v%d", e.Key, e.Version, e.Value, e.Writer, e.DomainVersion)
}

func changeText(c Change) string {
	switch c.Kind {
	case Put, Deleted:
		was := "new"
		if c.Old.Version > 0 {
			was = fmt.Sprintf("was @%d=%q", c.Old.Version, c.Old.Value)
			if c.Old.Deleted {
				was = fmt.Sprintf("was deleted @%d", c.Old.Version)
			}
		}
		s := fmt.Sprintf("put %s@%d=%q", c.Key, c.New.Version, c.New.Value)
		if c.Kind == Deleted {
			s = fmt.Sprintf("deleted %s@%d", c.Key, c.New.Version)
		}
		s += fmt.Sprintf(" by %s (%s) v%d→v%d", c.New.Writer, was, c.OldVersion, c.NewVersion)
		if c.Whole {
			s += " whole"
		}
		return s
	case Loaded:
		return fmt.Sprintf("loaded v%d", c.NewVersion)
	}
	return c.Kind.String()
}

func (r *scriptRunner) dump(rname string, rep *Replica) []string {
	flags := []string{}
	if rep.Loaded() {
		flags = append(flags, "loaded")
	}
	if rep.Available() {
		flags = append(flags, "available")
	}
	if rep.Stale() {
		flags = append(flags, "stale")
	}
	if !rep.Current() {
		flags = append(flags, "not-current")
	}
	st := rep.Stats()
	out := []string{fmt.Sprintf("%s: v%d keys=%d tombstones=%d bytes=%d %s", rname, rep.Version(), st.Keys, st.Tombstones, st.Bytes, strings.Join(flags, " "))}
	for _, k := range rep.sorted() {
		e := rep.Lookup(k)
		out = append(out, fmt.Sprintf("  %s (%s)", entryText(e), r.name(e.ID)))
	}
	return out
}

func (r *scriptRunner) pageText(rname string, p *Page) []string {
	var ups []string
	for _, s := range p.Updates {
		env, err := envelope.Unmarshal(s.Envelope, 0)
		if err != nil {
			ups = append(ups, "?")
			continue
		}
		ups = append(ups, r.name(env.ID))
	}
	line := fmt.Sprintf("%s: page v%d keys=%d [%s] last=%q end=%v", rname, p.Version, p.Keys, strings.Join(ups, " "), p.Last, p.End)
	if len(p.Then) > 0 {
		line += fmt.Sprintf(" then=%q", p.Then)
	}
	return []string{line}
}

func (r *scriptRunner) page(rname string, rep *Replica, args []string) ([]string, error) {
	kv, err := scriptArgs(args, "after", "until", "max", "have")
	if err != nil {
		return nil, err
	}
	req := &PageRequest{Domain: r.domain, After: kv["after"], Until: kv["until"]}
	for _, n := range splitList(kv["have"]) {
		u := r.updates[n]
		if u == nil {
			return nil, fmt.Errorf("no update %q", n)
		}
		req.Have = append(req.Have, u.ID)
	}
	max, _ := strconv.Atoi(kv["max"])
	return r.pageText(rname, rep.ServePage(req, max)), nil
}

// load runs a Loader of rep against the copy of another replica.
func (r *scriptRunner) load(rname string, rep *Replica, args []string) ([]string, error) {
	kv, err := scriptArgs(args, "from", "max", "window")
	if err != nil {
		return nil, err
	}
	from := r.replicas[kv["from"]]
	if from == nil {
		return nil, fmt.Errorf("no replica %q", kv["from"])
	}
	max, _ := strconv.Atoi(kv["max"])
	window, _ := strconv.Atoi(kv["window"])
	l := NewLoader(rep, window)
	type asked struct {
		seq int
		req PageRequest
	}
	var queue []asked
	var out []string
	for steps := 0; !l.Done(); steps++ {
		if steps > 10000 {
			return nil, errors.New("the load does not end")
		}
		for _, rq := range l.Requests() {
			out = append(out, fmt.Sprintf("%s: ask #%d after=%q until=%q have=%d", rname, rq.Seq, rq.Request.After, rq.Request.Until, len(rq.Request.Have)))
			queue = append(queue, asked{rq.Seq, rq.Request})
		}
		if len(queue) == 0 {
			return nil, errors.New("the loader waits for nothing")
		}
		a := queue[0]
		queue = queue[1:]
		enc, err := EncodePageRequest(&a.req)
		if err != nil {
			return nil, err
		}
		req, err := DecodePageRequest(enc)
		if err != nil {
			return nil, err
		}
		p := from.ServePage(req, max)
		b, err := EncodePage(p)
		if err != nil {
			return nil, err
		}
		if p, err = DecodePage(b); err != nil {
			return nil, err
		}
		for _, l := range r.pageText(fmt.Sprintf("%s #%d", rname, a.seq), p) {
			out = append(out, l)
		}
		for _, s := range p.Updates {
			env, err := envelope.Unmarshal(s.Envelope, 0)
			if err != nil {
				return nil, err
			}
			svc, _, _ := strings.Cut(s.Nick, "-")
			u, err := DecodeUpdate(env, s.Nick, svc, s.Envelope)
			if err != nil {
				return nil, err
			}
			if err := rep.Receive(u, r.tnow()); err != nil {
				out = append(out, fmt.Sprintf("%s: %s refused: %v", rname, r.name(u.ID), err))
			}
		}
		if err := l.Page(a.seq, p); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", rname, err))
		}
	}
	rep.SetLoaded()
	out = append(out, r.ready(rname, rep)...)
	return out, nil
}

func (r *scriptRunner) same(args []string) ([]string, error) {
	if len(args) < 2 {
		return nil, errors.New("usage: same NAME NAME...")
	}
	first := r.replicas[args[0]]
	if first == nil {
		return nil, fmt.Errorf("no replica %q", args[0])
	}
	for _, n := range args[1:] {
		o := r.replicas[n]
		if o == nil {
			return nil, fmt.Errorf("no replica %q", n)
		}
		if d := diff(first, o); d != "" {
			return []string{fmt.Sprintf("%s and %s differ: %s", args[0], n, d)}, nil
		}
		if first.Digest() != o.Digest() {
			return []string{fmt.Sprintf("%s and %s hold the same but their digests differ", args[0], n)}, nil
		}
	}
	return []string{fmt.Sprintf("same v%d keys=%d", first.Version(), first.Stats().Keys)}, nil
}

package claims_test

// The commands of the script tests (script_test.go has the reference).

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// scriptReplica is a member whose Group runs in the scenario.
type scriptReplica struct {
	name   string
	g      *claims.Group
	outbox []*envelope.Envelope // sent, not delivered yet
}

// scriptLine is a line the channel carried, as every receiver got it.
type scriptLine struct {
	env *envelope.Envelope
	off envelope.Offset
	key string
}

type scriptRunner struct {
	started  bool
	cfg      claims.Config
	now      time.Duration
	replicas []*scriptReplica
	view     []heartbeat.Member
	lines    []scriptLine // by number, from 1
	ids      uint64
	names    map[envelope.ID]string // event and HistoryClaim names
	events   map[string]envelope.ID
	offsets  map[string]envelope.Offset // event name -> its line's offset
	hclaims  int
}

func (r *scriptRunner) at() time.Time { return scriptT0.Add(r.now) }

func (r *scriptRunner) exec(line string) ([]string, error) {
	args, err := scriptFields(line)
	if err != nil {
		return nil, err
	}
	name, args := args[0], args[1:]
	if name == "config" {
		return r.config(args)
	}
	if !r.started {
		return nil, errors.New("no scenario: start it with config")
	}
	switch name {
	case "at":
		return nil, r.setClock(args)
	case "replica":
		return r.replica(args)
	case "view":
		return r.setView(args)
	case "event":
		return r.event(args)
	case "claim", "ack", "nack", "release", "dead":
		return r.claimsLine(name, args)
	case "hclaim", "hack", "hrej":
		return r.consensusLine(name, args)
	case "junk":
		return r.junk(args)
	case "deliver":
		return r.deliver(args)
	case "done":
		return r.done(args)
	case "tick", "commit", "reset", "release-all", "replayed":
		return r.each(name, args)
	case "ready":
		return r.ready(args)
	case "session":
		return r.session(args)
	case "resume":
		return r.resume(args)
	case "replay":
		return r.replay(args)
	case "status":
		return r.status(args)
	case "stats":
		return r.stats(args)
	case "committed", "next":
		return r.query(name, args)
	case "owners":
		return r.owners(args)
	}
	return nil, fmt.Errorf("unknown command %q", name)
}

// scriptFields splits a command line into words; a value may be a Go
// quoted string (key="two words").
func scriptFields(line string) ([]string, error) {
	var out []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		end := strings.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		if q := strings.IndexByte(line, '"'); q >= 0 && q < end {
			rest, err := strconv.QuotedPrefix(line[q:])
			if err != nil {
				return nil, fmt.Errorf("quoted value: %w", err)
			}
			end = q + len(rest)
		}
		out = append(out, line[:end])
		line = line[end:]
	}
	return out, nil
}

// kv is a command's arguments: positional ones, then key=value and flags.
type kv struct {
	pos   []string
	m     map[string]string
	flags map[string]bool
}

func scriptArgs(args []string, keys []string, flags ...string) (kv, error) {
	a := kv{m: map[string]string{}, flags: map[string]bool{}}
	for _, s := range args {
		k, v, ok := strings.Cut(s, "=")
		switch {
		case ok && slices.Contains(keys, k):
			if _, dup := a.m[k]; dup {
				return a, fmt.Errorf("%s given twice", k)
			}
			if strings.HasPrefix(v, `"`) {
				var err error
				if v, err = strconv.Unquote(v); err != nil {
					return a, fmt.Errorf("%s: %w", k, err)
				}
			}
			a.m[k] = v
		case ok:
			return a, fmt.Errorf("unknown key %q", k)
		case slices.Contains(flags, s):
			a.flags[s] = true
		case len(a.m) > 0:
			return a, fmt.Errorf("unexpected argument %q after key=value", s)
		default:
			a.pos = append(a.pos, s)
		}
	}
	return a, nil
}

func (a kv) duration(k string, def time.Duration) (time.Duration, error) {
	s, ok := a.m[k]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", k, err)
	}
	return d, nil
}

func (a kv) uint(k string, def uint64) (uint64, error) {
	s, ok := a.m[k]
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", k, err)
	}
	return n, nil
}

var configKeys = []string{"lease", "settle", "claim-timeout", "skew", "max-attempts", "retain", "max-events", "max-in-flight", "rejoin"}

// applyConfig sets the keys of a over cfg.
func applyConfig(cfg *claims.Config, a kv) error {
	var err error
	if cfg.Lease, err = a.duration("lease", cfg.Lease); err != nil {
		return err
	}
	if cfg.Settle, err = a.duration("settle", cfg.Settle); err != nil {
		return err
	}
	if cfg.ClaimTimeout, err = a.duration("claim-timeout", cfg.ClaimTimeout); err != nil {
		return err
	}
	if cfg.Skew, err = a.duration("skew", cfg.Skew); err != nil {
		return err
	}
	if cfg.Retain, err = a.duration("retain", cfg.Retain); err != nil {
		return err
	}
	if cfg.Rejoin, err = a.duration("rejoin", cfg.Rejoin); err != nil {
		return err
	}
	for k, p := range map[string]*int{"max-attempts": &cfg.MaxAttempts, "max-events": &cfg.MaxEvents, "max-in-flight": &cfg.MaxInFlight} {
		n, err := a.uint(k, uint64(*p))
		if err != nil {
			return err
		}
		*p = int(n)
	}
	return nil
}

func (r *scriptRunner) config(args []string) ([]string, error) {
	a, err := scriptArgs(args, configKeys)
	if err != nil || len(a.pos) > 0 {
		return nil, usage(err, "config [key=value...]")
	}
	*r = scriptRunner{started: true, names: map[envelope.ID]string{}, events: map[string]envelope.ID{}, offsets: map[string]envelope.Offset{},
		cfg: claims.Config{Lease: 10 * time.Second, Settle: 20 * time.Millisecond, ClaimTimeout: time.Second, Skew: 200 * time.Millisecond}}
	if err := applyConfig(&r.cfg, a); err != nil {
		return nil, err
	}
	c := claims.NewGroup(claims.GroupConfig{Config: r.cfg}).Config()
	return []string{fmt.Sprintf("lease=%v settle=%v claim-timeout=%v skew=%v max-attempts=%d retain=%v max-events=%d max-in-flight=%d rejoin=%v",
		c.Lease, c.Settle, c.ClaimTimeout, c.Skew, c.MaxAttempts, c.Retain, c.MaxEvents, c.MaxInFlight, c.Rejoin)}, nil
}

func (r *scriptRunner) setClock(args []string) error {
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

func (r *scriptRunner) replicaNamed(name string) (*scriptReplica, error) {
	for _, rep := range r.replicas {
		if rep.name == name {
			return rep, nil
		}
	}
	return nil, fmt.Errorf("no replica %q", name)
}

// targets returns the replicas named (all, without names).
func (r *scriptRunner) targets(names []string) ([]*scriptReplica, error) {
	if len(names) == 0 {
		return r.replicas, nil
	}
	var out []*scriptReplica
	for _, n := range names {
		rep, err := r.replicaNamed(n)
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}

func (r *scriptRunner) replica(args []string) ([]string, error) {
	a, err := scriptArgs(args, append([]string{"inc"}, configKeys...), "not-ready", "passive")
	if err != nil || len(a.pos) != 1 {
		return nil, usage(err, "replica NAME [inc=N] [not-ready] [passive] [config keys]")
	}
	if _, err := r.replicaNamed(a.pos[0]); err == nil {
		return nil, fmt.Errorf("replica %q exists", a.pos[0])
	}
	inc, err := a.uint("inc", 1)
	if err != nil {
		return nil, err
	}
	cfg := r.cfg
	if err := applyConfig(&cfg, a); err != nil {
		return nil, err
	}
	rep := &scriptReplica{name: a.pos[0]}
	rep.g = claims.NewGroup(claims.GroupConfig{Config: cfg, Topic: scriptTop, Group: scriptGrp, Passive: a.flags["passive"],
		Sender: envelope.Sender{Service: scriptSvc, Instance: rep.name, Incarnation: inc},
		NewID:  func() envelope.ID { r.ids++; return seqID(r.ids) }})
	r.replicas = append(r.replicas, rep)
	now := r.at()
	rep.g.Members(r.view, now)
	rep.g.Session(now.Add(1000*time.Hour), now)
	if !a.flags["not-ready"] {
		rep.g.SetReady(true, now)
	}
	return r.outputs([]*scriptReplica{rep}), nil
}

func (r *scriptRunner) setView(args []string) ([]string, error) {
	r.view = nil
	for _, s := range args {
		spec, state, _ := strings.Cut(s, "=")
		name, incs, _ := strings.Cut(spec, ":")
		inc := uint64(1)
		if incs != "" {
			var err error
			if inc, err = strconv.ParseUint(incs, 10, 64); err != nil {
				return nil, fmt.Errorf("%s: incarnation: %w", s, err)
			}
		}
		st := heartbeat.Alive
		departed := false
		var fence time.Time
		switch state, after, _ := strings.Cut(state, "+"); state {
		case "", "alive":
		case "suspect":
			st = heartbeat.Suspect
		case "dead":
			st, departed = heartbeat.Dead, true
		case "silent":
			st = heartbeat.Dead
		case "unreachable":
			st, fence = heartbeat.Unreachable, r.at()
			if after != "" {
				d, err := time.ParseDuration(after)
				if err != nil {
					return nil, fmt.Errorf("%s: fence: %w", s, err)
				}
				fence = fence.Add(d)
			}
		default:
			return nil, fmt.Errorf("%s: state %q (alive, suspect, dead, silent, unreachable[+D])", s, state)
		}
		r.view = append(r.view, heartbeat.Member{Service: scriptSvc, Instance: name, Incarnation: inc, State: st,
			Departed: departed, Fence: fence,
			Beat: heartbeat.Beat{Subs: []heartbeat.Sub{{Topic: scriptTop, Group: scriptGrp}}}})
	}
	now := r.at()
	for _, rep := range r.replicas {
		rep.g.Members(r.view, now)
	}
	return r.outputs(r.replicas), nil
}

// eventID is the id of event name: fixed by the name.
func (r *scriptRunner) eventID(name string) envelope.ID {
	if id, ok := r.events[name]; ok {
		return id
	}
	sum := sha256.Sum256([]byte("claims script event " + name))
	var id envelope.ID
	copy(id[:], sum[:])
	r.events[name], r.names[id] = id, name
	return id
}

func (r *scriptRunner) event(args []string) ([]string, error) {
	a, err := scriptArgs(args, []string{"key", "to"})
	if err != nil || len(a.pos) != 1 {
		return nil, usage(err, "event E [key=K] [to=A,B]")
	}
	env := &envelope.Envelope{Version: envelope.Version, Kind: envelope.KindEvent, ID: r.eventID(a.pos[0]), Time: r.at().UnixNano(),
		Sender: envelope.Sender{Service: "pub", Instance: "1", Incarnation: 1}, Topic: scriptTop, Payload: []byte(a.pos[0])}
	return r.carry(env, a.m["key"], a.m["to"], a.pos[0])
}

// carry puts a line in the channel: it gets its offset and arrives at the
// replicas (those of to, else all).
func (r *scriptRunner) carry(env *envelope.Envelope, key, to, msgid string) ([]string, error) {
	var names []string
	if to != "" {
		names = strings.Split(to, ",")
	}
	reps, err := r.targets(names)
	if err != nil {
		return nil, err
	}
	if msgid == "" {
		msgid = fmt.Sprintf("l%d", len(r.lines)+1)
	}
	off := envelope.OffsetAt(r.at(), msgid)
	r.lines = append(r.lines, scriptLine{env: env, off: off, key: key})
	if env.Kind == envelope.KindEvent {
		r.offsets[msgid] = off
	}
	now := r.at()
	for _, rep := range reps {
		rep.g.Receive(claims.Received{Envelope: env, From: "nick-" + env.Sender.Instance, ServerTime: off.At(), MsgID: off.MsgID, Key: key}, now)
	}
	return r.outputs(r.replicas), nil
}

// item parses E@EPOCH[/ATTEMPT].
func (r *scriptRunner) item(s string, attempt func(epoch uint64) uint32) (claims.Item, error) {
	name, rest, ok := strings.Cut(s, "@")
	if !ok {
		return claims.Item{}, fmt.Errorf("%q: want E@EPOCH", s)
	}
	eps, atts, hasAtt := strings.Cut(rest, "/")
	epoch, err := strconv.ParseUint(eps, 10, 64)
	if err != nil {
		return claims.Item{}, fmt.Errorf("%q: epoch: %w", s, err)
	}
	it := claims.Item{Event: r.eventID(name), Epoch: epoch, Attempt: attempt(epoch)}
	if hasAtt {
		n, err := strconv.ParseUint(atts, 10, 32)
		if err != nil {
			return claims.Item{}, fmt.Errorf("%q: attempt: %w", s, err)
		}
		it.Attempt = uint32(n)
	}
	return it, nil
}

func (r *scriptRunner) sender(name string, a kv) (envelope.Sender, error) {
	inc, err := a.uint("inc", 1)
	return envelope.Sender{Service: scriptSvc, Instance: name, Incarnation: inc}, err
}

func (r *scriptRunner) claimsLine(kind string, args []string) ([]string, error) {
	a, err := scriptArgs(args, []string{"lease", "inc", "to", "retry", "reason", "attempts", "reasons", "group"})
	if err != nil || len(a.pos) < 2 {
		return nil, usage(err, kind+" NAME E@EPOCH...")
	}
	from, err := r.sender(a.pos[0], a)
	if err != nil {
		return nil, err
	}
	var items []claims.Item
	for _, s := range a.pos[1:] {
		it, err := r.item(s, func(e uint64) uint32 {
			if kind == "claim" {
				return uint32(e)
			}
			return 0
		})
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	env := &envelope.Envelope{Version: envelope.Version, Kind: envelope.KindClaim, ID: r.newID(), Time: r.at().UnixNano(), Sender: from,
		Topic: cmp.Or(a.m["group"], scriptGrp)}
	switch kind {
	case "claim", "ack":
		if kind == "ack" {
			env.Kind = envelope.KindAck
		} else {
			lease, err := a.duration("lease", r.cfg.Lease)
			if err != nil {
				return nil, err
			}
			env.LeaseMillis = uint32(lease / time.Millisecond)
		}
		if env.Payload, err = claims.EncodeItems(items); err != nil {
			return nil, err
		}
	default:
		if len(items) != 1 {
			return nil, fmt.Errorf("%s takes one E@EPOCH", kind)
		}
		env.Correlation, env.Epoch = items[0].Event, items[0].Epoch
		switch kind {
		case "nack":
			env.Kind = envelope.KindNack
			retry, err := a.duration("retry", 0)
			if err != nil {
				return nil, err
			}
			env.LeaseMillis = uint32(retry / time.Millisecond)
			env.Error = &envelope.Error{Message: a.m["reason"]}
		case "release":
			env.Kind = envelope.KindNack
			env.Error = &envelope.Error{Code: claims.CodeReleased, Message: "released"}
		case "dead":
			env.Kind = envelope.KindDeadLetter
			n, err := a.uint("attempts", 0)
			if err != nil {
				return nil, err
			}
			env.Attempt = uint32(n)
			env.Error = &envelope.Error{Message: a.m["reasons"]}
		}
	}
	return r.carry(env, "", a.m["to"], "")
}

// usage is err, or else the command's usage.
func usage(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New("usage: " + msg)
}

func (r *scriptRunner) newID() envelope.ID { r.ids++; return seqID(r.ids) }

// offset parses an event's name (its line's offset) or TIME/MSGID.
func (r *scriptRunner) offset(s string) (envelope.Offset, error) {
	if s == "-" {
		return envelope.Offset{}, nil
	}
	if off, ok := r.offsets[s]; ok {
		return off, nil
	}
	ts, id, ok := strings.Cut(s, "/")
	d, err := time.ParseDuration(ts)
	if !ok || err != nil {
		return envelope.Offset{}, fmt.Errorf("offset %q: an event's name or TIME/MSGID", s)
	}
	return envelope.OffsetAt(scriptT0.Add(d), id), nil
}

func (r *scriptRunner) consensusLine(kind string, args []string) ([]string, error) {
	a, err := scriptArgs(args, []string{"committed", "inc", "to"})
	if err != nil {
		return nil, err
	}
	from, err := r.sender(strings.Join(a.pos[:min(1, len(a.pos))], ""), a)
	if err != nil {
		return nil, err
	}
	env := &envelope.Envelope{Version: envelope.Version, ID: r.newID(), Time: r.at().UnixNano(), Sender: from, Topic: scriptGrp}
	switch kind {
	case "hclaim":
		if len(a.pos) != 2 {
			return nil, errors.New("usage: hclaim NAME OFF [committed=OFF]")
		}
		off, err := r.offset(a.pos[1])
		if err != nil {
			return nil, err
		}
		comm, err := r.offset(cmp.Or(a.m["committed"], "-"))
		if err != nil {
			return nil, err
		}
		env.Kind = envelope.KindHistoryClaim
		if env.Payload, err = claims.EncodeHistoryClaim(off, comm); err != nil {
			return nil, err
		}
		r.hclaims++
		r.names[env.ID] = fmt.Sprintf("h%d", r.hclaims)
	default:
		if len(a.pos) != 3 {
			return nil, fmt.Errorf("usage: %s NAME CLAIM OFF", kind)
		}
		env.Kind = envelope.KindHistoryAck
		if kind == "hrej" {
			env.Kind = envelope.KindHistoryReject
		}
		claimID, ok := r.claimNamed(a.pos[1])
		if !ok {
			return nil, fmt.Errorf("no HistoryClaim %q", a.pos[1])
		}
		off, err := r.offset(a.pos[2])
		if err != nil {
			return nil, err
		}
		env.Correlation = claimID
		if env.Payload, err = claims.EncodeOffset(off); err != nil {
			return nil, err
		}
	}
	return r.carry(env, "", a.m["to"], "")
}

func (r *scriptRunner) claimNamed(name string) (envelope.ID, bool) {
	for id, n := range r.names {
		if n == name {
			return id, true
		}
	}
	return envelope.ID{}, false
}

func (r *scriptRunner) junk(args []string) ([]string, error) {
	a, err := scriptArgs(args, []string{"to"})
	if err != nil || len(a.pos) != 2 {
		return nil, usage(err, "junk NAME KIND [to=A,B]")
	}
	kind, ok := envelope.ParseKind(a.pos[1])
	if !ok {
		return nil, fmt.Errorf("kind %q", a.pos[1])
	}
	from, _ := r.sender(a.pos[0], a)
	env := &envelope.Envelope{Version: envelope.Version, Kind: kind, ID: r.newID(), Time: r.at().UnixNano(), Sender: from, Topic: scriptGrp,
		Payload: []byte("junk")} // nacks and dead markers: no event, no epoch
	return r.carry(env, "", a.m["to"], "")
}

func (r *scriptRunner) deliver(args []string) ([]string, error) {
	reps, err := r.targets(args)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rep := range reps {
		box := rep.outbox
		rep.outbox = nil
		for _, env := range box {
			o, err := r.carry(env, "", "", "")
			if err != nil {
				return nil, err
			}
			out = append(out, o...)
		}
	}
	return out, nil
}

func (r *scriptRunner) done(args []string) ([]string, error) {
	a, err := scriptArgs(args, []string{"err", "retry"})
	if err != nil || len(a.pos) != 2 {
		return nil, usage(err, `done NAME E@EPOCH [err="..."] [retry=D]`)
	}
	rep, err := r.replicaNamed(a.pos[0])
	if err != nil {
		return nil, err
	}
	it, err := r.item(a.pos[1], func(uint64) uint32 { return 0 })
	if err != nil {
		return nil, err
	}
	retry, err := a.duration("retry", 0)
	if err != nil {
		return nil, err
	}
	var herr error
	if msg, ok := a.m["err"]; ok {
		herr = errors.New(msg)
	}
	rep.g.Done(it.Event, it.Epoch, herr, retry, r.at())
	return r.outputs(r.replicas), nil
}

func (r *scriptRunner) each(name string, args []string) ([]string, error) {
	reps, err := r.targets(args)
	if err != nil {
		return nil, err
	}
	now := r.at()
	for _, rep := range reps {
		switch name {
		case "tick":
			rep.g.Tick(now)
		case "commit":
			rep.g.Commit(now)
		case "reset":
			rep.g.Reset(now)
			rep.outbox = nil // not sent: the connection is gone
		case "release-all":
			rep.g.ReleaseAll(now)
		case "replayed":
			rep.g.Replayed(now)
		}
	}
	return r.outputs(r.replicas), nil
}

func (r *scriptRunner) ready(args []string) ([]string, error) {
	if len(args) != 2 || (args[1] != "true" && args[1] != "false") {
		return nil, errors.New("usage: ready NAME true|false")
	}
	rep, err := r.replicaNamed(args[0])
	if err != nil {
		return nil, err
	}
	rep.g.SetReady(args[1] == "true", r.at())
	return r.outputs(r.replicas), nil
}

func (r *scriptRunner) session(args []string) ([]string, error) {
	if len(args) != 2 {
		return nil, errors.New("usage: session NAME T")
	}
	rep, err := r.replicaNamed(args[0])
	if err != nil {
		return nil, err
	}
	d, err := time.ParseDuration(args[1])
	if err != nil {
		return nil, err
	}
	rep.g.Session(scriptT0.Add(d), r.at())
	return r.outputs(r.replicas), nil
}

func (r *scriptRunner) resume(args []string) ([]string, error) {
	a, err := scriptArgs(args, []string{"committed"})
	if err != nil || len(a.pos) != 1 {
		return nil, usage(err, "resume NAME [committed=OFF]")
	}
	rep, err := r.replicaNamed(a.pos[0])
	if err != nil {
		return nil, err
	}
	off, err := r.offset(cmp.Or(a.m["committed"], "-"))
	if err != nil {
		return nil, err
	}
	rep.g.Resume(off, r.at())
	return r.outputs(r.replicas), nil
}

func (r *scriptRunner) replay(args []string) ([]string, error) {
	if len(args) < 2 {
		return nil, errors.New("usage: replay NAME LINE...")
	}
	rep, err := r.replicaNamed(args[0])
	if err != nil {
		return nil, err
	}
	for _, s := range args[1:] {
		var l *scriptLine
		if n, err := strconv.Atoi(strings.TrimPrefix(s, "l")); err == nil && strings.HasPrefix(s, "l") && n >= 1 && n <= len(r.lines) {
			l = &r.lines[n-1]
		} else {
			for i := range r.lines {
				if r.lines[i].off.MsgID == s {
					l = &r.lines[i]
				}
			}
		}
		if l == nil {
			return nil, fmt.Errorf("no line %q", s)
		}
		rep.g.Replay(claims.Received{Envelope: l.env, From: "nick-" + l.env.Sender.Instance, ServerTime: l.off.At(), MsgID: l.off.MsgID, Key: l.key}, r.at())
	}
	return r.outputs(r.replicas), nil
}

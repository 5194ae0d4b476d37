package claims_test

// What the script tests print: the replicas' outputs and the queries.

import (
	"cmp"
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

func (r *scriptRunner) offName(o envelope.Offset) string {
	if o.IsZero() {
		return "-"
	}
	return o.At().Sub(scriptT0).String() + "/" + o.MsgID
}

func (r *scriptRunner) status(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, errors.New("usage: status NAME [E...]")
	}
	rep, err := r.replicaNamed(args[0])
	if err != nil {
		return nil, err
	}
	var out []string
	for _, in := range rep.g.Snapshot() {
		name := r.eventName(in.Event)
		if len(args) > 1 && !slices.Contains(args[1:], name) {
			continue
		}
		s := fmt.Sprintf("%s %s epoch=%d attempts=%d", name, in.Outcome, in.Epoch, in.Attempts)
		if in.Owner.ID != "" {
			s += fmt.Sprintf(" owner=%s:%d", in.Owner.ID, in.Owner.Incarnation)
		}
		if !in.Until.IsZero() {
			s += " until=" + in.Until.Sub(scriptT0).String()
		}
		for _, f := range []struct {
			on   bool
			name string
		}{{in.Mine, "mine"}, {in.Running, "running"}, {!in.Seen, "unseen"}} {
			if f.on {
				s += " " + f.name
			}
		}
		if in.Key != "" {
			s += " key=" + in.Key
		}
		if len(in.Reasons) > 0 {
			s += " reasons=" + strconv.Quote(strings.Join(in.Reasons, "; "))
		}
		out = append(out, s)
	}
	for _, e := range args[1:] {
		if !slices.ContainsFunc(out, func(s string) bool { return strings.HasPrefix(s, e+" ") }) {
			out = append(out, e+" untracked")
		}
	}
	if len(out) == 0 {
		out = []string{"(none)"}
	}
	return out, nil
}

func (r *scriptRunner) stats(args []string) ([]string, error) {
	if len(args) != 1 {
		return nil, errors.New("usage: stats NAME")
	}
	rep, err := r.replicaNamed(args[0])
	if err != nil {
		return nil, err
	}
	s := rep.g.Stats()
	var parts []string
	for _, f := range []struct {
		name string
		v    uint64
	}{{"pending", uint64(s.Pending)}, {"completed", uint64(s.Completed)}, {"claims", s.Claims}, {"renewals", s.Renewals},
		{"acked", s.Acked}, {"dead", s.Dead}, {"takeovers", s.Takeovers}, {"stale", s.Stale}, {"released", s.Released},
		{"started", s.Started}, {"cancelled", s.Cancelled}, {"refused", s.Refused}, {"malformed", s.Malformed},
		{"quorum-lost", s.QuorumLost}, {"resent", s.Resent}} {
		if f.v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, f.v))
		}
	}
	if len(parts) == 0 {
		return []string{"(all zero)"}, nil
	}
	return []string{strings.Join(parts, " ")}, nil
}

func (r *scriptRunner) query(name string, args []string) ([]string, error) {
	reps, err := r.targets(args)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rep := range reps {
		switch name {
		case "committed":
			out = append(out, rep.name+": "+r.offName(rep.g.Committed()))
		case "next":
			v := "none"
			if n := rep.g.Next(); !n.IsZero() {
				v = n.Sub(scriptT0).String()
			}
			out = append(out, rep.name+": "+v)
		}
	}
	return out, nil
}

func (r *scriptRunner) eventName(id envelope.ID) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	return id.Short()
}

// owners ranks the view's alive members by rendezvous weight, as §6.3
// says: of the event's id in lower-case hex, or of its key.
func (r *scriptRunner) owners(args []string) ([]string, error) {
	a, err := scriptArgs(args, []string{"key"})
	if err != nil || len(a.pos) != 1 {
		return nil, usage(err, "owners E [key=K]")
	}
	key := a.m["key"]
	if key == "" {
		key = r.eventID(a.pos[0]).String()
	}
	// The members not known gone: alive, suspect, unreachable, dead by
	// silence (§6.3, §6.14); an owner that is not alive passes its epoch.
	var ids []string
	state := map[string]string{}
	for _, m := range r.view {
		if m.State == heartbeat.Dead && m.Departed {
			continue
		}
		id := m.Service + "/" + m.Instance
		ids = append(ids, id)
		if m.State != heartbeat.Alive {
			state[id] = "(" + m.State.String() + ")"
		}
	}
	slices.SortFunc(ids, func(x, y string) int {
		if c := cmp.Compare(heartbeat.Weight(key, y), heartbeat.Weight(key, x)); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	if len(ids) == 0 {
		return []string{"(no member)"}, nil
	}
	for i, id := range ids {
		ids[i] = id + state[id]
	}
	return []string{a.pos[0] + ": " + strings.Join(ids, " ")}, nil
}

// outputs takes and prints what the replicas ask for, replica by replica.
func (r *scriptRunner) outputs(reps []*scriptReplica) []string {
	var out []string
	for _, rep := range reps {
		rd := rep.g.Ready()
		p := rep.name + ": "
		for _, c := range rd.Cancel {
			out = append(out, p+fmt.Sprintf("cancel %s@%d %q", r.eventName(c.Event), c.Epoch, c.Reason))
		}
		for _, s := range rd.Start {
			out = append(out, p+fmt.Sprintf("start %s@%d attempt=%d token=%#x", r.eventName(s.Event.Envelope.ID), s.Epoch, s.Attempt, s.Token))
		}
		for _, env := range rd.Send {
			out = append(out, p+"send "+r.describe(env))
			rep.outbox = append(rep.outbox, env)
		}
		for _, d := range rd.DeadLetters {
			out = append(out, p+fmt.Sprintf("dead-letter %s attempts=%d reasons=%q topic=%s group=%s", r.eventName(d.Letter.Event.ID), d.Letter.Attempts,
				strings.Join(d.Letter.Reasons, "; "), d.Letter.Topic, d.Letter.Group))
			out = append(out, p+"send "+r.describe(d.Marker))
			rep.outbox = append(rep.outbox, d.Marker)
		}
		for _, m := range rd.Malformed {
			out = append(out, p+fmt.Sprintf("malformed %s from %s: %v", m.Kind, m.From, m.Err))
		}
	}
	return out
}

// describe is an envelope a replica sent, as scripts show it.
func (r *scriptRunner) describe(env *envelope.Envelope) string {
	switch env.Kind {
	case envelope.KindClaim, envelope.KindAck:
		items, err := claims.DecodeItems(env.Payload)
		if err != nil {
			return fmt.Sprintf("%s (bad items: %v)", env.Kind, err)
		}
		var b strings.Builder
		b.WriteString(env.Kind.String())
		for _, it := range items {
			fmt.Fprintf(&b, " %s@%d", r.eventName(it.Event), it.Epoch)
			if env.Kind == envelope.KindClaim {
				fmt.Fprintf(&b, "/%d", it.Attempt)
			}
		}
		if env.Kind == envelope.KindClaim {
			fmt.Fprintf(&b, " lease=%v", time.Duration(env.LeaseMillis)*time.Millisecond)
		}
		return b.String()
	case envelope.KindNack:
		if env.Error.Code == claims.CodeReleased {
			return fmt.Sprintf("release %s@%d %q", r.eventName(env.Correlation), env.Epoch, env.Error.Message)
		}
		return fmt.Sprintf("nack %s@%d retry=%v %q", r.eventName(env.Correlation), env.Epoch, time.Duration(env.LeaseMillis)*time.Millisecond, env.Error.Message)
	case envelope.KindDeadLetter:
		return fmt.Sprintf("dead %s@%d attempts=%d %q", r.eventName(env.Correlation), env.Epoch, env.Attempt, env.Error.Message)
	case envelope.KindHistoryClaim:
		c, k, err := claims.DecodeHistoryClaim(env.Payload)
		if err != nil {
			return fmt.Sprintf("hclaim (bad payload: %v)", err)
		}
		r.hclaims++
		name := fmt.Sprintf("h%d", r.hclaims)
		r.names[env.ID] = name
		return fmt.Sprintf("hclaim %s %s committed=%s", name, r.offName(c), r.offName(k))
	case envelope.KindHistoryAck, envelope.KindHistoryReject:
		o, err := claims.DecodeOffset(env.Payload)
		if err != nil {
			return fmt.Sprintf("%s (bad payload: %v)", env.Kind, err)
		}
		return fmt.Sprintf("%s %s %s", env.Kind, r.eventName(env.Correlation), r.offName(o))
	}
	return env.Kind.String()
}

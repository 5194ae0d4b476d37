package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/claimsview"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// claimsWatch is how long the claims command watches its topic.
const claimsWatch = 2 * time.Second

// claims shows a topic's anycast events in flight, as 'meshbot claims'
// does, from this node's seat in the topic's channel: only a node that
// subscribes to the topic answers (watching costs it nothing then); the
// others name those that do.
func (c *Console) claims(args []string) []string {
	topic := strings.ToLower(args[0])
	group := ""
	if len(args) == 2 {
		group = args[1]
		if err := mesh.ValidateGroup(group); err != nil {
			return []string{"claims: " + show(err.Error(), maxShown)}
		}
	}
	if err := mesh.ValidateTopic(c.n.Namespace(), topic, 0); err != nil {
		return []string{"claims: " + show(err.Error(), maxShown)}
	}
	in := slices.ContainsFunc(c.n.Subscriptions(), func(s mesh.SubscriptionInfo) bool { return s.Topic == topic && s.Kicked == nil })
	all := c.n.AllMembers()
	if !in {
		var nicks []string
		for _, m := range all {
			if m.State != heartbeat.Dead && slices.ContainsFunc(m.Beat.Subs, func(s heartbeat.Sub) bool { return s.Topic == topic && s.Group != "" }) {
				nicks = append(nicks, m.Nick)
			}
		}
		if len(nicks) == 0 {
			return []string{fmt.Sprintf("%s does not subscribe to %s, and no live member announces an anycast group for it", c.n.Nick(), show(topic, 64))}
		}
		slices.Sort(nicks)
		return []string{fmt.Sprintf("%s does not subscribe to %s; ask a member of its group: /msg %s claims %s", c.n.Nick(), topic, nicks[0], topic)}
	}
	w := claimsview.NewWatch(topic, group, envelope.Sender{Service: c.n.Service(), Instance: c.n.Instance()})
	ctx, cancel := context.WithTimeout(c.ctx, claimsWatch+time.Second)
	defer cancel()
	o, err := c.n.Observe(ctx, topic, func(ob mesh.Observation) {
		if ob.Envelope != nil && ob.Err == nil {
			w.Line(claims.Received{Envelope: ob.Envelope, From: ob.From, ServerTime: ob.Time, MsgID: ob.MsgID}, time.Now())
		}
	})
	if err != nil {
		return []string{"claims: " + show(err.Error(), maxShown)}
	}
	defer o.Stop()
	if group == "" {
		g, err := w.DefaultGroup(all)
		var ge *claimsview.GroupError
		if errors.As(err, &ge) {
			return []string{"claims: " + show(err.Error(), maxShown) + "; name the group: claims " + topic + " GROUP"}
		}
		w.SetGroup(g)
	}
	w.Start(all, time.Now())
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	end := time.NewTimer(claimsWatch)
	defer end.Stop()
	for {
		select {
		case <-t.C:
			w.Tick(c.n.AllMembers(), time.Now())
			continue
		case <-end.C:
		case <-ctx.Done():
			return []string{"claims: stopped"}
		}
		break
	}
	d := w.Doc(time.Now())
	return claimsview.Lines(d, maxLines)
}

// state shows a domain of state this node holds a copy of: its version
// and keys, or one key's value.
func (c *Console) state(args []string) []string {
	name := strings.ToLower(args[0])
	var d *mesh.Domain
	var held []string
	for _, x := range c.n.Domains() {
		held = append(held, x.Name())
		if x.Name() == name {
			d = x
		}
	}
	if d == nil {
		if err := state.ValidDomain(name); err != nil {
			return []string{"state: " + show(err.Error(), maxShown)}
		}
		holders := state.Holders(c.n.AllMembers(), name)
		hint := "no live member announces a copy of it"
		if len(holders) > 0 {
			hint = "ask a holder: /msg " + holders[0].Member.Nick + " state " + name
		}
		mine := "none"
		if len(held) > 0 {
			mine = strings.Join(held, " ")
		}
		return []string{fmt.Sprintf("%s holds no copy of %s (it holds: %s); %s", c.n.Nick(), name, mine, hint)}
	}
	info := d.Info()
	head := fmt.Sprintf("%s (owner %s): version %d, %d keys, %d B", info.Name, info.Owner, info.Version, info.Keys, info.Bytes)
	switch {
	case !info.Loaded:
		head += ", not loaded yet"
	case info.Stale:
		head += ", STALE: no live instance of the owner"
	}
	if !info.Loaded {
		return []string{head}
	}
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	if len(args) == 2 {
		e, err := d.Get(ctx, args[1])
		switch {
		case errors.Is(err, mesh.ErrNoKey):
			return []string{head, fmt.Sprintf("%s: no such key", show(args[1], 128))}
		case err != nil:
			return []string{head, "state: " + show(err.Error(), maxShown)}
		}
		value := envelope.Preview(e.Value, "", maxShown)
		if value == "" {
			value = "(empty)"
		}
		return []string{head, fmt.Sprintf("%s = %s (version %d, written by %s at domain version %d)", show(e.Key, 128), value, e.Version, e.Writer, e.DomainVersion)}
	}
	keys, err := d.Keys(ctx)
	if err != nil {
		return []string{head, "state: " + show(err.Error(), maxShown)}
	}
	out := []string{head}
	line := ""
	for i, k := range keys {
		if len(line)+len(k) > 300 || i == 100 {
			out = append(out, fmt.Sprintf("keys: %s … %d more", line, len(keys)-i))
			return out
		}
		line += " " + show(k, 64)
	}
	if line != "" {
		out = append(out, "keys:"+line)
	}
	return out
}

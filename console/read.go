package console

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/mesh"
)

// maxMembers bounds the members one answer lists.
const maxMembers = 10

// help lists the commands, or says what one does.
func (c *Console) help(args []string) []string {
	if len(args) == 1 {
		sp, ok := lookup(strings.ToLower(args[0]))
		if !ok {
			return []string{fmt.Sprintf("no command %q; help lists them", clipName(args[0]))}
		}
		who := "anyone"
		switch {
		case c.cfg.TrustEveryone:
			who = "anyone (this mesh trusts everyone)"
		case sp.acts:
			who = "trusted people only (IRC operators, channel operators of the mesh's channels, allowed accounts)"
		case c.cfg.Restricted:
			who = "trusted people only on this mesh"
		}
		return []string{sp.usage + ": " + sp.help + "; " + who}
	}
	nick := c.n.Nick()
	out := []string{fmt.Sprintf("%s is an instance of the mesh service %s (meshbot %s). Commands, by /msg %s or !COMMAND in its channels:", nick, c.n.Service(), mesh.Version(), nick)}
	var read, act []string
	for _, sp := range commands {
		if sp.acts {
			act = append(act, sp.usage)
		} else {
			read = append(read, sp.usage)
		}
	}
	out = append(out, "  read: "+strings.Join(read, " · "))
	actors := "operators and allowed accounts"
	if c.cfg.TrustEveryone {
		actors = "anyone: this mesh trusts everyone"
	}
	out = append(out, "  act ("+actors+"): "+strings.Join(act, " · "))
	if ms := c.n.Methods(); len(ms) > 0 {
		out = append(out, fmt.Sprintf("  its methods answer directly: %s PAYLOAD (a req to %s)", ms[0], c.n.Service()))
	}
	out = append(out, "  in a channel: !COMMAND (every bot answers in one line), !NICK COMMAND or !SERVICE COMMAND (in full); CTCP VERSION and PING answer too")
	return out
}

// status describes this instance.
func (c *Console) status() []string {
	n := c.n
	st := n.Stats()
	conn := "connected"
	if !st.Connected {
		conn = "disconnected"
	}
	live := 0
	for _, m := range n.AllMembers() {
		if m.State != heartbeat.Dead {
			live++
		}
	}
	out := []string{fmt.Sprintf("%s: service %s, instance %s, up %s, meshbot %s, %s, %d live members seen",
		n.Nick(), n.Service(), n.Instance(), since(c.now().Sub(n.Started())), mesh.Version(), conn, live)}
	subs := n.Subscriptions()
	if len(subs) == 0 {
		out = append(out, "subscriptions: none")
	}
	shown := map[string]bool{}
	for i, s := range subs {
		if i == 6 {
			out = append(out, fmt.Sprintf("… %d more subscriptions", len(subs)-i))
			break
		}
		shown[s.Topic] = true
		out = append(out, subLine(s))
	}
	for _, p := range n.Paused() {
		if !shown[p.Topic] {
			out = append(out, "topic "+p.Topic+" "+pausedText(p))
		}
	}
	for _, k := range n.Kicks() {
		if !shown[k.Topic] {
			out = append(out, "topic "+k.Topic+" "+kickedText(k))
		}
	}
	methods := "none"
	if ms := n.Methods(); len(ms) > 0 {
		methods = strings.Join(ms, " ")
	}
	out = append(out, fmt.Sprintf("requests: answers %s; served %d, retried %d, late answers %d", methods, st.RequestsServed, st.RequestRetries, st.LateResponses))
	last := "none"
	if err := n.LastConnectionError(); err != nil {
		last = show(err.Error(), 160)
	}
	out = append(out, fmt.Sprintf("events delivered %d, dropped %d (queues full), handler errors %d, lines rejected %d%s, reconnects %d; last connection error: %s",
		st.Delivered, st.Dropped, st.HandlerErrors, st.Rejected, reasons(st.RejectedBy), st.Reconnects, last))
	return out
}

// subLine: "orders.created: anycast (group billing), queue 0/1024,
// delivered 12, dropped 0, failed 1, 1 claim held".
func subLine(s mesh.SubscriptionInfo) string {
	mode := s.Mode
	if s.Group != "" {
		mode += " (group " + s.Group + ")"
	}
	line := fmt.Sprintf("%s: %s, queue %d/%d, delivered %d, dropped %d, failed %d", s.Topic, mode, s.Queued, s.QueueCap, s.Delivered, s.Dropped, s.Failed)
	if s.Mode == mesh.ModeAnycast {
		line += fmt.Sprintf(", %d %s held", s.Held, plural(s.Held, "claim", "claims"))
	}
	if s.Paused != nil {
		line += ", " + pausedText(*s.Paused)
	}
	if s.Kicked != nil {
		line += ", " + kickedText(*s.Kicked)
	}
	return line
}

func pausedText(p mesh.Pause) string {
	by := ""
	if p.By != "" {
		by = " by " + p.By
	}
	return "PAUSED (+m" + by + " since " + p.Since.Format(time.TimeOnly) + "; -m resumes)"
}

func kickedText(k mesh.Kick) string {
	return "KICKED by " + k.By + " at " + k.At.Format(time.TimeOnly) + " (" + show(k.Reason, 60) + "); receives nothing of it until INVITEd back"
}

func reasons(by map[string]uint64) string {
	if len(by) == 0 {
		return ""
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + strconv.FormatUint(by[k], 10)
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// members lists the live instances (of service), from heartbeats.
func (c *Console) members(args []string) []string {
	service := ""
	if len(args) == 1 {
		service = strings.ToLower(args[0])
	}
	var ms []heartbeat.Member
	for _, m := range c.n.AllMembers() {
		if (m.State != heartbeat.Dead) && (service == "" || m.Service == service) {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		if service != "" {
			return []string{"no live instance of " + show(service, 64) + " in its heartbeats"}
		}
		return []string{"no live members in the heartbeats yet"}
	}
	slices.SortFunc(ms, func(a, b heartbeat.Member) int {
		return strings.Compare(a.ID(), b.ID())
	})
	what := "live instances"
	if service != "" {
		what += " of " + service
	}
	out := []string{fmt.Sprintf("%d %s (from heartbeats):", len(ms), what)}
	now := c.now()
	for i, m := range ms {
		if i == maxMembers {
			out = append(out, fmt.Sprintf("… %d more: meshbot members", len(ms)-i))
			break
		}
		out = append(out, "  "+memberLine(m, now))
	}
	return out
}

// memberLine: "pricing-1 alive, load 0.00, beat 0.4s ago · subscribes
// orders.created billing:orders.created · answers quote · kicked from x ·
// depends on pricing".
func memberLine(m heartbeat.Member, now time.Time) string {
	b := m.Beat
	line := fmt.Sprintf("%s %s, load %.2f, beat %s ago", show(m.Nick, 40), m.State, b.Load, since(now.Sub(m.LastBeat)))
	if len(b.Subs) > 0 {
		subs := make([]string, len(b.Subs))
		for i, s := range b.Subs {
			subs[i] = s.Topic
			if s.Group != "" {
				subs[i] = s.Group + ":" + s.Topic
			}
		}
		line += " · subscribes " + strings.Join(subs, " ")
	}
	if len(b.Methods) > 0 {
		line += " · answers " + strings.Join(b.Methods, " ")
	}
	if len(b.Kicked) > 0 {
		kicked := make([]string, len(b.Kicked))
		for i, s := range b.Kicked {
			kicked[i] = s.Topic
		}
		line += " · KICKED from " + strings.Join(kicked, " ")
	}
	if len(b.Depends) > 0 {
		line += " · depends on " + strings.Join(b.Depends, " ")
	}
	return show(line, 400)
}

// methods lists the request methods of this instance, and those the live
// instances announce (of service).
func (c *Console) methods(args []string) []string {
	byService := map[string][]string{}
	for _, m := range c.n.AllMembers() {
		if !(m.State != heartbeat.Dead) {
			continue
		}
		for _, meth := range m.Beat.Methods {
			if !slices.Contains(byService[m.Service], meth) {
				byService[m.Service] = append(byService[m.Service], meth)
			}
		}
	}
	if len(args) == 1 {
		service := strings.ToLower(args[0])
		ms := byService[service]
		if service == c.n.Service() {
			ms = c.n.Methods()
		}
		if len(ms) == 0 {
			return []string{"no live instance of " + show(service, 64) + " announces request methods"}
		}
		slices.Sort(ms)
		return []string{fmt.Sprintf("%s answers: %s (try: req %s %s PAYLOAD)", service, strings.Join(ms, " "), service, ms[0])}
	}
	own := c.n.Methods()
	first := c.n.Nick() + " answers no requests"
	if len(own) > 0 {
		first = fmt.Sprintf("%s answers: %s (try: %s PAYLOAD, or req %s %s PAYLOAD)", c.n.Nick(), strings.Join(own, " "), own[0], c.n.Service(), own[0])
	}
	out := []string{first}
	services := make([]string, 0, len(byService))
	for s := range byService {
		services = append(services, s)
	}
	slices.Sort(services)
	var parts []string
	for _, s := range services {
		ms := byService[s]
		slices.Sort(ms)
		parts = append(parts, s+": "+strings.Join(ms, " "))
	}
	if len(parts) > 0 {
		out = append(out, "the mesh's services answer "+strings.Join(parts, " · "))
	}
	return out
}

// since renders a duration for people: "0.4s", "12s", "5m3s", "2h4m".
func since(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

func newCheckCmd(st *state) *cobra.Command {
	var (
		conn        connFlags
		id          identityFlags
		trust       trustFlags
		settle      time.Duration
		joinTimeout time.Duration
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the server and the mesh as meshbot sees them: the first thing to run when something is wrong",
		Long: `Connect to the server as a mesh node and report what meshbot sees:

  server       the address, how long connecting took, the nick, the network
  round trip   the time of one LIST round trip to the server
  caps         the IRCv3 capabilities the server acknowledged
  carrier      where envelopes ride: a client tag (message-tags) or the text
  confirms     how publishes are confirmed: echo-message, or a PING after them
  limits       LINELEN, CHANNELLEN, NICKLEN in force (the server's ISUPPORT)
  line budget  the room for an envelope in one line, from the node's prefix
  history      whether the server keeps CHATHISTORY
  members      the live members of the namespace, from the heartbeats
  channels     each channel of the namespace (LIST, and the subscriptions
               members announce), joined or not within --join-timeout

It exits 0 when every channel could be joined, 1 otherwise (and when the
server cannot be reached, with the reason: refused, not an IRC server,
authentication failed, ...). --json prints one document instead.`,
		Example: `  meshbot check
  meshbot check --server irc.example.net:6697 --tls --namespace shop
  meshbot check --json | jq .limits`,
		Args: nargs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if settle < 0 || joinTimeout <= 0 {
				return usagef("check: --settle must not be negative, --join-timeout must be positive")
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			start := time.Now()
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.closeNode(st, n)
			r := &checkReport{Server: cfg.Server, Namespace: cfg.Namespace, Nick: n.Nick(), ConnectMillis: ms(time.Since(start))}
			if err := r.gather(ctx, n, settle, joinTimeout); err != nil {
				return interrupted(ctx, err)
			}
			if asJSON {
				b, _ := json.MarshalIndent(r, "", "  ")
				fmt.Fprintln(st.env.stdout, string(b))
			} else {
				r.print(st.env.stdout)
			}
			if bad := r.unreachable(); len(bad) > 0 {
				return fmt.Errorf("check: %d channel(s) could not be joined: %s", len(bad), strings.Join(bad, " "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, false)
	f.DurationVar(&settle, "settle", 1500*time.Millisecond, "how long to listen to heartbeats before listing members")
	f.DurationVar(&joinTimeout, "join-timeout", 5*time.Second, "how long joining one channel may take")
	f.BoolVar(&asJSON, "json", false, "print one JSON document")
	return cmd
}

// checkReport is what check found.
type checkReport struct {
	Server        string            `json:"server"`
	Namespace     string            `json:"namespace"`
	Nick          string            `json:"nick"`
	Network       string            `json:"network,omitempty"`
	ConnectMillis float64           `json:"connect_ms"`
	RTTMillis     float64           `json:"round_trip_ms"`
	Caps          []string          `json:"caps"`
	ISupport      map[string]string `json:"isupport"`
	Carrier       string            `json:"carrier"`
	Echo          bool              `json:"echo"`
	Limits        struct {
		LineLen  int `json:"linelen"`
		ChanLen  int `json:"channellen"`
		NickLen  int `json:"nicklen"`
		TagBytes int `json:"tag_bytes"`
		Body     int `json:"body_bytes"`
	} `json:"limits"`
	Prefix      string         `json:"prefix"`
	ChatHistory string         `json:"chathistory,omitempty"`
	Members     []string       `json:"members"`
	Channels    []checkChannel `json:"channels"`
}

type checkChannel struct {
	Channel    string  `json:"channel"`
	Source     string  `json:"source"` // list, heartbeat, both, system
	Joined     bool    `json:"joined"`
	JoinMillis float64 `json:"join_ms,omitempty"`
	Error      string  `json:"error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// gather fills the report from the connected node.
func (r *checkReport) gather(ctx context.Context, n *mesh.Node, settle, joinTimeout time.Duration) error {
	info, ok := n.ServerInfo()
	if !ok {
		return fmt.Errorf("the connection dropped while checking")
	}
	r.Caps, r.ISupport, r.Echo, r.Prefix = info.Caps, info.ISupport, info.Echo, info.Prefix
	r.Network, r.ChatHistory = info.ISupport["NETWORK"], info.ISupport["CHATHISTORY"]
	r.Carrier = "body"
	if info.Carrier == envelope.CarrierTag {
		r.Carrier = "tag"
	}
	r.Limits.LineLen, r.Limits.ChanLen, r.Limits.NickLen = info.LineLen, info.ChanLen, info.NickLen
	r.Limits.Body = info.BodyBytes
	if info.Carrier == envelope.CarrierTag {
		r.Limits.TagBytes = info.TagBytes
	}

	t0 := time.Now()
	topics, err := n.Topics(ctx)
	if err != nil {
		return err
	}
	r.RTTMillis = ms(time.Since(t0))

	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	source := map[string]string{}
	for _, t := range topics {
		source[t] = "list"
	}
	for _, m := range n.Members("") {
		if m.Nick == n.Nick() {
			continue
		}
		r.Members = append(r.Members, m.ID())
		for _, s := range m.Beat.Subs {
			switch source[s.Topic] {
			case "":
				source[s.Topic] = "heartbeat"
			case "list":
				source[s.Topic] = "both"
			}
		}
	}
	slices.Sort(r.Members)
	hb := strings.TrimPrefix(mesh.HeartbeatChannel(n.Namespace()), mesh.Channel(n.Namespace(), ""))
	source[hb] = "system"

	// Join every channel (in parallel: a server may be slow on each).
	names := slices.Sorted(func(yield func(string) bool) {
		for t := range source {
			if !yield(t) {
				return
			}
		}
	})
	r.Channels = make([]checkChannel, len(names))
	var wg sync.WaitGroup
	for i, t := range names {
		r.Channels[i] = checkChannel{Channel: mesh.Channel(n.Namespace(), t), Source: source[t]}
		wg.Go(func() {
			c := &r.Channels[i]
			jctx, cancel := context.WithTimeout(ctx, joinTimeout)
			defer cancel()
			start := time.Now()
			o, err := n.Observe(jctx, t, func(mesh.Observation) {})
			if err != nil {
				c.Error = fmt.Sprintf("not joined within %s (invite-only, keyed, banned, or the server is slow)", joinTimeout)
				if ctx.Err() == nil && jctx.Err() == nil {
					c.Error = err.Error()
				}
				return
			}
			o.Stop()
			c.Joined, c.JoinMillis = true, ms(time.Since(start))
		})
	}
	wg.Wait()
	return ctx.Err()
}

func (r *checkReport) unreachable() []string {
	var bad []string
	for _, c := range r.Channels {
		if !c.Joined {
			bad = append(bad, c.Channel)
		}
	}
	return bad
}

func (r *checkReport) print(w io.Writer) {
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "%-12s %s\n", k, fmt.Sprintf(format, args...)) }
	network := ""
	if r.Network != "" {
		network = ", network " + r.Network
	}
	row("server", "%s%s: connected and registered in %.0f ms as %s", r.Server, network, r.ConnectMillis, r.Nick)
	row("round trip", "%.2f ms (LIST)", r.RTTMillis)
	row("caps", "%s", orNone(strings.Join(r.Caps, " ")))
	if r.Carrier == "tag" {
		row("carrier", "tag: envelopes ride in the client tag +meshbot/e, with a short summary as the text")
	} else {
		row("carrier", "body: envelopes ride in the message text behind ~m1 (the server relays no client tags)")
	}
	if r.Echo {
		row("confirms", "echo-message: a publish is confirmed by the server's echo of each line")
	} else {
		row("confirms", "PING: a publish is confirmed by the answer to a PING written after its lines")
	}
	row("limits", "LINELEN %d, CHANNELLEN %d, NICKLEN %d (ISUPPORT: %s)", r.Limits.LineLen, r.Limits.ChanLen, r.Limits.NickLen, isupportText(r.ISupport))
	if r.Limits.TagBytes > 0 {
		row("line budget", "%d B of tag data and %d B of text per line (as %s)", r.Limits.TagBytes, r.Limits.Body, r.Prefix)
	} else {
		row("line budget", "%d B of text per line (as %s); larger envelopes are split into fragments", r.Limits.Body, r.Prefix)
	}
	if r.ChatHistory != "" {
		row("history", "CHATHISTORY (up to %s lines): replay works without a recorder", r.ChatHistory)
	} else {
		row("history", "no CHATHISTORY: replay and catch-up need a recorder (meshbot history)")
	}
	row("members", "%d in namespace %s: %s", len(r.Members), r.Namespace, orNone(strings.Join(r.Members, ", ")))
	for i, c := range r.Channels {
		k := ""
		if i == 0 {
			k = "channels"
		}
		state := fmt.Sprintf("joined in %.0f ms", c.JoinMillis)
		if !c.Joined {
			state = "NOT JOINED: " + c.Error
		}
		fmt.Fprintf(w, "%-12s %-32s %-10s %s\n", k, c.Channel, c.Source, state)
	}
	if bad := r.unreachable(); len(bad) == 0 {
		fmt.Fprintln(w, "ok: the server is reachable and every channel of the namespace can be joined")
	}
}

// isupportText lists the tokens that matter to meshbot, as announced.
func isupportText(m map[string]string) string {
	var out []string
	for _, k := range []string{"LINELEN", "CHANNELLEN", "NICKLEN", "CHATHISTORY", "ELIST", "NETWORK", "CASEMAPPING"} {
		if v, ok := m[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return orNone(strings.Join(out, " "))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

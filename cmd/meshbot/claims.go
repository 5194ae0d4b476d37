package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/claimsview"
	"github.com/meshbot/meshbot/internal/wait"
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
				watch: claimsview.NewWatch(topic, group, envelope.Sender{Service: n.Service(), Instance: n.Instance()}),
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
	watch                      *claimsview.Watch
	printed                    bool // a table was printed
}

func (r *claimsRun) run(ctx context.Context) error {
	start := time.Now()
	w := r.watch
	o, err := observe(ctx, r.n, w.Topic(), func(ob mesh.Observation) {
		if ob.Envelope != nil && ob.Err == nil {
			w.Line(claims.Received{Envelope: ob.Envelope, From: ob.From, ServerTime: ob.Time, MsgID: ob.MsgID}, time.Now())
		}
	})
	if err != nil {
		if r.follow && ctx.Err() != nil {
			return nil
		}
		return interrupted(ctx, fmt.Errorf("watching %s: %w", w.Topic(), err))
	}
	defer o.stop()
	stopped := func() error {
		if r.follow {
			return nil
		}
		return fmt.Errorf("interrupted")
	}
	if !wait.Sleep(ctx, claimsSettle) {
		return stopped()
	}
	all := r.n.AllMembers()
	if w.Group() == "" {
		g, err := w.DefaultGroup(all)
		if err != nil {
			return groupUsage(err)
		}
		w.SetGroup(g)
	}
	w.Start(all, time.Now())

	t := time.NewTicker(claimsTick)
	defer t.Stop()
	next := start.Add(r.watchFor)
	if r.follow {
		next = time.Now()
		fmt.Fprintf(r.st.env.stderr, "meshbot: watching group %s of %s on %s as %s; Ctrl-C to stop\n", w.Group(), r.channel, r.server, r.n.Nick())
	}
	for {
		now := time.Now()
		w.Tick(r.n.AllMembers(), now)
		if !now.Before(next) {
			doc := w.Doc(now)
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
	claimsview.WriteTable(&b, doc)
	r.printed = true
	_, err := io.WriteString(r.w, b.String())
	return err
}

// groupUsage turns the view's "which group?" error into the command's
// usage error, naming the flag that answers it.
func groupUsage(err error) error {
	var ge *claimsview.GroupError
	if !errors.As(err, &ge) {
		return err
	}
	if len(ge.Groups) == 0 {
		return usagef("claims: %v; give --group", ge)
	}
	return usagef("claims: %v; choose one with --group", ge)
}

// isTerminalWriter reports whether w is an interactive terminal.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// The view itself is internal/claimsview's (the console's claims command
// shows the same).
type (
	claimsDoc       = claimsview.Doc
	claimsEventView = claimsview.EventView
)

// durationShort renders an age: "0.4s", "12.0s", "3m5s".
func durationShort(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

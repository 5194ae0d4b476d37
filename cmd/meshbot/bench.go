package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/internal/bench"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/mesh"
)

// Workloads of meshbot bench, as positional arguments.
const (
	benchPubSub  = "pubsub"
	benchRequest = "request"
)

func newBenchCmd(st *state) *cobra.Command {
	var (
		conn        connFlags
		spec        string
		fan         bench.Fanout
		requests    int
		outstanding []int
		duration    time.Duration
		jsonOut     bool
		progress    string
	)
	cmd := &cobra.Command{
		Use:   "bench [pubsub] [request]",
		Short: "Measure meshbot against the raw IRC line rate of the same server",
		Long: `Measure meshbot on an IRC server and, in the same run on the same server,
what bare IRC clients do there: the physical limit meshbot is compared with.

  pubsub   publish/subscribe: --pubs publisher nodes send --msgs messages
           of --size bytes to --subs subscriber nodes (with --anycast: to
           --subs workers of one anycast group, each message handled by
           one). Raw IRC: as many bare clients writing PRIVMSG lines of the
           same size to a channel, with meshbot's flow control (a PING
           every 100 lines, 2 windows unconfirmed), and bare subscribers.
           Figure: messages/s per subscriber (anycast: handled per second).
  request  request/response: a client node keeps --outstanding requests of
           --size bytes in flight to a node that echoes them, --requests
           in all. Raw IRC: a bare client's private messages echoed by
           another, as many in flight. Figures: latency p50, p90, p99 and
           max, and round trips/s. --outstanding 1,16 runs both.

With no workload named, both run. Each side warms up, then is measured;
a measurement stops after its count or --duration, whichever comes first.
Progress goes to stderr (one line rewritten in place on a terminal, plain
lines otherwise); the result goes to stdout as a table, or as JSON with
--json. Ctrl-C stops the run and prints what was measured until then.

Without --server the bench starts its own IRC server on a free port of
127.0.0.1 (InspIRCd, or --ircd) and stops it at the end. Against another
server, the bench's bots join channels named #bench-raw-ID and
#NAMESPACE.fID (a random ID per run) and QUIT when done.

For the same workloads on NATS in one table, see bench/nats (make
bench-peer); figures and how they were made: docs/performance.md.`,
		Example: `  meshbot bench --msgs 2000 --requests 200
  meshbot bench pubsub --subs 3
  meshbot bench pubsub --anycast --subs 3 --msgs 30000
  meshbot bench request --outstanding 1,16 --json
  meshbot bench --server 127.0.0.1:6667 --duration 10s
  meshbot bench --ircd ergo:$HOME/bin/ergo`,
		Args: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a != benchPubSub && a != benchRequest {
					return usagef("bench: unknown workload %q: want %s or %s", a, benchPubSub, benchRequest)
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			external := cmd.Flags().Changed("server")
			if external && cmd.Flags().Changed("ircd") {
				return usagef("bench: --server uses a running server; --ircd is for the one the bench starts")
			}
			if duration < 0 {
				return usagef("bench: --duration must not be negative")
			}
			live, showProgress, err := benchProgressMode(progress, st)
			if err != nil {
				return err
			}
			fan.Duration = duration
			plan := bench.Plan{}
			all := len(args) == 0
			if all || slices.Contains(args, benchPubSub) {
				if err := fan.Validate(); err != nil {
					return usageError{err}
				}
				plan.Fanout = append(plan.Fanout, fan)
			}
			if all || slices.Contains(args, benchRequest) {
				for _, o := range outstanding {
					w := bench.Requests{Outstanding: o, Size: fan.Size, Count: requests, Duration: duration}
					if err := w.Validate(); err != nil {
						return usageError{err}
					}
					plan.Requests = append(plan.Requests, w)
				}
			}
			ctx := cmd.Context()
			var prog *bench.Progress
			if showProgress {
				prog = bench.NewProgress(st.env.stderr, live)
			}

			name := ""
			if !external {
				sp, err := ircd.ParseSpec(spec)
				if err != nil {
					return usageError{err}
				}
				prog.Note("starting %s…", sp.Kind)
				sctx, cancel := context.WithTimeout(ctx, demoStartMax)
				srv, err := ircd.Start(sctx, sp, ircd.Options{})
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return nil // Ctrl-C while starting: a clean stop
					}
					return fmt.Errorf("starting the bench's IRC server: %w", err)
				}
				defer func() {
					if err := srv.Stop(); err != nil {
						fmt.Fprintf(st.env.stderr, "meshbot bench: stopping %s: %v\n", srv, err)
					}
				}()
				conn.server = srv.Addr()
				name = fmt.Sprintf("%s started by meshbot bench at %s", srv.Kind(), srv.Addr())
			}
			env, err := benchEnv(st, &conn)
			if err != nil {
				return err
			}
			if name == "" {
				name = "IRC server at " + env.Server
			}
			report := bench.Run(ctx, env, name, plan, prog)
			prog.Close()
			if jsonOut {
				err = report.WriteJSON(st.env.stdout)
			} else {
				err = report.WriteText(st.env.stdout)
			}
			if err != nil {
				return err
			}
			if len(report.Errors) > 0 {
				return fmt.Errorf("bench: %s", strings.Join(report.Errors, "; "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, false)
	// The bench's own namespace, so that its bots never mix with a mesh's.
	ns := f.Lookup("namespace")
	ns.DefValue, conn.namespace = "bench", "bench"
	_ = f.MarkHidden("drain-timeout") // the bench closes its nodes itself
	f.StringVar(&spec, "ircd", "", `IRC server to start when --server is not given, as in MESH_IRCD: "inspircd" (the default), "ngircd", "ergo", or KIND:/path/to/binary`)
	bindEnv(f, "ircd", ircd.EnvVar)
	f.IntVar(&fan.Pubs, "pubs", 1, "pubsub: publishers (nodes; raw: bare clients)")
	f.IntVar(&fan.Subs, "subs", 3, "pubsub: subscribers, or anycast workers with --anycast")
	f.IntVar(&fan.Size, "size", 200, "payload bytes of a message, request and response")
	f.IntVar(&fan.Msgs, "msgs", 100000, "pubsub: messages published in all (each subscriber gets them all)")
	f.BoolVar(&fan.Anycast, "anycast", false, "pubsub: the subscribers are workers of one anycast group (each message handled once)")
	f.IntVar(&requests, "requests", 10000, "request: round trips in all, per --outstanding value")
	f.IntSliceVar(&outstanding, "outstanding", []int{1}, "request: requests in flight at once; several, comma-separated, run one after the other")
	f.DurationVar(&duration, "duration", 30*time.Second, "stop a measurement after this long even if its count is not reached (0: no limit)")
	f.BoolVar(&jsonOut, "json", false, "print the result as JSON instead of a table")
	f.StringVar(&progress, "progress", "auto", "progress on stderr: auto (in place on a terminal, plain lines otherwise), live, plain or none")
	return cmd
}

// benchProgressMode reads --progress: whether to show progress, and
// whether in place.
func benchProgressMode(mode string, st *state) (live, show bool, err error) {
	switch mode {
	case "auto":
		return isTerminalWriter(st.env.stderr), true, nil
	case "live":
		return true, true, nil
	case "plain":
		return false, true, nil
	case "none":
		return false, false, nil
	}
	return false, false, usagef("bench: --progress is auto, live, plain or none")
}

// benchEnv is the server of the connection flags, for raw clients and
// nodes alike (unsigned nodes in the bench's namespace).
func benchEnv(st *state, conn *connFlags) (bench.Env, error) {
	base, err := conn.config(st, "bench", "")
	if err != nil {
		return bench.Env{}, err
	}
	if len(base.Servers) > 0 {
		return bench.Env{}, usagef("bench: --server names one server")
	}
	return bench.Env{
		Server: base.Server,
		TLS:    base.TLS,
		Node: func(service string) mesh.Config {
			cfg, _ := conn.config(st, service, "") // checked above
			cfg.AllowUnsigned = true
			return cfg
		},
	}, nil
}

// Command nats runs the workloads of `meshbot bench` on meshbot, on raw
// IRC and on NATS core, one after the other on one machine, and prints one
// table: workload, meshbot, raw IRC, NATS, and meshbot's ratios to each.
//
// meshbot and raw IRC run on an IRC server the command starts from the
// test harness (internal/ircd: InspIRCd by default, MESH_IRCD=ngircd or
// MESH_IRCD=ergo:/path/to/ergo for another); NATS on a nats-server
// embedded in the process. It is a module of its own so that meshbot's
// module does not depend on NATS.
//
//	cd bench/nats && go run .                  # or: make bench-peer
//	cd bench/nats && go run . -json
//	MESH_IRCD=ergo:$HOME/bin/ergo go run .
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the comparison and prints its table (or JSON) on
// stdout and its progress on stderr. It returns the exit code: 0 on
// success, also when interrupted; 1 when a workload failed; 2 on bad
// arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.size, "size", 200, "payload bytes of a message, request and response")
	fs.IntVar(&o.subs, "subs", 3, "subscribers (multicast) and workers (anycast)")
	fs.IntVar(&o.msgs, "msgs", 100000, "messages per pub/sub measurement")
	fs.IntVar(&o.requests, "requests", 10000, "round trips per request/response measurement")
	outstanding := fs.String("outstanding", "1,16", "requests in flight, comma-separated: a workload each")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "stop a measurement after this long (0: at its count only)")
	jsonOut := fs.Bool("json", false, "print the result as JSON instead of a table")
	progress := fs.String("progress", "plain", "progress on stderr: plain, live (one line rewritten in place) or none")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run . [flags]\n\n"+
			"Runs pub/sub 1→N multicast and anycast, and request/response with each\n"+
			"--outstanding, on meshbot, raw IRC (the server MESH_IRCD names, InspIRCd\n"+
			"by default) and an embedded nats-server, and prints one table.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	for _, s := range strings.Split(*outstanding, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(stderr, "nats: -outstanding %q: want numbers, comma-separated\n", *outstanding)
			return 2
		}
		o.outstanding = append(o.outstanding, n)
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(stderr, "nats:", err)
		return 2
	}
	switch *progress {
	case "plain", "live":
		o.progress = newProgress(stderr, *progress == "live")
	case "none":
	default:
		fmt.Fprintf(stderr, "nats: -progress %q: want plain, live or none\n", *progress)
		return 2
	}

	rep, err := compare(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "nats:", err)
		return 1
	}
	if *jsonOut {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "nats:", err)
		return 1
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintln(stderr, "nats: "+strings.Join(rep.Errors, "; "))
		return 1
	}
	return 0
}

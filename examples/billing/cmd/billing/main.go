// Command billing runs the billing service (package billing) on a mesh:
//
//	go run ./examples/billing/cmd/billing --server 127.0.0.1:6667
//
// next to the demo (meshbot demo) it charges the demo's orders.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/meshbot/meshbot/examples/billing"
	"github.com/meshbot/meshbot/mesh"
)

func main() {
	cfg := mesh.DefaultConfig()
	flag.StringVar(&cfg.Server, "server", cfg.Server, "IRC server as host:port")
	flag.StringVar(&cfg.Namespace, "namespace", cfg.Namespace, "mesh namespace")
	flag.StringVar(&cfg.Instance, "instance", "", "instance id (random when empty)")
	flag.Parse()
	cfg.Service = "billing"

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "billing:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg mesh.Config) error {
	n, err := mesh.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(cctx)
	}()
	if err := billing.Register(ctx, n); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "billing: %s charges %s on %s; Ctrl-C stops\n", n.Nick(), billing.OrdersTopic, cfg.Server)
	<-ctx.Done()
	return nil
}

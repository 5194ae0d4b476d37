// Command router runs a Watermill router over meshbot: two instances of a
// billing service share the orders of a topic as one consumer group, each
// behind the retry, poison-queue and recoverer middlewares, and an audit
// handler reads what ends in the poison queue.
//
//	meshbot demo                      # or any IRC server set up for bots
//	go run ./examples/router -server 127.0.0.1:6667
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"time"
)

func main() {
	var o Options
	flag.StringVar(&o.Server, "server", "127.0.0.1:6667", "IRC server (host:port)")
	flag.StringVar(&o.Namespace, "namespace", "shop", "mesh namespace")
	flag.IntVar(&o.Orders, "orders", 20, "orders to publish")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := Run(ctx, o, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

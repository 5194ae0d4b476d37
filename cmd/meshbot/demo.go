package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/mesh/meshprom"
)

const (
	demoTopic    = "orders.created"
	demoDefPort  = 6667
	demoStartMax = 60 * time.Second // starting the server and connecting the bots
)

func newDemoCmd(st *state) *cobra.Command {
	var (
		conn        connFlags
		spec        string
		port        int
		duration    time.Duration
		interval    time.Duration
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a small mesh on a local IRC server and show its traffic",
		Long: `Start a throwaway IRC server on 127.0.0.1 (InspIRCd by default) and run a
small mesh on it, in this process:

  orders   publishes an order on the topic orders.created every 300 ms,
           after asking pricing for a quote (a request by private message);
           every 7th order names an item pricing does not sell, to show a
           typed error coming back
  pricing  answers the quote requests
  audit    two instances subscribe to orders.created; each gets every
           order (multicast) and records it

and print what happens: lines with a topic are what the channel carries,
decoded as 'meshbot tail' prints them; lines with [nick] are what the
services log. The first line says how to watch the same traffic from any IRC
client. The demo runs until Ctrl-C (or --duration), then stops the bots and
the server.

With --server the demo uses that server instead of starting one. (The demo
ignores MESHBOT_SERVER, so that it never runs against your own mesh by
accident.)`,
		Example: `  meshbot demo
  meshbot demo --duration 10s
  meshbot demo --ircd ngircd                  # the body carrier: no message tags
  meshbot demo --ircd ergo:$HOME/bin/ergo
  meshbot demo --server 127.0.0.1:6667        # an IRC server you run
  meshbot demo --metrics-addr 127.0.0.1:9464  # then: curl 127.0.0.1:9464/metrics`,
		Args: nargs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			external := cmd.Flags().Changed("server")
			if external && (cmd.Flags().Changed("ircd") || cmd.Flags().Changed("port")) {
				return usagef("demo: --server uses a running server; --ircd and --port are for the one the demo starts")
			}
			if interval <= 0 {
				return usagef("demo: --interval must be positive")
			}
			d := &demo{st: st, conn: &conn, interval: interval, out: &printer{w: st.env.stdout}}
			if metricsAddr != "" {
				m, err := listenMetrics(metricsAddr)
				if err != nil {
					return err
				}
				defer m.stop()
				d.metrics = m
			}
			ctx := cmd.Context()
			addr := conn.server
			if !external {
				sp, err := ircd.ParseSpec(spec)
				if err != nil {
					return usageError{err}
				}
				srv, err := d.startServer(ctx, sp, port, cmd.Flags().Changed("port"))
				if err != nil {
					if ctx.Err() != nil {
						return nil // Ctrl-C while starting: a clean stop
					}
					return err
				}
				defer func() {
					if err := srv.Stop(); err != nil {
						fmt.Fprintf(st.env.stderr, "meshbot demo: stopping %s: %v\n", srv, err)
					}
				}()
				addr, d.serverName = srv.Addr(), string(srv.Kind())
			}
			return d.run(ctx, addr, duration)
		},
	}
	f := cmd.Flags()
	conn.add(f, false)
	f.StringVar(&spec, "ircd", "", `IRC server to start, as in MESH_IRCD: "inspircd" (the default), "ngircd", "ergo", or KIND:/path/to/binary`)
	bindEnv(f, "ircd", ircd.EnvVar)
	f.IntVar(&port, "port", demoDefPort, "port of the server the demo starts (another free one if 6667 is taken; 0: any free port)")
	f.DurationVar(&duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	f.DurationVar(&interval, "interval", 300*time.Millisecond, "time between two orders")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics of the demo's bots at http://ADDR/metrics (host:port)")
	return cmd
}

// demo is one run of the demo mesh.
type demo struct {
	st         *state
	conn       *connFlags
	interval   time.Duration
	out        *printer
	metrics    *metricsServer
	serverName string

	orders, pricing, watch *mesh.Node
	audits                 []*mesh.Node

	published, quoted, refused atomic.Uint64
	recorded                   []atomic.Uint64 // per audit instance
}

func (d *demo) startServer(ctx context.Context, spec ircd.Spec, port int, portSet bool) (*ircd.Server, error) {
	if !portSet && port == demoDefPort && !portFree(port) {
		fmt.Fprintf(d.st.env.stderr, "meshbot demo: port %d is taken; using another one\n", port)
		port = 0
	}
	fmt.Fprintf(d.st.env.stderr, "meshbot demo: starting %s…\n", spec.Kind)
	sctx, cancel := context.WithTimeout(ctx, demoStartMax)
	defer cancel()
	srv, err := ircd.Start(sctx, spec, ircd.Options{Port: port})
	if err != nil {
		return nil, fmt.Errorf("starting the demo's IRC server: %w", err)
	}
	return srv, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func (d *demo) run(ctx context.Context, addr string, duration time.Duration) error {
	if err := d.connect(ctx, addr); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := d.setup(ctx); err != nil {
		d.close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	host, portStr, _ := net.SplitHostPort(addr)
	ns := d.orders.Namespace()
	where := "the IRC server at " + addr
	if d.serverName != "" {
		where = d.serverName + " at " + addr
	}
	d.out.print(fmt.Sprintf("meshbot demo: a mesh on %s. Watch it from any IRC client: connect to %s port %s, then /join %s,%s",
		where, host, portStr, mesh.Channel(ns, demoTopic), mesh.HeartbeatChannel(ns)))
	d.out.print(fmt.Sprintf("  orders publishes on %s every %s after a quote from pricing; audit-1 and audit-2 record every order. Ctrl-C stops.",
		demoTopic, d.interval))

	runCtx := ctx
	if duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	d.orderLoop(runCtx)
	d.close()
	d.out.print(d.summary())
	return nil
}

// connect connects the demo's bots in parallel (InspIRCd registers a
// client about once a second).
func (d *demo) connect(ctx context.Context, addr string) error {
	type bot struct {
		service, instance string
		node              **mesh.Node
	}
	d.conn.server = addr
	d.audits = make([]*mesh.Node, 2)
	d.recorded = make([]atomic.Uint64, len(d.audits))
	bots := []bot{
		{"orders", "1", &d.orders},
		{"pricing", "1", &d.pricing},
		{"audit", "1", &d.audits[0]},
		{"audit", "2", &d.audits[1]},
		{"tail", "1", &d.watch},
	}
	ctx, cancel := context.WithTimeout(ctx, demoStartMax)
	defer cancel()
	errs := make([]error, len(bots))
	var wg sync.WaitGroup
	for i, b := range bots {
		wg.Go(func() {
			cfg, err := d.conn.config(d.st, b.service, b.instance)
			if err != nil {
				errs[i] = err
				return
			}
			*b.node, errs[i] = d.conn.connect(ctx, cfg)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			d.close()
			return err // the first: they are usually all the same
		}
	}
	if d.metrics != nil {
		for _, n := range d.nodes() {
			if err := d.metrics.register(meshprom.NewCollector(n)); err != nil {
				return err
			}
		}
		d.metrics.serve(d.st)
	}
	return nil
}

func (d *demo) nodes() []*mesh.Node {
	var out []*mesh.Node
	for _, n := range append([]*mesh.Node{d.orders, d.pricing, d.watch}, d.audits...) {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// close stops the publisher first, then the others (letting them handle
// what was published), each within the drain timeout.
func (d *demo) close() {
	if d.orders != nil {
		d.conn.closeNode(d.st, d.orders)
	}
	var wg sync.WaitGroup
	for _, n := range d.nodes() {
		if n != d.orders {
			wg.Go(func() { d.conn.closeNode(d.st, n) })
		}
	}
	wg.Wait()
}

// order is what orders asks a quote for and publishes.
type order struct {
	Order int    `json:"order"`
	Item  string `json:"item"`
	Qty   int    `json:"qty"`
	Total string `json:"total,omitempty"`
}

// menu holds pricing's prices, in cents.
var menu = map[string]int{"tea": 350, "coffee": 420, "scone": 275, "bagel": 310}

var menuOrder = []string{"tea", "coffee", "scone", "bagel"}

func cents(c int) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func (d *demo) log(n *mesh.Node, format string, args ...any) {
	d.out.print(fmt.Sprintf("%s    [%s] %s", time.Now().Format("15:04:05.000"), n.Nick(), fmt.Sprintf(format, args...)))
}

// setup installs the handlers and waits until orders sees its peers.
func (d *demo) setup(ctx context.Context) error {
	err := d.pricing.Handle("quote", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		var o order
		if err := json.Unmarshal(r.Payload, &o); err != nil {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "not an order: %v", err)
		}
		price, ok := menu[o.Item]
		if !ok {
			d.log(d.pricing, "quote for order #%d: no such item %q", o.Order, o.Item)
			return nil, mesh.Errorf(mesh.CodeBadRequest, "we do not sell %q", o.Item)
		}
		o.Total = cents(price * o.Qty)
		d.quoted.Add(1)
		d.log(d.pricing, "quote for order #%d: %d × %s @ %s = %s", o.Order, o.Qty, o.Item, cents(price), o.Total)
		return json.Marshal(o)
	})
	if err != nil {
		return err
	}
	for i, a := range d.audits {
		_, err := a.Subscribe(ctx, demoTopic, func(_ context.Context, m *mesh.Message) error {
			var o order
			if err := json.Unmarshal(m.Payload, &o); err != nil {
				return err
			}
			d.recorded[i].Add(1)
			d.log(a, "recorded order #%d (%s) from %s: %s", o.Order, m.ID.Short(), m.From, o.Total)
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: subscribing to %s: %w", a.Nick(), demoTopic, err)
		}
	}
	if _, err := d.watch.Observe(ctx, demoTopic, d.out.observation); err != nil {
		return fmt.Errorf("watching %s: %w", demoTopic, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return d.orders.WaitFor(wctx, "pricing", "audit")
}

// orderLoop places an order every interval until ctx ends.
func (d *demo) orderLoop(ctx context.Context) {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for n := 1; ; n++ {
		d.placeOrder(ctx, n)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *demo) placeOrder(ctx context.Context, n int) {
	o := order{Order: n, Item: menuOrder[n%len(menuOrder)], Qty: 1 + n%3}
	if n%7 == 0 {
		o.Item = "unicorn"
	}
	req, _ := json.Marshal(o)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	answer, err := d.orders.Request(rctx, "pricing", "quote", req, mesh.WithRequestHeaders(envelope.Headers{ContentType: "application/json"}))
	var re *mesh.RemoteError
	switch {
	case ctx.Err() != nil:
		return
	case errors.As(err, &re):
		d.refused.Add(1)
		d.log(d.orders, "order #%d: %s-%s refused the quote with error %d (%s); not published", n, re.Service, re.Instance, re.Code, re.Message)
		return
	case err != nil:
		d.log(d.orders, "order #%d: no quote: %v", n, err)
		return
	}
	if err := json.Unmarshal(answer, &o); err != nil {
		d.log(d.orders, "order #%d: bad quote: %v", n, err)
		return
	}
	payload, _ := json.Marshal(o)
	ack, err := d.orders.Publish(ctx, demoTopic, payload, mesh.WithContentType("application/json"))
	if err != nil {
		if ctx.Err() == nil {
			d.log(d.orders, "order #%d: publish failed: %v", n, err)
		}
		return
	}
	d.published.Add(1)
	d.log(d.orders, "order #%d: %d × %s, quoted %s → published %s", n, o.Qty, o.Item, o.Total, ack.ID.Short())
}

// summary is printed once the bots are closed.
func (d *demo) summary() string {
	s := fmt.Sprintf("meshbot demo: %d orders published, %d quoted by pricing, %d refused", d.published.Load(), d.quoted.Load(), d.refused.Load())
	for i := range d.recorded {
		s += fmt.Sprintf("; %s recorded %d", d.audits[i].Nick(), d.recorded[i].Load())
	}
	return s + " (multicast: every audit instance gets every order)"
}

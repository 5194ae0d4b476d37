package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/console"
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

  orders   every 300 ms asks pricing for a quote (a request by private
           message) and publishes the quoted order on the topic
           orders.created; every 7th order names an item pricing does not
           sell, to show a typed error coming back. It declares that it
           depends on pricing (see 'meshbot members').
  pricing  answers the quote requests
  audit    two instances subscribe to orders.created (multicast): each
           records every order
  billing  two instances subscribe to orders.created as one anycast group:
           each order is charged exactly once, by one of them

The mesh is signed: the demo makes a mesh key (HMAC) for the run, every bot
signs with it and refuses what is not signed with it, so a stranger on the
server cannot speak for a service. The key file is written to a temporary
directory, removed when the demo stops; the demo prints the line that lets
the commands of another terminal use it.

It prints what happens, in time order: lines with a topic are what the
channel carries, decoded as 'meshbot tail' prints them; "DM pricing.quote"
lines are the requests and their answers; lines with [nick] are what the
services log. The first lines say what to type in any IRC client to watch
the same traffic and ask the bots (every bot answers /msg NICK help; on the
demo's own server anyone may ask pricing a quote), and what to try from
another terminal. The demo runs until
Ctrl-C (or --duration), then stops the bots and the server and sums up
what the mesh did.

The demo's server listens on port 6667, or on another free port when 6667
is taken; an explicit --port that is taken is an error. With --server the
demo uses that server instead of starting one. (The demo ignores
MESHBOT_SERVER, so that it never runs against your own mesh by accident.)`,
		Example: `  meshbot demo
  meshbot demo --duration 10s
  meshbot demo --ircd ngircd                  # the body carrier: no message tags
  meshbot demo --ircd ergo:$HOME/bin/ergo
  meshbot demo --server 127.0.0.1:6667        # an IRC server you run
  meshbot demo --metrics-addr 127.0.0.1:9464  # then: curl 127.0.0.1:9464/metrics

  # While it runs, from another terminal:
  meshbot tail orders.created
  meshbot req pricing quote '{"item":"tea","qty":2}'
  meshbot members
  meshbot claims orders.created --group billing
  meshbot check`,
		Args: nargs(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			external := cmd.Flags().Changed("server")
			if external && (cmd.Flags().Changed("ircd") || cmd.Flags().Changed("port")) {
				return usagef("demo: --server uses a running server; --ircd and --port are for the one the demo starts")
			}
			if interval <= 0 {
				return usagef("demo: --interval must be positive")
			}
			d := &demo{st: st, conn: &conn, interval: interval, out: &timeline{w: st.env.stdout}}
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
	f.IntVar(&port, "port", demoDefPort, "port of the server the demo starts (6667: another free one if it is taken; 0: any free port)")
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
	out        *timeline
	metrics    *metricsServer
	serverName string
	started    time.Time

	orders, pricing, watch *mesh.Node
	audits, billing        []*mesh.Node

	consoles []*console.Console

	keyDir string // the run's key files (demo_keys.go)
	signer envelope.Signer
	keys   *envelope.Keyring

	requests, published, quoted, refused atomic.Uint64
	recorded, charged                    []atomic.Uint64 // per audit, billing instance
}

func (d *demo) startServer(ctx context.Context, spec ircd.Spec, port int, portSet bool) (*ircd.Server, error) {
	if port != 0 && !portFree(port) {
		if portSet && port != demoDefPort {
			return nil, fmt.Errorf("port %d of 127.0.0.1 is taken by another process (another IRC server?): choose another --port, or --port 0 for any free one", port)
		}
		fmt.Fprintf(d.st.env.stderr, "meshbot demo: port %d is taken; using another one\n", port)
		port = 0
	}
	fmt.Fprintf(d.st.env.stderr, "meshbot demo: starting %s…\n", spec.Kind)
	sctx, cancel := context.WithTimeout(ctx, demoStartMax)
	defer cancel()
	srv, err := ircd.Start(sctx, spec, ircd.Options{Port: port})
	if errors.Is(err, ircd.ErrPortInUse) && port == demoDefPort && !portSet {
		// Taken between the check and the server's start.
		fmt.Fprintf(d.st.env.stderr, "meshbot demo: port %d is taken; using another one\n", port)
		srv, err = ircd.Start(sctx, spec, ircd.Options{})
	}
	if err != nil {
		if errors.Is(err, ircd.ErrPortInUse) {
			return nil, fmt.Errorf("starting the demo's IRC server: %w: choose another --port, or --port 0 for any free one", err)
		}
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
	if err := d.makeKeys(); err != nil { // a signed mesh, with keys of its own
		return err
	}
	defer os.RemoveAll(d.keyDir)
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
	where := "the IRC server at " + addr
	if d.serverName != "" {
		where = d.serverName + " at " + addr
	}
	d.attachConsoles()
	d.out.print(fmt.Sprintf("meshbot demo: a mesh on %s. Watch it and talk to it from any IRC client (irssi, weechat, HexChat):", where))
	d.out.print(d.ircLines(host, portStr))
	d.out.print(fmt.Sprintf("  orders asks pricing for a quote every %s, then publishes the order on %s; audit-1 and audit-2 record every order (multicast);\n"+
		"  billing-1 and billing-2 charge each order once (anycast). orders depends on pricing. Ctrl-C stops.", d.interval, demoTopic))
	d.out.print(d.keysNote())
	d.out.print(d.tryNext(addr))
	d.started = time.Now()
	runCtx := ctx
	if duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	d.orderLoop(runCtx)
	d.close()
	d.out.print(d.summary(addr))
	return nil
}

// ircLines are what a person types in an IRC client to watch the demo and
// ask it something (every bot answers /msg NICK help).
func (d *demo) ircLines(host, port string) string {
	ns := d.orders.Namespace()
	return fmt.Sprintf("    /connect %s %s\n    /join %s\n    /msg %s quote {\"item\":\"tea\",\"qty\":2}\n"+
		"  (/msg %s help lists what every bot answers; /join %s shows who is alive)",
		host, port, mesh.Channel(ns, demoTopic), d.pricing.Nick(), d.pricing.Nick(), mesh.HeartbeatChannel(ns))
}

// attachConsoles gives every service of the demo its IRC console. On the
// demo's own server anyone may act (ask pricing a quote, publish); on a
// server given with --server, only the mesh's operators.
func (d *demo) attachConsoles() {
	for _, n := range d.nodes() {
		if n == d.watch {
			continue
		}
		d.consoles = append(d.consoles, console.Attach(n, console.Config{TrustEveryone: d.serverName != "", Logger: d.st.log}))
	}
}

// tryNext lists commands to run against the demo from another terminal
// (addr "" for the default server).
func (d *demo) tryNext(addr string) string {
	flags := ""
	if addr != "" && addr != net.JoinHostPort("127.0.0.1", strconv.Itoa(demoDefPort)) {
		flags = " --server " + addr
	}
	if ns := d.orders.Namespace(); ns != "mesh" {
		flags += " --namespace " + ns
	}
	cmds := [][2]string{
		{"meshbot tail orders.created", "the channel, decoded"},
		{`meshbot req pricing quote '{"item":"tea","qty":2}'`, "ask pricing yourself"},
		{`meshbot pub orders.created '{"order":99,"item":"scone","qty":1}'`, "audit and billing take it"},
		{"meshbot members", "who is alive, and who depends on whom"},
		{"meshbot claims orders.created --group billing", "anycast claims in flight"},
		{"meshbot check", "the server as meshbot sees it"},
	}
	width := 0
	for _, c := range cmds {
		width = max(width, len(c[0]+flags))
	}
	lines := []string{"  Try, from another terminal:"}
	for _, c := range cmds {
		lines = append(lines, fmt.Sprintf("    %-*s  # %s", width, c[0]+flags, c[1]))
	}
	return strings.Join(lines, "\n")
}

// connect connects the demo's bots in parallel (InspIRCd registers a
// client about once a second).
func (d *demo) connect(ctx context.Context, addr string) error {
	type bot struct {
		service, instance string
		node              **mesh.Node
		depends           []string
	}
	d.conn.server = addr
	d.audits = make([]*mesh.Node, 2)
	d.billing = make([]*mesh.Node, 2)
	d.recorded = make([]atomic.Uint64, len(d.audits))
	d.charged = make([]atomic.Uint64, len(d.billing))
	bots := []bot{
		{"orders", "1", &d.orders, []string{"pricing"}},
		{"pricing", "1", &d.pricing, nil},
		{"audit", "1", &d.audits[0], nil},
		{"audit", "2", &d.audits[1], nil},
		{"billing", "1", &d.billing[0], nil},
		{"billing", "2", &d.billing[1], nil},
		{"tail", "1", &d.watch, nil},
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
			cfg.Depends = b.depends
			cfg.Signer, cfg.Keys, cfg.RequireSigned = d.signer, d.keys, true
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
	all := append([]*mesh.Node{d.orders, d.pricing, d.watch}, d.audits...)
	for _, n := range append(all, d.billing...) {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// close stops the publisher first, then the others (letting them handle
// what was published), each within the drain timeout.
func (d *demo) close() {
	for _, c := range d.consoles {
		c.Stop()
	}
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

// order is what orders asks a quote for and publishes. pricing reads
// item and qty (and echoes order back); total is its answer.
type order struct {
	Order int    `json:"order,omitempty"`
	Item  string `json:"item"`
	Qty   int    `json:"qty"`
	Total string `json:"total,omitempty"`
}

// menu holds pricing's prices, in cents.
var menu = map[string]int{"tea": 350, "coffee": 420, "scone": 275, "bagel": 310}

var menuOrder = []string{"tea", "coffee", "scone", "bagel"}

func cents(c int) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func (d *demo) log(n *mesh.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	nick := n.Nick()
	d.out.line(func(now time.Time) string {
		return fmt.Sprintf("%s    [%s] %s", now.Format(stampFormat), nick, msg)
	})
}

// dm prints a request or its answer as traffic, in the columns of the
// channel lines: "DM SERVICE.METHOD", the sender, the kind, the request's
// short id, the payload.
func (d *demo) dm(route, from, kind string, id envelope.ID, payload []byte, extra string) {
	d.out.line(func(now time.Time) string {
		var b strings.Builder
		b.WriteString(now.Format(stampFormat))
		b.WriteString("  ")
		pad(&b, "DM "+route, 16)
		pad(&b, from, 16)
		fmt.Fprintf(&b, "%-8s %s  %s", kind, id.Short(), payloadSummary(payload))
		if extra != "" {
			b.WriteString("  ")
			b.WriteString(extra)
		}
		return b.String()
	})
}

// payloadSummary shows a payload as tail does: text, or its size.
func payloadSummary(p []byte) string {
	if len(p) == 0 {
		return "(empty)"
	}
	s := clean(string(p))
	return clip(s, 160)
}

// quote is pricing's handler: it prices {"item":...,"qty":...}.
func (d *demo) quote(_ context.Context, r *mesh.Request) ([]byte, error) {
	d.requests.Add(1)
	route := "pricing." + r.Method
	d.dm(route, r.From, "request", r.ID, r.Payload, "")
	answer, err := priceOrder(r.Payload)
	me := d.pricing.Nick()
	if err != nil {
		d.refused.Add(1)
		d.dm(route, me, "answer", r.ID, nil, fmt.Sprintf("error=%d %q", mesh.CodeBadRequest, err.Error()))
		return nil, mesh.Errorf(mesh.CodeBadRequest, "%s", err.Error())
	}
	d.quoted.Add(1)
	d.dm(route, me, "answer", r.ID, answer, "")
	return answer, nil
}

// priceOrder prices an order given as JSON {"item":"tea","qty":2}.
func priceOrder(payload []byte) ([]byte, error) {
	var o order
	if err := json.Unmarshal(payload, &o); err != nil {
		return nil, fmt.Errorf(`not an order (want {"item":"tea","qty":2}): %v`, err)
	}
	price, ok := menu[o.Item]
	if !ok {
		return nil, fmt.Errorf("we do not sell %q (we sell %s)", o.Item, strings.Join(menuOrder, ", "))
	}
	if o.Qty <= 0 {
		return nil, fmt.Errorf("qty must be at least 1, not %d", o.Qty)
	}
	o.Total = cents(price * o.Qty)
	return json.Marshal(o)
}

// setup installs the handlers and waits until orders sees its peers.
func (d *demo) setup(ctx context.Context) error {
	if err := d.pricing.Handle("quote", d.quote); err != nil {
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
	for i, b := range d.billing {
		_, err := b.SubscribeAnycast(ctx, demoTopic, func(_ context.Context, m *mesh.Message) error {
			var o order
			if err := json.Unmarshal(m.Payload, &o); err != nil {
				return err
			}
			d.charged[i].Add(1)
			d.log(b, "charged order #%d (%s): %s, fencing token %d", o.Order, m.ID.Short(), o.Total, m.Claim.Token)
			return nil
		}, mesh.Group("billing"))
		if err != nil {
			return fmt.Errorf("%s: subscribing to %s: %w", b.Nick(), demoTopic, err)
		}
	}
	if _, err := d.watch.Observe(ctx, demoTopic, d.out.observation); err != nil {
		return fmt.Errorf("watching %s: %w", demoTopic, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return d.orders.WaitFor(wctx, "pricing", "audit", "billing")
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

// summary is printed once the bots are closed: what the mesh did, and
// what to try next.
func (d *demo) summary(addr string) string {
	ran := time.Since(d.started).Round(100 * time.Millisecond)
	var b strings.Builder
	fmt.Fprintf(&b, "meshbot demo: what the mesh did in %s:\n", ran)
	fmt.Fprintf(&b, "  requests   orders-1 asked pricing for %d quotes by private message: %d answered, %d refused with error %d (an item pricing does not sell)\n",
		d.requests.Load(), d.quoted.Load(), d.refused.Load(), mesh.CodeBadRequest)
	fmt.Fprintf(&b, "  events     %d orders published on %s\n", d.published.Load(), demoTopic)
	var rec, chg []string
	var charged uint64
	for i := range d.recorded {
		rec = append(rec, fmt.Sprintf("%s recorded %d", d.audits[i].Nick(), d.recorded[i].Load()))
	}
	for i := range d.charged {
		chg = append(chg, fmt.Sprintf("%s charged %d", d.billing[i].Nick(), d.charged[i].Load()))
		charged += d.charged[i].Load()
	}
	fmt.Fprintf(&b, "  multicast  %s (every instance of audit gets every order)\n", strings.Join(rec, "; "))
	fmt.Fprintf(&b, "  anycast    %s: %d charges for %d orders (each order is handled by one instance of the group)\n",
		strings.Join(chg, "; "), charged, d.published.Load())
	fmt.Fprintf(&b, "  members    orders, pricing, audit ×2, billing ×2 beat on %s every second; orders depends on pricing\n", mesh.HeartbeatChannel(d.orders.Namespace()))
	b.WriteString("Try next: run the demo again (make demo, or meshbot demo) and, while it runs, in another terminal\n" +
		"(after the export line it prints: each run makes its own mesh key):\n")
	if d.serverName != "" {
		addr = "" // the next demo's server may have another port
	}
	b.WriteString(strings.TrimPrefix(d.tryNext(addr), "  Try, from another terminal:\n"))
	b.WriteString("\nThen run your own service: meshbot serve --help (handlers in any language with --exec).")
	return b.String()
}

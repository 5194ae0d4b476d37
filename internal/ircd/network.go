package ircd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Topology is the shape of a network's spanning tree.
type Topology uint8

// The topologies StartNetwork builds.
const (
	// Chain links server i to server i+1: 0–1–2–…; the middle servers
	// carry the traffic between the ends.
	Chain Topology = iota + 1
	// Star links server 0 (the hub) to every other server.
	Star
)

func (t Topology) String() string {
	switch t {
	case Chain:
		return "chain"
	case Star:
		return "star"
	}
	return "topology(" + strconv.Itoa(int(t)) + ")"
}

// NetworkOptions tune StartNetwork.
type NetworkOptions struct {
	// Servers is how many servers (at least 2; default 3).
	Servers int
	// Topology is how they are linked (default Chain).
	Topology Topology
	// Options apply to every server; Port and ServerName must be zero
	// (the network picks them).
	Options Options
	// DelayedAcks leaves the links as InspIRCd has them: no TCP_NODELAY,
	// and the receiving server delays its ACKs, so a line can wait up to
	// 40 ms at each hop. By default the link proxies acknowledge at once,
	// as `ip route ... quickack 1` on the routes between servers does
	// (docs/performance.md).
	DelayedAcks bool
}

// NetworkServerName is the name of server i (from 0) of a network.
func NetworkServerName(i int) string { return fmt.Sprintf("s%d.meshbot.test", i+1) }

// netData fills the network section of the InspIRCd template.
type netData struct {
	Port                   int // this server's server-to-server port
	Links                  []netLink
	OperName, OperPassword string
}

// netLink is one link block of a network server.
type netLink struct {
	PeerName    string
	PeerPort    int // where the peer is reached: the link's proxy
	Password    string
	AutoConnect bool
}

// Network is a set of InspIRCd servers linked into a spanning tree over
// loopback, each link through a proxy the harness can cut (a netsplit)
// and heal. Servers can be killed, frozen and restarted. Its methods are
// safe for concurrent use; Stop ends everything it started.
type Network struct {
	spec     Spec
	topo     Topology
	servers  []*Server
	links    []*Link
	operName string
	operPass string

	mu     sync.Mutex
	admins []*admin // per server; nil or ended while it is down
}

// Link is one link of a network, between servers A and B (A < B): A
// connects to B through a proxy. Cut breaks it like a failing network;
// Heal lets it through again.
type Link struct {
	net   *Network
	A, B  int
	proxy *linkProxy
}

// StartNetwork starts opts.Servers InspIRCd servers linked as opts.Topology
// and returns once every server sees every other in LINKS. spec must name
// InspIRCd (see LinkSpec). Stop it when done. On error nothing is left
// running and the error quotes the servers' logs.
func StartNetwork(ctx context.Context, spec Spec, opts NetworkOptions) (*Network, error) {
	if spec.Kind != InspIRCd {
		return nil, fmt.Errorf("a network needs InspIRCd, not %s", spec.Kind)
	}
	if opts.Servers == 0 {
		opts.Servers = 3
	}
	if opts.Topology == 0 {
		opts.Topology = Chain
	}
	switch {
	case opts.Servers < 2 || opts.Servers > 99:
		return nil, fmt.Errorf("a network has 2 to 99 servers, not %d", opts.Servers)
	case opts.Topology != Chain && opts.Topology != Star:
		return nil, fmt.Errorf("unknown topology %v", opts.Topology)
	case opts.Options.Port != 0 || opts.Options.ServerName != "":
		return nil, errors.New("StartNetwork picks the ports and server names itself")
	}
	for attempt := 1; ; attempt++ {
		n, err := startNetworkOnce(ctx, spec, opts)
		if err == nil || attempt == 3 || !(errors.Is(err, errExited) || errors.Is(err, ErrPortInUse)) || ctx.Err() != nil {
			return n, err
		}
		// A port was most likely taken between picking and binding it.
	}
}

func startNetworkOnce(ctx context.Context, spec Spec, opts NetworkOptions) (*Network, error) {
	n := &Network{spec: spec, topo: opts.Topology, operName: "meshbot", operPass: randomHex(12)}
	count := opts.Servers
	ports, err := freePorts(2 * count) // a client port and a server port each
	if err != nil {
		return nil, err
	}
	var pairs [][2]int
	for i := 1; i < count; i++ {
		if opts.Topology == Chain {
			pairs = append(pairs, [2]int{i - 1, i})
		} else {
			pairs = append(pairs, [2]int{0, i})
		}
	}
	datas := make([]templateData, count)
	for i := range count {
		datas[i] = templateData{ServerName: NetworkServerName(i), ServerID: fmt.Sprintf("%03d", i+1),
			Net: &netData{Port: ports[count+i], OperName: n.operName, OperPassword: n.operPass}}
	}
	for _, p := range pairs {
		a, b := p[0], p[1]
		target := hostPort(ports[count+b])
		proxy, err := newLinkProxy(func() string { return target }, !opts.DelayedAcks)
		if err != nil {
			n.stopAll()
			return nil, err
		}
		l := &Link{net: n, A: a, B: b, proxy: proxy}
		n.links = append(n.links, l)
		pw := randomHex(12)
		datas[a].Net.Links = append(datas[a].Net.Links, netLink{PeerName: NetworkServerName(b), PeerPort: proxy.port(), Password: pw, AutoConnect: true})
		// B never connects by itself; CONNECT on B goes straight to A.
		datas[b].Net.Links = append(datas[b].Net.Links, netLink{PeerName: NetworkServerName(a), PeerPort: ports[count+a], Password: pw})
	}

	n.servers = make([]*Server, count)
	n.admins = make([]*admin, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		o := opts.Options
		o.Port = ports[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.servers[i], errs[i] = startServer(ctx, spec, o, datas[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		n.stopAll()
		return nil, err
	}
	for i := range count {
		if err := n.dialAdmin(ctx, i); err != nil {
			n.stopAll()
			return nil, err
		}
	}
	for _, l := range n.links {
		_ = l.connect(ctx) // at once: autoconnect runs only every 5 s
	}
	if err := n.WaitLinked(ctx); err != nil {
		err = fmt.Errorf("%w\n%s", err, n.logTails())
		n.stopAll()
		return nil, err
	}
	return n, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dialAdmin (re)opens the operator's connection to server i.
func (n *Network) dialAdmin(ctx context.Context, i int) error {
	s := n.servers[i]
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	a, err := dialAdmin(ctx, s.Addr(), n.operName, n.operPass)
	if err != nil {
		return fmt.Errorf("%s: operator: %w", s, err)
	}
	n.mu.Lock()
	old := n.admins[i]
	n.admins[i] = a
	n.mu.Unlock()
	if old != nil {
		old.close()
	}
	return nil
}

// admin returns the operator's connection to server i, reopening it when
// it ended (the server restarted).
func (n *Network) admin(ctx context.Context, i int) (*admin, error) {
	n.mu.Lock()
	a := n.admins[i]
	n.mu.Unlock()
	if a != nil && a.alive() {
		return a, nil
	}
	if err := n.dialAdmin(ctx, i); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.admins[i], nil
}

// Oper returns the name and password of the IRC operator every server of
// the network knows (for clients from 127.0.0.1: /OPER NAME PASSWORD).
func (n *Network) Oper() (name, password string) { return n.operName, n.operPass }

// Topology is how the network is linked.
func (n *Network) Topology() Topology { return n.topo }

// Len is the number of servers.
func (n *Network) Len() int { return len(n.servers) }

// Server returns server i (from 0).
func (n *Network) Server(i int) *Server { return n.servers[i] }

// Servers returns every server, in order.
func (n *Network) Servers() []*Server { return slices.Clone(n.servers) }

// Addrs returns every server's client address, in order.
func (n *Network) Addrs() []string {
	out := make([]string, len(n.servers))
	for i, s := range n.servers {
		out[i] = s.Addr()
	}
	return out
}

// Links returns every link, in the order the servers were linked.
func (n *Network) Links() []*Link { return slices.Clone(n.links) }

// Link returns the link between servers a and b (either order), or nil.
func (n *Network) Link(a, b int) *Link {
	for _, l := range n.links {
		if (l.A == a && l.B == b) || (l.A == b && l.B == a) {
			return l
		}
	}
	return nil
}

// Sees returns the names of the servers server i sees in LINKS, itself
// included, sorted.
func (n *Network) Sees(ctx context.Context, i int) ([]string, error) {
	a, err := n.admin(ctx, i)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return a.links(ctx)
}

// WaitLinked returns once every server sees every other in LINKS, bounded
// by ctx and the servers' Options.ReadyTimeout.
func (n *Network) WaitLinked(ctx context.Context) error {
	var all []int
	for i := range n.servers {
		all = append(all, i)
	}
	return n.WaitSees(ctx, all...)
}

// WaitSees returns once each of the given servers sees exactly the given
// ones in LINKS (the parts of a split network, each on its own), bounded
// by ctx and Options.ReadyTimeout.
func (n *Network) WaitSees(ctx context.Context, servers ...int) error {
	var want []string
	for _, i := range servers {
		want = append(want, n.servers[i].Name())
	}
	slices.Sort(want)
	ctx, cancel := context.WithTimeout(ctx, n.servers[0].opts.ReadyTimeout)
	defer cancel()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for k, i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seen []string
			for {
				var err error
				seen, err = n.Sees(ctx, i)
				if err == nil && slices.Equal(seen, want) {
					return
				}
				select {
				case <-ctx.Done():
					errs[k] = fmt.Errorf("%s (%s) sees %v, not %v (%v): %w", n.servers[i], n.servers[i].Name(), seen, want, err, ctx.Err())
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// connect asks A to link to B now (InspIRCd's autoconnect would in up to
// 5 s).
func (l *Link) connect(ctx context.Context) error {
	a, err := l.net.admin(ctx, l.A)
	if err != nil {
		return err
	}
	return a.connect(ctx, l.net.servers[l.B].Name())
}

// String names the link, e.g. "s1.meshbot.test–s2.meshbot.test".
func (l *Link) String() string {
	return NetworkServerName(l.A) + "–" + NetworkServerName(l.B)
}

// Cut breaks the link: every connection through it is reset at once
// (both servers see a netsplit) and new ones are refused until Heal.
func (l *Link) Cut() { l.proxy.setCut(true) }

// IsCut reports whether the link is cut.
func (l *Link) IsCut() bool { return l.proxy.isCut() }

// Heal lets the link through again, asks A to relink at once and returns
// once every server the network can see sees every other. A link with a
// server down comes back when that server restarts.
func (l *Link) Heal(ctx context.Context) error {
	l.proxy.setCut(false)
	if !l.net.servers[l.A].Running() || !l.net.servers[l.B].Running() {
		return nil
	}
	if err := l.connect(ctx); err != nil {
		return err
	}
	return l.net.waitWhole(ctx)
}

// waitWhole waits until the running servers all see each other, when
// nothing (a cut link, a stopped server) keeps them apart.
func (n *Network) waitWhole(ctx context.Context) error {
	for _, l := range n.links {
		if l.IsCut() {
			return nil // parts stay apart: nothing to wait for
		}
	}
	for _, s := range n.servers {
		if !s.Running() {
			return nil
		}
	}
	return n.WaitLinked(ctx)
}

// Kill SIGKILLs server i: its clients and its links drop at once.
func (n *Network) Kill(i int) error { return n.servers[i].Kill() }

// Freeze stops server i (SIGSTOP): its clients and links go silent
// without closing; the other servers notice only at their link ping
// timeout (serverpingfreq, 60 s by default), clients at their own.
func (n *Network) Freeze(i int) error { return n.servers[i].Signal(syscall.SIGSTOP) }

// Thaw resumes server i after Freeze (SIGCONT).
func (n *Network) Thaw(i int) error { return n.servers[i].Signal(syscall.SIGCONT) }

// Restart restarts server i (gracefully if it runs; after Kill it just
// starts) on the same ports, relinks it at once and returns once the
// network is whole again (unless a cut link or another stopped server
// keeps it apart).
func (n *Network) Restart(ctx context.Context, i int) error {
	s := n.servers[i]
	if err := s.Restart(ctx); err != nil {
		return err
	}
	if err := n.dialAdmin(ctx, i); err != nil {
		return err
	}
	for _, l := range n.links {
		if (l.A == i || l.B == i) && !l.IsCut() && n.servers[l.A].Running() && n.servers[l.B].Running() {
			if err := l.connect(ctx); err != nil {
				return err
			}
		}
	}
	return n.waitWhole(ctx)
}

// Stop stops every server and proxy and removes their directories. It is
// safe to call more than once.
func (n *Network) Stop() error { return n.stopAll() }

func (n *Network) stopAll() error {
	var errs []error
	n.mu.Lock()
	admins := slices.Clone(n.admins)
	n.mu.Unlock()
	for _, a := range admins {
		if a != nil {
			a.close()
		}
	}
	var wg sync.WaitGroup
	serrs := make([]error, len(n.servers))
	for i, s := range n.servers {
		if s == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); serrs[i] = s.Stop() }()
	}
	wg.Wait()
	errs = append(errs, serrs...)
	for _, l := range n.links {
		errs = append(errs, l.proxy.close())
	}
	return errors.Join(errs...)
}

// Log returns every server's log, each under its name.
func (n *Network) Log() string {
	var b strings.Builder
	for i, s := range n.servers {
		fmt.Fprintf(&b, "=== %s (%s) ===\n%s\n", NetworkServerName(i), s, s.Log())
	}
	return b.String()
}

func (n *Network) logTails() string {
	var b strings.Builder
	for i, s := range n.servers {
		if s != nil {
			fmt.Fprintf(&b, "[%s]\n%s\n", NetworkServerName(i), s.logTail())
		}
	}
	return b.String()
}

// hostPort is "127.0.0.1:port".
func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

package mesh

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/state"
)

// Dependencies between domains (docs/PROTOCOL.md §8.8): a service that
// reads another's domain declares it (Config.DomainDepends); the node
// mirrors it, announces the dependency in its heartbeats, and waits for
// it with WaitForDomains. A domain is ready for its dependents when it is
// available (a live instance of its owner holds it) and the node's copy
// was loaded.

// WaitForDomains blocks until every named domain (Config.DomainDepends
// when none are named) is available and loaded on this node, or ctx ends:
// the error then wraps ErrDomainUnavailable and says, per domain, what is
// missing. The node mirrors the domains it was not mirroring yet. A
// dependency cycle among the live members' domains is logged as a
// warning (it cannot deadlock start-up: an owner announces its domain
// once loaded, whatever it waits for; DomainDependencies shows it).
func (n *Node) WaitForDomains(ctx context.Context, domains ...string) error {
	if len(domains) == 0 {
		domains = n.cfg.DomainDepends
	}
	ds := make([]*Domain, 0, len(domains))
	for _, name := range domains {
		d, err := n.Domain(name)
		if err != nil {
			return err
		}
		ds = append(ds, d)
	}
	for {
		var missing []string
		var waits []chan struct{}
		for _, d := range ds {
			m := d.m
			m.mu.Lock()
			switch {
			case !m.r.Loaded() && !m.r.Available():
				missing = append(missing, fmt.Sprintf("%s: no live instance of %s holds it, and no copy was loaded", m.name, state.Owner(m.name)))
			case !m.r.Loaded():
				missing = append(missing, fmt.Sprintf("%s: not loaded yet", m.name))
			case !m.r.Available():
				missing = append(missing, fmt.Sprintf("%s: no live instance of %s holds it (stale copy at version %d)", m.name, state.Owner(m.name), m.r.Version()))
			}
			waits = append(waits, m.changed)
			m.mu.Unlock()
		}
		if len(missing) == 0 {
			if _, cycles := n.DomainDependencies(); len(cycles) > 0 {
				n.log.Warn("dependency cycle among domains", "cycles", cycles)
			}
			return nil
		}
		n.hb.mu.Lock()
		hbChanged := n.hb.changed
		n.hb.mu.Unlock()
		woke, stop := anyClosed(waits)
		select {
		case <-woke:
		case <-hbChanged:
		case <-ctx.Done():
			stop()
			return fmt.Errorf("%w: %s: %w", ErrDomainUnavailable, strings.Join(missing, "; "), context.Cause(ctx))
		case <-n.done:
			stop()
			return ErrClosed
		}
		stop()
	}
}

// anyClosed returns a channel closed once any of chs is, and a func that
// ends the goroutines watching them.
func anyClosed(chs []chan struct{}) (<-chan struct{}, func()) {
	out := make(chan struct{})
	quit := make(chan struct{})
	var once sync.Once
	for _, ch := range chs {
		go func() {
			select {
			case <-ch:
				once.Do(func() { close(out) })
			case <-quit:
			}
		}()
	}
	var stopOnce sync.Once
	return out, func() { stopOnce.Do(func() { close(quit) }) }
}

// DomainDependencies returns the dependency graph between domains that the
// live members announce — domain → the domains its owner depends on — and
// its cycles (nil when there are none).
func (n *Node) DomainDependencies() (graph map[string][]string, cycles [][]string) {
	graph = DomainGraph(n.Members(""))
	return graph, heartbeat.Cycles(graph)
}

// DomainGraph builds the dependency graph between domains from members'
// heartbeats: an edge from each domain a service owns (that an instance
// of it announces holding) to each domain that service depends on.
// Dependencies of a service that owns no announced domain start at the
// service's name, as the domain "<service>" would.
func DomainGraph(members []heartbeat.Member) map[string][]string {
	owned := map[string][]string{}
	deps := map[string][]string{}
	for _, m := range members {
		if m.State == heartbeat.Dead {
			continue
		}
		for _, d := range m.Beat.Domains {
			if state.Owner(d.Name) == m.Service && !slices.Contains(owned[m.Service], d.Name) {
				owned[m.Service] = append(owned[m.Service], d.Name)
			}
		}
		for _, d := range m.Beat.DomainDepends {
			if !slices.Contains(deps[m.Service], d) {
				deps[m.Service] = append(deps[m.Service], d)
			}
		}
	}
	g := map[string][]string{}
	for svc, ds := range deps {
		from := owned[svc]
		if len(from) == 0 {
			from = []string{svc}
		}
		for _, f := range from {
			for _, d := range ds {
				if !slices.Contains(g[f], d) {
					g[f] = append(g[f], d)
				}
			}
		}
	}
	for k := range g {
		slices.Sort(g[k])
	}
	return g
}

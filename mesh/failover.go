package mesh

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
)

// Failover between the servers of a network (Config.Servers). A node holds
// one connection, to one server; it moves to the next server of its list
// when that one dies (the connection drops), falls silent for
// Config.FailoverAfter (a frozen server), or splits away from most of the
// mesh (a netsplit that leaves this node's side with fewer members than
// the other). It keeps its instance and incarnation, its subscriptions
// (joined again on the new server) and its domains: the mesh sees the
// same member come back (its JOIN, then its beat). What a reconnect does
// to claims holds (docs/PROTOCOL.md §6.11): the member's claims are
// released and taken over, and with history it replays what it missed.
//
// After a successful registration the servers not yet tried since are
// tried at once, one after the other; once every server failed in a row
// the node backs off as with one server.

// failover is a node's list of servers and where it stands in it. mu is
// a leaf lock.
type failover struct {
	mu      sync.Mutex
	servers []string // Config.Server, then Config.Servers
	cur     int      // the server of the current or next attempt
	tried   int      // servers tried in a row without a registration
	movedAt time.Time
	reason  string // why the node is leaving the current server, for the log
	sides   bool   // a count of a split's sides is scheduled

	twin twin // a rename at a netjoin, and a stop for good (twin.go)
}

// splitAwayCooldown is how long after moving a node stays on its new
// server whatever splits it sees (no ping-pong between two halves).
const splitAwayCooldown = 10 * time.Second

// splitAwaySettle is how long after a split's first QUIT the node waits
// for the rest before it counts the sides.
const splitAwaySettle = 300 * time.Millisecond

// initFailover sets the server list from the config.
func (n *Node) initFailover() {
	f := &n.failover
	n.initTwin() // twin.go: the ident, and the stop for good
	f.servers = append(f.servers[:0], n.cfg.Server)
	for _, s := range n.cfg.Servers {
		if s != n.cfg.Server {
			f.servers = append(f.servers, s)
		}
	}
}

// Servers returns the node's servers: Config.Server, then Config.Servers.
func (n *Node) Servers() []string {
	f := &n.failover
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.servers...)
}

// Server returns the server the node is connected to, or will try next.
func (n *Node) Server() string {
	f := &n.failover
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.servers[f.cur]
}

// dialAddr is the address to dial: the current server of the list.
func (n *Node) dialAddr(addr string) string {
	f := &n.failover
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.servers) == 0 {
		return addr
	}
	return f.servers[f.cur]
}

// registered: a connection to the current server registered.
func (n *Node) failoverRegistered() {
	f := &n.failover
	f.mu.Lock()
	f.tried = 0
	f.mu.Unlock()
}

// failoverNext moves to the next server after a connection ended. It
// reports whether a server not yet tried in this round remains: then the
// next attempt goes at once, and a first connection's error is not yet
// Connect's.
func (n *Node) failoverNext() (fresh bool) {
	f := &n.failover
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.servers) < 2 {
		return false
	}
	f.tried++
	from := f.servers[f.cur]
	f.cur = (f.cur + 1) % len(f.servers)
	fresh = f.tried < len(f.servers)
	if fresh {
		reason := f.reason
		if reason == "" {
			reason = "the connection ended"
		}
		n.log.Info("moving to another server", "from", from, "to", f.servers[f.cur], "why", reason)
	}
	f.reason = ""
	return fresh
}

// untried reports whether servers of the list remain untried in this
// round (a first connection's failure is then not Connect's).
func (n *Node) untried() bool {
	f := &n.failover
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.servers) > 1 && f.tried+1 < len(f.servers)
}

// leaveServer drops the connection so that the node moves to the next
// server, unless it moved lately (splitAwayCooldown) and force is false.
func (n *Node) leaveServer(reason string, force bool) bool {
	f := &n.failover
	f.mu.Lock()
	if len(f.servers) < 2 || (!force && time.Since(f.movedAt) < splitAwayCooldown) {
		f.mu.Unlock()
		return false
	}
	f.movedAt, f.reason = time.Now(), reason
	f.mu.Unlock()
	n.log.Warn("leaving the server", "server", n.Server(), "why", reason)
	n.dropConnection()
	return true
}

// watchServer runs while the node has other servers to go to: it pings a
// server that has been quiet for a third of Config.FailoverAfter, and
// leaves it when it has said nothing for FailoverAfter (a frozen server:
// its sockets stay open, its clients' pings go unanswered).
func (n *Node) watchServer() {
	defer n.wg.Done()
	limit := n.cfg.FailoverAfter
	t := time.NewTicker(limit / 4)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		if !n.client.IsConnected() {
			continue
		}
		idle := time.Since(time.Unix(0, n.lastRecv.Load()))
		switch {
		case idle >= limit:
			n.stats.timeouts.Add(1)
			n.leaveServer(fmt.Sprintf("the server said nothing for %v", idle.Round(time.Millisecond)), true)
		case idle >= limit/3:
			n.client.Cmd.Ping("fo")
		}
	}
}

// checkSplitAway, after a split's QUITs settled: a node whose side of the
// network holds fewer members of the mesh than the other moves to another
// server (the next of its list; it stays there splitAwayCooldown).
func (n *Node) checkSplitAway() {
	defer n.wg.Done()
	select {
	case <-time.After(splitAwaySettle):
	case <-n.done:
		return
	}
	n.failover.mu.Lock()
	n.failover.sides = false
	n.failover.mu.Unlock()
	present, away := 0, 0
	for _, m := range n.AllMembers() {
		switch m.State {
		case heartbeat.Alive, heartbeat.Suspect:
			present++
		case heartbeat.Unreachable:
			away++
		}
	}
	if away > present {
		n.leaveServer(fmt.Sprintf("split away from most of the mesh (%d members here, %d on the other side)", present, away), false)
	}
}

// splitSeen: members left in a split; with other servers to go to, the
// node counts the sides once the split's QUITs settled.
func (n *Node) splitSeen() {
	f := &n.failover
	f.mu.Lock()
	if len(f.servers) < 2 || f.sides {
		f.mu.Unlock()
		return
	}
	f.sides = true
	f.mu.Unlock()
	n.wg.Add(1)
	go n.checkSplitAway()
}

// validServers checks Config.Servers.
func validServers(servers []string) error {
	for _, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("%w: server %q in Servers: want host:port", ErrInvalidConfig, s)
		}
	}
	return nil
}

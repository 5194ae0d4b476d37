package ircd_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// netClient is a raw client on one server of a network, in #net.
type netClient struct {
	*ircd.RawClient
	t *testing.T
}

func joinNet(t *testing.T, ctx context.Context, addr, prefix string) *netClient {
	t.Helper()
	c, err := ircd.DialRaw(ctx, addr, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Quit(context.Background()) })
	if err := c.Send(ctx, "JOIN #net"); err != nil {
		t.Fatal(err)
	}
	nc := &netClient{c, t}
	nc.waitFor(ctx, "own JOIN", func(m ircmsg.Message) bool { return m.Command == "366" })
	return nc
}

// waitFor reads until a line matches.
func (c *netClient) waitFor(ctx context.Context, what string, match func(ircmsg.Message) bool) ircmsg.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	for {
		m, err := c.Read(ctx)
		if err != nil {
			c.t.Fatalf("%s waiting for %s: %v", c.Nick(), what, err)
		}
		if match(m) {
			return m
		}
	}
}

func nickOf(m ircmsg.Message) string {
	nick, _, _ := strings.Cut(m.Source, "!")
	return nick
}

// TestNetworkChain: three servers in a chain. A line from the first
// reaches the last; a cut link is a netsplit whose QUIT names the two
// servers (the one still linked, the one lost) and whose parts see only
// themselves; a healed link joins them again (the netburst JOINs come
// back); the middle server killed splits both ends, and restarted joins
// them; a frozen server thaws and still holds its links.
func TestNetworkChain(t *testing.T) {
	t.Parallel()
	n := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 3, Topology: ircd.Chain})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if n.Len() != 3 || len(n.Links()) != 2 || n.Link(0, 1) == nil || n.Link(2, 1) == nil || n.Link(0, 2) != nil {
		t.Fatalf("chain of %d servers with links %v", n.Len(), n.Links())
	}
	for i := range 3 {
		seen, err := n.Sees(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{ircd.NetworkServerName(0), ircd.NetworkServerName(1), ircd.NetworkServerName(2)}
		if !slices.Equal(seen, want) {
			t.Fatalf("server %d sees %v, want %v", i, seen, want)
		}
	}

	// Connect in parallel: InspIRCd registers on a 1 s tick.
	cs := make([]*netClient, 3)
	done := make(chan int)
	for i := range 3 {
		go func() {
			cs[i] = joinNet(t, ctx, n.Server(i).Addr(), fmt.Sprintf("c%d", i))
			done <- i
		}()
	}
	for range 3 {
		<-done
	}
	a, c := cs[0], cs[2]
	// The joins spread over the links meanwhile: c repeats its line until
	// a gets it.
	stop := make(chan struct{})
	go func() {
		for {
			_ = c.Send(ctx, "PRIVMSG #net :across two links")
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	a.waitFor(ctx, "c's line", func(m ircmsg.Message) bool {
		return m.Command == "PRIVMSG" && nickOf(m) == c.Nick() && m.Params[1] == "across two links"
	})
	close(stop)

	// A netsplit: the link between the middle and the last server.
	n.Link(1, 2).Cut()
	q := a.waitFor(ctx, "c's split QUIT", func(m ircmsg.Message) bool { return m.Command == "QUIT" && nickOf(m) == c.Nick() })
	if want := ircd.NetworkServerName(1) + " " + ircd.NetworkServerName(2); q.Params[0] != want {
		t.Errorf("split QUIT reason %q, want %q", q.Params[0], want)
	}
	q = c.waitFor(ctx, "a's split QUIT", func(m ircmsg.Message) bool { return m.Command == "QUIT" && nickOf(m) == a.Nick() })
	if want := ircd.NetworkServerName(2) + " " + ircd.NetworkServerName(1); q.Params[0] != want {
		t.Errorf("split QUIT reason on the far side %q, want %q", q.Params[0], want)
	}
	if err := n.WaitSees(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitSees(ctx, 2); err != nil {
		t.Fatal(err)
	}

	// Healed: the servers relink at once, and c comes back in the netburst.
	start := time.Now()
	if err := n.Link(1, 2).Heal(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("healed in %v", time.Since(start))
	a.waitFor(ctx, "c's netjoin", func(m ircmsg.Message) bool { return m.Command == "JOIN" && nickOf(m) == c.Nick() })

	// The middle server killed: both ends split from it and each other.
	if err := n.Kill(1); err != nil {
		t.Fatal(err)
	}
	q = a.waitFor(ctx, "c's QUIT", func(m ircmsg.Message) bool { return m.Command == "QUIT" && nickOf(m) == c.Nick() })
	if want := ircd.NetworkServerName(0) + " " + ircd.NetworkServerName(1); q.Params[0] != want {
		t.Errorf("QUIT reason after the middle server died %q, want %q", q.Params[0], want)
	}
	if err := n.WaitSees(ctx, 0); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := n.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted and relinked in %v", time.Since(start))
	a.waitFor(ctx, "c's netjoin", func(m ircmsg.Message) bool { return m.Command == "JOIN" && nickOf(m) == c.Nick() })

	// Frozen for a moment, thawed: the links hold.
	if err := n.Freeze(1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := n.Thaw(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "PRIVMSG #net :after the thaw"); err != nil {
		t.Fatal(err)
	}
	a.waitFor(ctx, "c's line after the thaw", func(m ircmsg.Message) bool {
		return m.Command == "PRIVMSG" && nickOf(m) == c.Nick() && m.Params[1] == "after the thaw"
	})
}

// TestNetworkStar: a hub and three leaves; a cut leaf link splits only
// that leaf, which the hub restarted (graceful) brings back with the rest.
func TestNetworkStar(t *testing.T) {
	t.Parallel()
	n := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 4, Topology: ircd.Star})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := 1; i < 4; i++ {
		if l := n.Link(0, i); l == nil || l.A != 0 || l.B != i {
			t.Fatalf("no hub link to %d: %v", i, n.Links())
		}
	}
	n.Link(0, 3).Cut()
	if err := n.WaitSees(ctx, 0, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitSees(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := n.Link(0, 3).Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitLinked(ctx); err != nil {
		t.Fatal(err)
	}
}

package mesh

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// heldConn is a connection whose reads can be held: armed, its next read
// gathers at least want PRIVMSG lines from the socket, reports them on full
// and returns them all at once when release is closed, as a reader that
// read a burst and was descheduled before handling it.
type heldConn struct {
	net.Conn
	mu      sync.Mutex
	want    int
	full    chan []string // the gathered lines
	release chan struct{}
}

func (c *heldConn) arm(want int, release chan struct{}) chan []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want, c.release, c.full = want, release, make(chan []string, 1)
	return c.full
}

func (c *heldConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	want, release, full := c.want, c.release, c.full
	c.want = 0
	c.mu.Unlock()
	if want == 0 {
		return c.Conn.Read(p)
	}
	var got []byte
	tmp := make([]byte, 4096)
	for privmsgs(got) < want && len(got) < len(p)/2 {
		k, err := c.Conn.Read(tmp)
		got = append(got, tmp[:k]...)
		if err != nil {
			close(full)
			return 0, err
		}
	}
	if i := bytes.LastIndexByte(got, '\n'); i >= 0 {
		full <- strings.Split(strings.TrimRight(string(got[:i+1]), "\r\n"), "\r\n")
	}
	<-release
	return copy(p, got), nil // len(got) < len(p)
}

func privmsgs(b []byte) int { return bytes.Count(b, []byte(" PRIVMSG ")) }

// rawLines records the lines the node handled (Config.RawLog), once on.
type rawLines struct {
	mu   sync.Mutex
	on   bool
	seen map[string]bool
}

func (r *rawLines) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.seen[string(bytes.TrimRight(p, "\r\n"))] = true
	}
	return len(p), nil
}

// TestRetiredConnectionLinesNotHandled: when girc gives up a connection
// while its reader holds a burst of lines not handled yet, and the node
// reconnects and reads a burst on the new connection, the old burst is not
// handled at all (not at the same time as the new one: the decoder is the
// reader's alone; under -race this was a race), and the new burst is
// handled whole: every event published after the reconnect arrives.
func TestRetiredConnectionLinesNotHandled(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	base := DefaultConfig()
	base.Server = srv.Addr()
	base.Namespace = "t"
	base.KeepAlive = 500 * time.Millisecond
	base.KeepAliveTimeout = 6 * time.Second
	base.ReconnectMin = 50 * time.Millisecond
	base.ReconnectMax = 500 * time.Millisecond

	var connsMu sync.Mutex
	var conns []*heldConn
	raw := &rawLines{seen: map[string]bool{}}
	cfg := base
	cfg.Service = "audit"
	cfg.RawLog = raw
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		h := &heldConn{Conn: c}
		connsMu.Lock()
		conns = append(conns, h)
		connsMu.Unlock()
		return h, nil
	}
	conn := func(i int) *heldConn {
		connsMu.Lock()
		defer connsMu.Unlock()
		if i < len(conns) {
			return conns[i]
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connectNode := func(cfg Config) *Node {
		n, err := Connect(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			_ = n.Close(cctx)
		})
		return n
	}
	sub := connectNode(cfg)
	pcfg := base
	pcfg.Service = "orders"
	pub := connectNode(pcfg)
	release := make(chan struct{})
	t.Cleanup(func() { // before the nodes close: no read stays held
		select {
		case <-release:
		default:
			close(release)
		}
	})

	var gotMu sync.Mutex
	got := map[int]bool{}
	if _, err := sub.Subscribe(ctx, "orders", func(_ context.Context, m *Message) error {
		i, err := strconv.Atoi(string(m.Payload))
		gotMu.Lock()
		got[i] = err == nil || got[i]
		gotMu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Events flow all along, from several publishers at once.
	var seq atomic.Int64
	var pubWG sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		pubWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := seq.Add(1)
				if _, err := pub.Publish(ctx, "orders", []byte(strconv.FormatInt(i, 10))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stopped := false
	stopPublishing := func() {
		if !stopped {
			stopped = true
			close(stop)
			pubWG.Wait()
		}
	}
	defer stopPublishing()

	const burst = 100
	first := conn(0)
	waitFull := func(full chan []string, what string) []string {
		select {
		case lines, ok := <-full:
			if !ok {
				t.Fatalf("%s: the connection ended before a burst", what)
			}
			return lines
		case <-ctx.Done():
			t.Fatalf("%s: no burst of %d lines", what, burst)
		}
		return nil
	}
	old := waitFull(first.arm(burst, release), "first connection")

	// Drop it the way the node does (close the socket); girc gives up the
	// connection at its next write, while its reader still holds the burst.
	sub.dropConnection()
	sub.client.Cmd.Ping("drop")
	deadline := time.Now().Add(30 * time.Second)
	for conn(1) == nil || !sub.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("the node did not reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	from := seq.Load() + 1 // published after the new connection is ready
	waitFull(conn(1).arm(burst, release), "second connection")

	raw.mu.Lock()
	raw.on = true
	raw.mu.Unlock()
	close(release) // both readers go on at once
	last := seq.Load()
	stopPublishing()
	deadline = time.Now().Add(30 * time.Second)
	for {
		gotMu.Lock()
		missing := 0
		for i := int(from); i <= int(last); i++ {
			if !got[i] {
				missing++
			}
		}
		gotMu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the events %d..%d published on the new connection never arrived", missing, from, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
	raw.mu.Lock()
	defer raw.mu.Unlock()
	for _, l := range old {
		// Its events: lines no other connection has (a server's reply to
		// the rejoin can look the same on both).
		if strings.Contains(l, " PRIVMSG ") && raw.seen[l] {
			t.Fatalf("a line of the dropped connection was handled after the reconnect: %q", l)
		}
	}
}

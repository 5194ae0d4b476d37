package history_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// cutProxy forwards TCP connections to a server and can cut them: the
// subscriber behind it loses its connection while the rest of the mesh
// does not.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() { io.Copy(c, s); c.Close() }()
	}
}

// cut closes every connection and refuses new ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestCatchUpAfterDisconnect: a multicast subscriber loses its connection
// while 200 events are published; after it reconnects it receives every
// one of them from the recorder, once, and no event twice.
func TestCatchUpAfterDisconnect(t *testing.T) {
	srv := ircdtest.Start(t)
	rec, _ := startRecorder(t, srv)
	proxy := newCutProxy(t, srv.Addr())
	scfg := nodeConfig(srv, "reader")
	scfg.Server = proxy.addr()
	scfg.ReconnectMin, scfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	scfg.History = history.NewSource()
	sub := meshtest.Connect(t, scfg)
	pub := meshtest.Connect(t, nodeConfig(srv, "news"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var mu sync.Mutex
	got := map[string]int{}
	total := 0
	if _, err := sub.Subscribe(ctx, "news", func(_ context.Context, m *mesh.Message) error {
		mu.Lock()
		got[string(m.Payload)]++
		total++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitTopic(t, rec, "news")
	publish := func(prefix string, n int) {
		for i := range n {
			if _, err := pub.Publish(ctx, "news", []byte(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitDistinct := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			d := len(got)
			mu.Unlock()
			if d >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the subscriber has %d distinct events, want %d (backfilled %d)", d, n, sub.Stats().Backfilled)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publish("before", 100)
	waitDistinct(100)

	proxy.cut()
	deadline := time.Now().Add(10 * time.Second)
	for sub.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("the subscriber did not notice the cut")
		}
		time.Sleep(10 * time.Millisecond)
	}
	publish("during", 200)
	time.Sleep(300 * time.Millisecond) // the recorder commits
	proxy.restore()
	waitDistinct(300)
	publish("after", 50)
	waitDistinct(350)
	time.Sleep(500 * time.Millisecond) // a duplicate would show by now

	mu.Lock()
	defer mu.Unlock()
	for p, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", p, n)
		}
	}
	if total != 350 {
		t.Errorf("%d deliveries for 350 events", total)
	}
	if b := sub.Stats().Backfilled; b != 200 {
		t.Errorf("backfilled %d events, want the 200 missed", b)
	}
}

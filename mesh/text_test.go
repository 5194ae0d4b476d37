package mesh_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestPeopleCannotStallOrFlood: a person who sends a node far more text
// than its handler takes, and a burst of CTCP, gets bounded work out of
// it (docs/CONSOLE.md, "What people cannot do"): texts wait in a queue of
// 64 while the handler is busy and the rest are dropped and counted; the
// node's traffic goes on meanwhile; CTCP answers are rate-limited (5 at
// once, then one a second), a PING's token comes back without control
// characters and cut, and CTCP sent to a channel gets no answer.
func TestPeopleCannotStallOrFlood(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := connectAll(t, testConfig(srv, "pricing"), testConfig(srv, "orders"))
	pricing, orders := nodes[0], nodes[1]
	if err := pricing.Handle("quote", func(context.Context, *mesh.Request) ([]byte, error) { return []byte("7.00"), nil }); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var texts []mesh.Text
	release := make(chan struct{})
	var releaseOnce sync.Once
	stop := pricing.OnText(func(tx mesh.Text) {
		mu.Lock()
		texts = append(texts, tx)
		mu.Unlock()
		<-release // a handler far slower than the people
	})
	defer stop()
	defer releaseOnce.Do(func() { close(release) }) // before stop waits for the handler
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(texts)
	}

	// Several people (servers throttle each client: ngIRCd takes a few
	// commands a second from one) send texts at once.
	const people, each = 5, 16
	const sent = people * each
	var clients []*ircd.RawClient
	for range people {
		c, err := ircd.DialRaw(ctx, srv.Addr(), "mallory")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Quit(context.Background())
		clients = append(clients, c)
	}
	mallory := clients[0]
	answers := make(chan string, 256)
	go func() {
		for {
			m, err := mallory.Read(ctx)
			if err != nil {
				return
			}
			if m.Command == "NOTICE" && len(m.Params) == 2 && strings.HasPrefix(m.Params[1], "\x01") {
				answers <- strings.Trim(m.Params[1], "\x01")
			}
		}
	}()

	// Texts: one in the handler, 64 waiting, the rest dropped.
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for i := range each {
				if err := c.Send(ctx, fmt.Sprintf("PRIVMSG %s :status %d", pricing.Nick(), i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for uint64(received())+64+pricing.TextDropped() < sent { // the handler's, the queue's, the dropped
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d texts taken, %d dropped, of %d sent", received(), pricing.TextDropped(), sent)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := received(); n != 1 {
		t.Errorf("the busy handler was called %d times, want 1", n)
	}
	// Meanwhile the node's traffic goes on.
	if got, err := orders.Request(ctx, "pricing", "quote", nil); err != nil || string(got) != "7.00" {
		t.Errorf("a request while the text handler is stuck: %q, %v", got, err)
	}
	releaseOnce.Do(func() { close(release) })
	deadline = time.Now().Add(10 * time.Second)
	for received() < 1+64 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n, dropped := received(), pricing.TextDropped(); n != 1+64 || dropped != sent-1-64 {
		t.Errorf("%d texts handled and %d dropped, want %d and %d", n, dropped, 1+64, sent-1-64)
	}
	mu.Lock()
	if tx := texts[0]; !strings.HasPrefix(tx.From, "mallory") || tx.Text != "status 0" || tx.Channel != "" {
		t.Errorf("first text: %+v", tx)
	}
	mu.Unlock()

	// CTCP: a channel's is not answered; a burst of PINGs gets 5 answers,
	// then one a second, each token cleaned and cut.
	channel := mesh.HeartbeatChannel("t")
	if err := mallory.Send(ctx, "JOIN "+channel); err != nil {
		t.Fatal(err)
	}
	if err := mallory.Send(ctx, "PRIVMSG "+channel+" :\x01PING channel\x01"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const pings = 20
	long := strings.Repeat("x", 100)
	for i := range pings {
		if err := mallory.Send(ctx, fmt.Sprintf("PRIVMSG %s :\x01PING p%d\x02\x07%s\x01", pricing.Nick(), i, long)); err != nil {
			t.Fatal(err)
		}
	}
	first := <-answers
	if want := "PING p0" + long[:64-len("p0\x02\x07")]; first != want {
		t.Errorf("first CTCP answer %q, want %q (the channel's is not answered; the token cleaned and cut to 64)", first, want)
	}
	got := 1
	for quiet := time.After(2 * time.Second); ; {
		select {
		case <-answers:
			got++
			continue
		case <-quiet:
		}
		break
	}
	if most := 5 + int(time.Since(start)/time.Second) + 1; got > most || got < 5 {
		t.Errorf("%d answers to %d CTCP PINGs within %v, want 5 to %d", got, pings, time.Since(start).Round(time.Millisecond), most)
	}
}

package ircd

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBurst checks that the shipped configs let a bot send bursts: 1000
// lines of 200 bytes in windows of 100 (a PING round trip per window, the
// way meshbot publishes), with no flood kill and every line relayed. With
// the servers' default settings this fails (InspIRCd kills the client with
// "RecvQ exceeded", ngIRCd and ergo throttle to a few lines per second).
func TestBurst(t *testing.T) {
	t.Parallel()
	spec, err := SpecFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := Start(ctx, spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil || t.Failed() {
			t.Logf("%s log:\n%s", srv, srv.Log())
			if err != nil {
				t.Error(err)
			}
		}
	}()

	const (
		channel = "#meshbot.burst"
		windows = 10
		window  = 100
	)
	// Register both clients at once (InspIRCd takes ~1s per registration).
	conns := make([]*rawConn, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = dialRaw(ctx, srv.Addr())
			if errs[i] == nil {
				_, errs[i] = conns[i].register(ctx, "burst", nil)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer conns[i].quit(ctx)
	}
	recv, send := conns[0], conns[1]
	for _, c := range []*rawConn{recv, send} {
		if err := c.send(ctx, "JOIN "+channel); err != nil {
			t.Fatal(err)
		}
		if err := waitFor(ctx, c, func(cmd string, params []string, src string) bool {
			return cmd == "JOIN" && strings.HasPrefix(src, c.nick+"!")
		}); err != nil {
			t.Fatalf("%s joining: %v", c.nick, err)
		}
	}

	pad := strings.Repeat("x", 195)
	got := make(chan error, 1)
	go func() {
		n := 0
		var bad error
		err := waitFor(ctx, recv, func(cmd string, params []string, src string) bool {
			if cmd == "PRIVMSG" && strings.HasPrefix(src, send.nick+"!") {
				if want := fmt.Sprintf("%04d ", n); bad == nil && params[len(params)-1] != want+pad {
					bad = fmt.Errorf("line %d arrived as %.20q… (%d bytes)", n, params[len(params)-1], len(params[len(params)-1]))
				}
				n++
			}
			return n == windows*window
		})
		if err == nil {
			err = bad
		}
		got <- err
	}()

	start := time.Now()
	for w := range windows {
		var b strings.Builder
		for i := range window {
			fmt.Fprintf(&b, "PRIVMSG %s :%04d %s\r\n", channel, w*window+i, pad)
		}
		fmt.Fprintf(&b, "PING :w%d", w)
		if err := send.send(ctx, b.String()); err != nil {
			t.Fatal(err)
		}
		if err := waitFor(ctx, send, func(cmd string, params []string, _ string) bool {
			return cmd == "PONG" && params[len(params)-1] == fmt.Sprintf("w%d", w)
		}); err != nil {
			t.Fatalf("sender, window %d: %v", w, err)
		}
	}
	if err := <-got; err != nil {
		t.Fatalf("receiver: %v", err)
	}
	t.Logf("%s: %d lines relayed in %v", srv.Kind(), windows*window, time.Since(start))
}

// waitFor reads lines until ok returns true.
func waitFor(ctx context.Context, c *rawConn, ok func(cmd string, params []string, source string) bool) error {
	for {
		msg, err := c.read(ctx)
		if err != nil {
			return err
		}
		if len(msg.Params) > 0 && ok(msg.Command, msg.Params, msg.Source) {
			return nil
		}
	}
}

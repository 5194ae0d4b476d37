package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// httpServer runs an HTTP server on loopback for the test and returns its
// address.
func httpServer(t *testing.T) string {
	t.Helper()
	web := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(web.Close)
	return strings.TrimPrefix(web.URL, "http://")
}

// TestConnectErrors: what the commands say when the connection fails: a
// port that is not IRC, a silent port (with a short --connect-timeout),
// and SASL the server refuses or does not offer, each once, without a
// word about reconnecting.
func TestConnectErrors(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	sasl := ircdtest.Probe(t, srv).Has("sasl")
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	web := httpServer(t)
	authWant := "the server does not offer SASL"
	if sasl {
		authWant = "authentication failed: SASL authentication failed"
	}
	for _, tc := range []struct {
		name    string
		environ map[string]string
		args    []string
		want    string
	}{
		{"http", map[string]string{"MESHBOT_SERVER": web}, []string{"pub", "t", "x"},
			"meshbot: " + web + `: not an IRC server: it answered "HTTP/1.1 400 Bad Request"`},
		{"silent", map[string]string{"MESHBOT_SERVER": silent.Addr().String()}, []string{"pub", "t", "x", "--connect-timeout", "20s"},
			"meshbot: " + silent.Addr().String() + ": no answer from the server: nothing received in 6"},
		{"sasl", map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_SASL_USER": "nobody", "MESHBOT_SASL_PASS": "wrong"},
			[]string{"tail", "orders", "--log-level", "debug"}, authWant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := runCLI(t, tc.environ, "", tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant %q", r.code, r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, "reconnect") {
				t.Errorf("stderr speaks of reconnecting:\n%s", r.stderr)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestTailOutage stops the server under a tail of three topics for a
// while: tail warns once, reconnects by itself, and its summary counts one
// drop.
func TestTailOutage(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "out"}
	tail := startCLI(t, environ, "tail", "a", "b", "c")
	waitFor(t, "tail", tail.errbuf, "watching", 30*time.Second)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(9 * time.Second) // several reconnect attempts (back-off up to 5s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(tail.out.String(), "back") {
		if time.Now().After(deadline) {
			t.Fatalf("tail did not come back:\n%s\n%s", tail.out, tail.errbuf)
		}
		runCLI(t, environ, "", "pub", "b", "back")
		time.Sleep(500 * time.Millisecond)
	}
	if code := tail.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	errs := tail.errbuf.String()
	if n := strings.Count(errs, "disconnected; reconnecting"); n != 1 {
		t.Errorf("%d warnings of the outage, want 1:\n%s", n, errs)
	}
	if !strings.Contains(errs, "the connection dropped 1 time(s)") {
		t.Errorf("summary:\n%s", errs)
	}
	if n := strings.Count(tail.out.String(), "connection to the server lost"); n != 3 {
		t.Errorf("%d gap lines, want one per topic:\n%s", n, tail.out)
	}
}

package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// logRecords is a slog handler that keeps the messages logged.
type logRecords struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecords) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logRecords) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logRecords) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count counts the records of level at with msg.
func (l *logRecords) count(level, msg string) int {
	return strings.Count(l.String(), "level="+level+" msg=\""+msg+"\"")
}

func connectTo(addr string, mod func(*mesh.Config)) (*mesh.Node, error, time.Duration) {
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Service = addr, "probe"
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	n, err := mesh.Connect(ctx, cfg)
	if n != nil {
		_ = n.Close(ctx)
	}
	return n, err, time.Since(start)
}

// TestConnectNotIRC: an HTTP server on the port is named as what it is,
// quoting its answer, not "EOF".
func TestConnectNotIRC(t *testing.T) {
	t.Parallel()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer web.Close()
	addr := strings.TrimPrefix(web.URL, "http://")
	_, err, _ := connectTo(addr, nil)
	if !errors.Is(err, mesh.ErrNotIRC) {
		t.Fatalf("Connect to an HTTP server: %v; want ErrNotIRC", err)
	}
	if !strings.Contains(err.Error(), `it answered "HTTP/1.1 400 Bad Request"`) {
		t.Errorf("the error does not quote the answer: %v", err)
	}
}

// TestConnectSilent: a port that accepts and never speaks is reported as
// silent, with how long the node waited.
func TestConnectSilent(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	_, err, _ = connectTo(l.Addr().String(), func(c *mesh.Config) {
		c.KeepAlive, c.KeepAliveTimeout = 200*time.Millisecond, time.Second
	})
	if !errors.Is(err, mesh.ErrNoAnswer) {
		t.Fatalf("Connect to a silent port: %v; want ErrNoAnswer", err)
	}
	if !strings.Contains(err.Error(), "nothing received in 1") {
		t.Errorf("the error does not say how long it waited: %v", err)
	}
}

// TestConnectAuthFailed asks for SASL with credentials the server does
// not accept: on a server with SASL (ergo) the account does not exist, on
// one without (InspIRCd without services, ngIRCd) SASL is not offered.
// Either way Connect fails at once with ErrAuthFailed and the server's
// reason, also with RetryOnFailedConnect, and logs no reconnect.
func TestConnectAuthFailed(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	caps := ircdtest.Probe(t, srv)
	var logs logRecords
	_, err, took := connectTo(srv.Addr(), func(c *mesh.Config) {
		c.SASLUser, c.SASLPassword = "nobody", "wrong password"
		c.RetryOnFailedConnect = true
		c.ConnectTimeout = 25 * time.Second
		c.Logger = logs.logger()
	})
	if !errors.Is(err, mesh.ErrAuthFailed) {
		t.Fatalf("Connect with wrong credentials: %v; want ErrAuthFailed", err)
	}
	want := "the server does not offer SASL"
	if caps.Has("sasl") {
		want = "authentication failed: SASL authentication failed"
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if took > 15*time.Second {
		t.Errorf("Connect took %v: it kept trying", took)
	}
	if n := strings.Count(logs.String(), "reconnect"); n > 0 {
		t.Errorf("%d log lines about reconnecting:\n%s", n, logs.String())
	}
}

// TestOutageReportedOnce kills the server under a node that observes two
// channels, keeps it down over many reconnect attempts, and restarts it:
// the node warns once, and each observer gets one gap.
func TestOutageReportedOnce(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	var logs logRecords
	cfg := testConfig(srv, "watch")
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 100*time.Millisecond
	cfg.Logger = logs.logger()
	n := meshtest.Connect(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	gaps := map[string]int{}
	for _, topic := range []string{"a", "b"} {
		_, err := n.Observe(ctx, topic, func(ob mesh.Observation) {
			if ob.Gap {
				mu.Lock()
				gaps[ob.Topic]++
				mu.Unlock()
			}
		}, mesh.ObserveGaps())
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the node to notice", func() bool { return !n.Connected() })
	waitUntil(t, 20*time.Second, "20 failed attempts", func() bool {
		return strings.Count(logs.String(), `msg="reconnect attempt failed"`) >= 20
	})
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the node to reconnect", n.Connected)
	if got := logs.count("WARN", "disconnected; reconnecting"); got != 1 {
		t.Errorf("%d warnings of the outage, want 1:\n%s", got, logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if gaps["a"] != 1 || gaps["b"] != 1 {
		t.Errorf("gaps per topic %v, want one each", gaps)
	}
}

package mesh_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// saslAccounts are the accounts of the SASL tests' server.
var saslAccounts = map[string]string{
	"alice": "alice-secret-1",
	"bob":   "bob-secret-2",
	"carol": "carol-secret-3",
}

// saslServer starts the MESH_IRCD server with saslAccounts, one for all
// the SASL tests. ngIRCd has no SASL and so no accounts: the tests do not
// run there (they say why), while on a server that should have accounts a
// missing one fails them (ircdtest.StartWithAccounts).
func saslServer(t *testing.T) *ircd.Server {
	t.Helper()
	if spec := ircdtest.Spec(t); !ircd.HasAccounts(spec.Kind) {
		t.Skipf("%s=%s has no SASL, so no accounts: the SASL tests run on InspIRCd (with atheme-services) and ergo; "+
			"TestConnectAuthFailed covers a server without SASL", ircd.EnvVar, spec)
	}
	var list []ircd.Account
	for name, pw := range saslAccounts {
		list = append(list, ircd.Account{Name: name, Password: pw})
	}
	cert, fp, err := ircd.NewClientCert(externalAccount)
	if err != nil {
		t.Fatal(err)
	}
	externalCert = cert
	list = append(list, ircd.Account{Name: externalAccount, Password: "dave-secret-4", CertFP: fp})
	return ircdtest.StartAccountServer(t, ircdtest.Spec(t), ircd.Options{}, list...)
}

// externalAccount logs in with SASL EXTERNAL: externalCert, made by
// saslServer, is registered to it.
const externalAccount = "dave"

var externalCert tls.Certificate

// TestSASL runs the SASL tests against one server with accounts.
func TestSASL(t *testing.T) {
	t.Parallel()
	srv := saslServer(t)
	t.Run("AccountTag", func(t *testing.T) { t.Parallel(); testSASLAccountTag(t, srv) })
	t.Run("WrongPassword", func(t *testing.T) {
		t.Parallel()
		testSASLRefused(t, srv, "alice", "not-alice-secret")
	})
	t.Run("NoSuchAccount", func(t *testing.T) {
		t.Parallel()
		testSASLRefused(t, srv, "mallory", "whatever")
	})
	t.Run("TLS", func(t *testing.T) { t.Parallel(); testSASLOverTLS(t, srv) })
	t.Run("External", func(t *testing.T) { t.Parallel(); testSASLExternal(t, srv) })
}

// testSASLAccountTag: nodes that logged in with SASL PLAIN are seen by
// the others with their account (@account=<name> on their lines), also
// two instances of a service sharing one account; a node without SASL is
// seen with none.
func testSASLAccountTag(t *testing.T, srv *ircd.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := testConfig(srv, "billing")
	pub.SASLUser, pub.SASLPassword = "alice", saslAccounts["alice"]
	anon := testConfig(srv, "guest")
	watch := testConfig(srv, "audit")
	watch.SASLUser, watch.SASLPassword = "bob", saslAccounts["bob"]
	pub2 := pub // a second instance, the same account
	for _, c := range []*mesh.Config{&pub, &pub2, &anon, &watch} {
		c.Namespace = "sasl"
	}
	nodes := meshtest.ConnectAll(t, pub, pub2, anon, watch)
	pubs, anonNode, watchNode := nodes[:2], nodes[2], nodes[3]

	type seen struct {
		account string
		tagged  bool
	}
	var mu sync.Mutex
	got := map[string]seen{} // sender nick → account tag
	obs, err := watchNode.Observe(ctx, "invoices", func(o mesh.Observation) {
		if !o.Mesh || o.Envelope == nil {
			return
		}
		acct, ok := o.Tags["account"]
		mu.Lock()
		got[o.From] = seen{acct, ok}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()
	for _, n := range nodes[:3] {
		if _, err := n.Publish(ctx, "invoices", []byte("from "+n.Nick())); err != nil {
			t.Fatalf("%s: publish: %v", n.Nick(), err)
		}
	}
	waitUntil(t, 15*time.Second, "three events observed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	for _, n := range pubs {
		if s := got[n.Nick()]; s.account != "alice" {
			t.Errorf("the line of %s, logged in as alice, carries account %q (tag present: %v); want alice", n.Nick(), s.account, s.tagged)
		}
	}
	if s := got[anonNode.Nick()]; s.tagged {
		t.Errorf("the line of the node without SASL carries account %q; want no account tag", s.account)
	}
}

// testSASLRefused: credentials the server refuses end Connect at once
// with ErrAuthFailed and the server's reason, also with
// RetryOnFailedConnect: one connection, no second attempt.
func testSASLRefused(t *testing.T, srv *ircd.Server, user, password string) {
	addr, accepted := countingProxy(t, srv.Addr())
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Service, cfg.Namespace = addr, "intruder", "sasl"
	cfg.SASLUser, cfg.SASLPassword = user, password
	cfg.RetryOnFailedConnect = true
	cfg.ConnectTimeout = 25 * time.Second
	cfg.ReconnectMin, cfg.ReconnectMax = 10*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := mesh.Connect(ctx, cfg)
	if n != nil {
		_ = n.Close(ctx)
		t.Fatalf("Connect as %s with a wrong password succeeded", user)
	}
	if !errors.Is(err, mesh.ErrAuthFailed) {
		t.Fatalf("Connect as %s: %v; want ErrAuthFailed", user, err)
	}
	// InspIRCd (atheme) and ergo both say it in their 904 reply.
	if want := "SASL authentication failed"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not quote the server's reason %q", err, want)
	}
	if got := accepted(); got != 1 {
		t.Errorf("%d connections to the server; want 1 (no retry after a refused login)", got)
	}
}

// testSASLOverTLS: a node connects to the TLS port, verifying the
// server's certificate and presenting one of its own (mesh.Config.TLS),
// and logs in with SASL PLAIN.
func testSASLOverTLS(t *testing.T, srv *ircd.Server) {
	cert, _, err := ircd.NewClientCert("carol")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv, "secure")
	cfg.Server, cfg.Namespace = srv.TLSAddr(), "sasl"
	cfg.TLS = &tls.Config{RootCAs: srv.TLSRoots(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	cfg.SASLUser, cfg.SASLPassword = "carol", saslAccounts["carol"]
	n := meshtest.Connect(t, cfg)
	if !n.Connected() {
		t.Fatal("not connected")
	}
	bad := cfg
	bad.SASLPassword = "not-carol-secret"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if m, err := mesh.Connect(ctx, bad); !errors.Is(err, mesh.ErrAuthFailed) {
		if m != nil {
			_ = m.Close(ctx)
		}
		t.Errorf("over TLS with a wrong password: %v; want ErrAuthFailed", err)
	}
}

// countingProxy forwards loopback connections to backend and counts them.
func countingProxy(t *testing.T, backend string) (addr string, accepted func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var count atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			count.Add(1)
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(b, c); b.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, b); c.Close() }()
		}
	}()
	return l.Addr().String(), func() int { return int(count.Load()) }
}

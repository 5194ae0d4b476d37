package mesh_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/mesh"
)

// testSASLExternal: a node with a client certificate registered to an
// account logs in with SASL EXTERNAL (no password) while it registers,
// so that its first event already carries the account's tag and a mesh
// binding its service to that account takes it; a certificate registered
// to no account, or to another account than SASLUser names, fails Connect
// at once with ErrAuthFailed, after one connection.
func testSASLExternal(t *testing.T, srv *ircd.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	external := func(service string, cert tls.Certificate) mesh.Config {
		c := testConfig(srv, service)
		c.Server, c.Namespace, c.AllowUnsigned = srv.TLSAddr(), "saslx", true
		c.TLS = &tls.Config{RootCAs: srv.TLSRoots(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		c.SASLExternal = true
		return c
	}
	bind := &envelope.AccountBinding{Accounts: map[string]string{"billing": externalAccount}}
	pub := external("billing", externalCert)
	pub.SASLUser, pub.Accounts = externalAccount, bind
	watch := testConfig(srv, "audit")
	watch.Namespace, watch.AllowUnsigned, watch.Accounts = "saslx", true, bind
	nodes := connectAll(t, pub, watch)
	billing, audit := nodes[0], nodes[1]

	var mu sync.Mutex
	var account string
	obs, err := audit.Observe(ctx, "invoices", func(o mesh.Observation) {
		if o.Mesh && o.Envelope != nil && o.From == billing.Nick() {
			mu.Lock()
			account = o.Tags["account"]
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()
	got := newSeen()
	if _, err := audit.Subscribe(ctx, "invoices", got.handle); err != nil {
		t.Fatal(err)
	}
	ack, err := billing.Publish(ctx, "invoices", []byte("first line, logged in"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "the bound service's event delivered", func() bool { return got.has(ack.ID) })
	mu.Lock()
	if account != externalAccount {
		t.Errorf("the EXTERNAL node's line carries account %q; want %q", account, externalAccount)
	}
	mu.Unlock()
	if r := audit.Stats().RejectedBy["wrong-sender"]; r != 0 {
		t.Errorf("the bound mesh refused %d lines of the node logged in with EXTERNAL", r)
	}

	stranger, _, err := ircd.NewClientCert("stranger")
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, cfg mesh.Config, want string) {
		t.Helper()
		addr, accepted := countingProxy(t, srv.TLSAddr())
		cfg.Server = addr
		cfg.RetryOnFailedConnect = true
		cfg.ConnectTimeout = 25 * time.Second
		cfg.ReconnectMin, cfg.ReconnectMax = 10*time.Millisecond, 50*time.Millisecond
		n, err := mesh.Connect(ctx, cfg)
		if n != nil {
			_ = n.Close(ctx)
		}
		if !errors.Is(err, mesh.ErrAuthFailed) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want ErrAuthFailed saying %q", what, err, want)
		}
		if got := accepted(); got != 1 {
			t.Errorf("%s: %d connections; want 1 (no retry after a refused login)", what, got)
		}
	}
	// atheme and ergo both say it in their 904 reply.
	refused("a certificate of no account", external("billing", stranger), "SASL authentication failed")
	other := external("billing", externalCert)
	other.SASLUser = "alice"
	refused("a certificate of another account than SASLUser", other, "logs in to account "+externalAccount+", not alice")
}

// TestSASLExternalConfig: EXTERNAL needs TLS with a client certificate,
// and no password; Connect says so before dialling.
func TestSASLExternalConfig(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cert, _, err := ircd.NewClientCert("x")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*mesh.Config)
		want string
	}{
		{"no TLS", func(c *mesh.Config) {}, "needs TLS with a client certificate"},
		{"no certificate", func(c *mesh.Config) { c.TLS = &tls.Config{} }, "needs TLS with a client certificate"},
		{"a password too", func(c *mesh.Config) {
			c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			c.SASLUser, c.SASLPassword = "dave", "pw"
		}, "leave SASLPassword empty"},
	} {
		cfg := mesh.DefaultConfig()
		cfg.Server, cfg.Service, cfg.SASLExternal = "127.0.0.1:1", "billing", true
		tc.edit(&cfg)
		n, err := mesh.Connect(ctx, cfg)
		if n != nil {
			_ = n.Close(ctx)
		}
		if !errors.Is(err, mesh.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrInvalidConfig saying %q", tc.name, err, tc.want)
		}
	}
}

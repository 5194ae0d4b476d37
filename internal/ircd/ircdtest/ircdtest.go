// Package ircdtest starts real IRC servers for tests, chosen by the
// MESH_IRCD environment variable (see ircd.ParseSpec), and stops them when
// the test ends. When a test fails, the server's log is printed with t.Log.
//
//	func TestSomething(t *testing.T) {
//		srv := ircdtest.Start(t)
//		caps := ircdtest.Probe(t, srv)
//		... connect bots to srv.Addr() ...
//	}
//
// StartWithAccounts gives the server accounts for SASL (InspIRCd linked to
// atheme-services, or ergo).
package ircdtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
)

// startTimeout bounds starting a server (or a linked pair) in a test.
const startTimeout = 60 * time.Second

// Spec returns the spec MESH_IRCD names; a bad value fails the test.
func Spec(t testing.TB) ircd.Spec {
	t.Helper()
	spec, err := ircd.SpecFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// Start starts the server MESH_IRCD names (InspIRCd by default) with
// default options and stops it when the test ends.
func Start(t testing.TB) *ircd.Server {
	t.Helper()
	return StartWith(t, Spec(t), ircd.Options{})
}

// StartWith starts the given server and stops it when the test ends. A
// server that crashed by itself makes the test fail at cleanup.
func StartWith(t testing.TB, spec ircd.Spec, opts ircd.Options) *ircd.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := ircd.Start(ctx, spec, opts)
	if err != nil {
		t.Fatalf("start %s: %v", spec, err)
	}
	cleanup(t, srv)
	return srv
}

// StartLinked starts two InspIRCd servers linked over loopback and stops
// them when the test ends. It uses the InspIRCd MESH_IRCD names, or the
// installed one when MESH_IRCD names another server; in that case a missing
// InspIRCd skips the test, while a missing InspIRCd that MESH_IRCD asked for
// (or the default) fails it.
func StartLinked(t testing.TB) (a, b *ircd.Server) {
	t.Helper()
	env := Spec(t)
	spec := ircd.LinkSpec(env)
	if _, err := spec.Binary(); err != nil {
		if errors.Is(err, ircd.ErrNotInstalled) && env.Kind != ircd.InspIRCd {
			t.Skipf("linked servers need InspIRCd, which is missing (%s=%s): %v", ircd.EnvVar, env, err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	a, b, err := ircd.StartLinked(ctx, spec, ircd.Options{})
	if err != nil {
		t.Fatalf("start linked InspIRCd pair: %v", err)
	}
	cleanup(t, b)
	cleanup(t, a)
	return a, b
}

// StartWithAccounts starts the server MESH_IRCD names with password
// accounts (name → password; see ircd.StartWithAccounts) and stops it when
// the test ends. On a server without accounts (ngIRCd) the test fails
// with "this server has no accounts": a test that should run there too
// checks ircd.HasAccounts(Spec(t).Kind) first.
func StartWithAccounts(t testing.TB, accounts map[string]string) *ircd.Server {
	t.Helper()
	var list []ircd.Account
	for name, pw := range accounts {
		list = append(list, ircd.Account{Name: name, Password: pw})
	}
	return StartAccountServer(t, Spec(t), ircd.Options{}, list...)
}

// StartAccountServer starts the given server with accounts (see
// ircd.StartWithAccounts: SASL, a TLS port, certificate fingerprints for
// SASL EXTERNAL) and stops every process it started when the test ends.
func StartAccountServer(t testing.TB, spec ircd.Spec, opts ircd.Options, accounts ...ircd.Account) *ircd.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := ircd.StartWithAccounts(ctx, spec, opts, accounts...)
	if err != nil {
		t.Fatalf("start %s with accounts: %v", spec, err)
	}
	cleanup(t, srv)
	return srv
}

// Probe probes a server's capabilities (see ircd.Probe), failing the test
// on error.
func Probe(t testing.TB, srv *ircd.Server) *ircd.Caps {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	caps, err := ircd.Probe(ctx, srv.Addr())
	if err != nil {
		t.Fatalf("probe %s: %v", srv, err)
	}
	return caps
}

func cleanup(t testing.TB, srv *ircd.Server) {
	t.Cleanup(func() {
		err := srv.Stop()
		if err != nil || t.Failed() {
			t.Logf("%s (%s) log:\n%s", srv, srv.Name(), srv.Log())
		}
		if err != nil {
			t.Errorf("stop %s: %v", srv, err)
		}
	})
}

// StartNetwork starts a network of InspIRCd servers (see
// ircd.StartNetwork; the InspIRCd MESH_IRCD names, or the installed one,
// as for StartLinked) and stops it when the test ends. Its logs are
// printed when the test fails.
func StartNetwork(t testing.TB, opts ircd.NetworkOptions) *ircd.Network {
	t.Helper()
	env := Spec(t)
	spec := ircd.LinkSpec(env)
	if _, err := spec.Binary(); err != nil {
		if errors.Is(err, ircd.ErrNotInstalled) && env.Kind != ircd.InspIRCd {
			t.Skipf("a network needs InspIRCd, which is missing (%s=%s): %v", ircd.EnvVar, env, err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	n, err := ircd.StartNetwork(ctx, spec, opts)
	if err != nil {
		t.Fatalf("start InspIRCd network: %v", err)
	}
	t.Cleanup(func() {
		err := n.Stop()
		if err != nil || t.Failed() {
			t.Logf("network log:\n%s", n.Log())
		}
		if err != nil {
			t.Errorf("stop network: %v", err)
		}
	})
	return n
}

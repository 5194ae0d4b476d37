package ircd_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

func TestParseSpec(t *testing.T) {
	good := []struct {
		in   string
		want ircd.Spec
	}{
		{"", ircd.Spec{Kind: ircd.InspIRCd}},
		{"  ", ircd.Spec{Kind: ircd.InspIRCd}},
		{"inspircd", ircd.Spec{Kind: ircd.InspIRCd}},
		{"inspircd:/opt/insp/bin/inspircd", ircd.Spec{Kind: ircd.InspIRCd, Path: "/opt/insp/bin/inspircd"}},
		{"ngircd", ircd.Spec{Kind: ircd.NgIRCd}},
		{"ngircd:/usr/sbin/ngircd", ircd.Spec{Kind: ircd.NgIRCd, Path: "/usr/sbin/ngircd"}},
		{"ergo", ircd.Spec{Kind: ircd.Ergo}},
		{"ergo:/work/ergo-bin/ergo", ircd.Spec{Kind: ircd.Ergo, Path: "/work/ergo-bin/ergo"}},
		{"ergo:./ergo", ircd.Spec{Kind: ircd.Ergo, Path: "./ergo"}},
	}
	for _, tc := range good {
		got, err := ircd.ParseSpec(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if tc.in != "" && strings.TrimSpace(tc.in) != "" && got.String() != tc.in {
			t.Errorf("ParseSpec(%q).String() = %q", tc.in, got.String())
		}
	}
	bad := []struct{ in, mention string }{
		{"unrealircd", `unknown IRC server "unrealircd"`},
		{"InspIRCd", `unknown IRC server "InspIRCd"`},
		{"ergo:", `empty path`},
		{"ngircd: ", `empty path`},
		{":/usr/sbin/inspircd", `unknown IRC server ""`},
		{"/usr/sbin/inspircd", `unknown IRC server "/usr/sbin/inspircd"`},
	}
	for _, tc := range bad {
		_, err := ircd.ParseSpec(tc.in)
		if err == nil {
			t.Errorf("ParseSpec(%q) succeeded, want an error", tc.in)
			continue
		}
		msg := err.Error()
		for _, want := range []string{ircd.EnvVar, tc.mention, `"inspircd:/path/to/inspircd"`, `"ergo:/path/to/ergo"`} {
			if !strings.Contains(msg, want) {
				t.Errorf("ParseSpec(%q) error %q does not mention %q", tc.in, msg, want)
			}
		}
	}
}

func TestMissingBinary(t *testing.T) {
	spec := ircd.Spec{Kind: ircd.NgIRCd, Path: "/nonexistent/ngircd"}
	if _, err := spec.Binary(); !errors.Is(err, ircd.ErrNotInstalled) {
		t.Fatalf("Binary() error %v, want ErrNotInstalled", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv, err := ircd.Start(ctx, spec, ircd.Options{}); err == nil || !strings.Contains(err.Error(), "/nonexistent/ngircd") {
		if srv != nil {
			_ = srv.Stop()
		}
		t.Fatalf("Start with a missing binary: %v", err)
	}
}

// TestStopKillRestart checks the harness itself on the MESH_IRCD server:
// Stop is idempotent and frees the port and directory, Kill and Restart
// work on the same port.
func TestStopKillRestart(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	addr, dir := srv.Addr(), srv.Dir()
	if !strings.HasPrefix(addr, "127.0.0.1:") || srv.Port() == 0 {
		t.Fatalf("Addr %q, Port %d", addr, srv.Port())
	}
	if srv.Name() == "" {
		t.Fatal("no server name")
	}

	// Kill: like a crash; nothing listens any more.
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if srv.Running() {
		t.Fatal("Running after Kill")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("port still accepts connections after Kill")
	}

	// Restart after Kill, then a graceful Restart: same port, registrations work.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 2 {
		if err := srv.Restart(ctx); err != nil {
			t.Fatalf("Restart %d: %v", i+1, err)
		}
		if srv.Addr() != addr || !srv.Running() {
			t.Fatalf("after Restart %d: Addr %q (was %q), Running %v", i+1, srv.Addr(), addr, srv.Running())
		}
		if _, err := ircd.Probe(ctx, addr); err != nil {
			t.Fatalf("probe after Restart %d: %v", i+1, err)
		}
	}

	// Stop, twice.
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if srv.Running() {
		t.Fatal("Running after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s still there after Stop (%v)", dir, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port not free after Stop: %v", err)
	}
	l.Close()
	if srv.Log() == "" {
		t.Fatal("empty log after Stop")
	}
	if err := srv.Restart(ctx); err == nil {
		t.Fatal("Restart after Stop succeeded")
	}
	if err := srv.Kill(); err == nil {
		t.Fatal("Kill after Stop succeeded")
	}
}

// TestProbe checks the probe on the MESH_IRCD server against facts every
// supported server shares.
func TestProbe(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	caps := ircdtest.Probe(t, srv)
	if caps.ServerName != srv.Name() {
		t.Errorf("probe saw server %q, harness %q", caps.ServerName, srv.Name())
	}
	if n := caps.IntToken("NICKLEN", 0); n < 30 {
		t.Errorf("NICKLEN %d, want ≥ 30 (config)", n)
	}
	if n := caps.IntToken("CHANNELLEN", 0); n < 50 {
		t.Errorf("CHANNELLEN %d, want ≥ 50", n)
	}
	if caps.LineLen() != 512 {
		t.Errorf("LineLen %d, want 512", caps.LineLen())
	}
	if !strings.HasPrefix(caps.Source, caps.Nick+"!") || !strings.HasSuffix(caps.Source, "@127.0.0.1") {
		t.Errorf("own source %q (nick %q): want nick!user@127.0.0.1", caps.Source, caps.Nick)
	}
	// Cross-check with the configs: what each server must offer.
	switch srv.Kind() {
	case ircd.InspIRCd, ircd.Ergo:
		for _, c := range []string{"message-tags", "server-time", "echo-message", "batch", "labeled-response"} {
			if !caps.Has(c) {
				t.Errorf("%s does not offer %s", srv.Kind(), c)
			}
		}
	case ircd.NgIRCd:
		if caps.Has("message-tags") {
			t.Errorf("ngIRCd offers message-tags?")
		}
	}
	if srv.Kind() == ircd.Ergo {
		if caps.IntToken("CHATHISTORY", 0) != 1000 {
			t.Errorf("ergo CHATHISTORY=%q, want 1000", caps.ISupport["CHATHISTORY"])
		}
		if v := caps.Caps["draft/multiline"]; v != "max-bytes=65536,max-lines=1000" {
			t.Errorf("ergo draft/multiline=%q", v)
		}
	}
}

// TestLinkedRestart: after either server of a linked pair restarts (or
// crashes and restarts), the link comes back.
func TestLinkedRestart(t *testing.T) {
	t.Parallel()
	a, b := ircdtest.StartLinked(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ircd.WaitLinked(ctx, a, b); err != nil {
		t.Fatalf("after restarting %s: %v", b.Name(), err)
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ircd.WaitLinked(ctx, a, b); err != nil {
		t.Fatalf("after killing and restarting %s: %v", a.Name(), err)
	}
}

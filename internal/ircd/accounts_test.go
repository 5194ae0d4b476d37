package ircd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// accountsSpec is the MESH_IRCD server for the account tests. On a server
// without accounts (ngIRCd) the tests that need them do not run:
// TestAccountsRefused covers it.
func accountsSpec(t *testing.T) Spec {
	t.Helper()
	spec, err := SpecFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if !HasAccounts(spec.Kind) {
		t.Skipf("%s=%s has no accounts (no SASL); TestAccountsRefused checks that it says so", EnvVar, spec)
	}
	return spec
}

func startAccounts(t *testing.T, spec Spec, accounts ...Account) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	started := time.Now()
	s, err := StartWithAccounts(ctx, spec, Options{}, accounts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s with %d accounts ready in %v", s, len(accounts), time.Since(started).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("log:\n%s", s.Log())
		}
	})
	return s
}

// saslResult is how one SASL exchange ended.
type saslResult struct {
	numeric string // 903 success, 904 failure, 908 mechanisms, ...
	account string // from 900 (RPL_LOGGEDIN)
	text    string // the last parameter of the final numeric
}

// trySASL connects (over TLS with cert when tlsConf is set), asks for
// SASL mech with payload (base64-encoded here; "" sends "+") and returns
// the outcome, without registering.
func trySASL(t *testing.T, addr string, tlsConf *tls.Config, mech string, payload []byte) saslResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rc, err := dialRaw(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		tc := tls.Client(rc.conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			rc.Close()
			t.Fatalf("TLS handshake with %s: %v", addr, err)
		}
		rc = &rawConn{conn: tc, r: bufio.NewReaderSize(tc, maxLineBytes)}
	}
	defer rc.quit(ctx)
	for _, line := range []string{"CAP LS 302", "CAP REQ :sasl", "NICK sasltest", "USER u 0 * :sasl test"} {
		if err := rc.send(ctx, line); err != nil {
			t.Fatal(err)
		}
	}
	var res saslResult
	for {
		msg, err := rc.read(ctx)
		if err != nil {
			t.Fatalf("SASL %s on %s: %v", mech, addr, err)
		}
		last := ""
		if len(msg.Params) > 0 {
			last = msg.Params[len(msg.Params)-1]
		}
		switch msg.Command {
		case "CAP":
			if len(msg.Params) >= 2 && msg.Params[1] == "ACK" {
				_ = rc.send(ctx, "AUTHENTICATE "+mech)
			}
			if len(msg.Params) >= 2 && msg.Params[1] == "NAK" {
				t.Fatalf("the server refused CAP REQ sasl")
			}
		case "AUTHENTICATE":
			out := "+"
			if len(payload) > 0 {
				out = base64.StdEncoding.EncodeToString(payload)
			}
			_ = rc.send(ctx, "AUTHENTICATE "+out)
		case "900":
			if len(msg.Params) >= 3 {
				res.account = msg.Params[2]
			}
		case "903", "902", "904", "905", "906", "907", "908":
			res.numeric, res.text = msg.Command, last
			return res
		case "001":
			t.Fatalf("registered before SASL ended")
		}
	}
}

func plain(user, pass string) []byte { return []byte(user + "\x00" + user + "\x00" + pass) }

// TestAccountsSASL: the accounts a server starts with log in with SASL
// PLAIN and, over its TLS port with a client certificate, EXTERNAL; wrong
// passwords, unknown accounts and unknown certificates are refused.
func TestAccountsSASL(t *testing.T) {
	spec := accountsSpec(t)
	t.Parallel()
	cert, fp, err := NewClientCert("bob")
	if err != nil {
		t.Fatal(err)
	}
	stranger, _, err := NewClientCert("stranger")
	if err != nil {
		t.Fatal(err)
	}
	s := startAccounts(t, spec,
		Account{Name: "alice", Password: "alice-pw-1"},
		Account{Name: "bob", Password: "bob-pw-2", CertFP: fp},
	)
	if s.TLSAddr() == "" || s.TLSRoots() == nil {
		t.Fatalf("no TLS port: %q", s.TLSAddr())
	}
	tlsWith := func(c tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: s.TLSRoots(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{c}}
	}
	cases := []struct {
		name    string
		addr    string
		tls     *tls.Config
		mech    string
		payload []byte
		want    string // numeric
		account string
	}{
		{"plain", s.Addr(), nil, "PLAIN", plain("alice", "alice-pw-1"), "903", "alice"},
		{"plain second account", s.Addr(), nil, "PLAIN", plain("bob", "bob-pw-2"), "903", "bob"},
		{"plain over TLS", s.TLSAddr(), &tls.Config{RootCAs: s.TLSRoots(), ServerName: "127.0.0.1"}, "PLAIN", plain("alice", "alice-pw-1"), "903", "alice"},
		{"wrong password", s.Addr(), nil, "PLAIN", plain("alice", "not-the-password"), "904", ""},
		{"no such account", s.Addr(), nil, "PLAIN", plain("carol", "whatever"), "904", ""},
		{"external", s.TLSAddr(), tlsWith(cert), "EXTERNAL", nil, "903", "bob"},
		{"external unknown certificate", s.TLSAddr(), tlsWith(stranger), "EXTERNAL", nil, "904", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := trySASL(t, tc.addr, tc.tls, tc.mech, tc.payload)
			if got.numeric != tc.want || got.account != tc.account {
				t.Errorf("SASL %s: %s %q logged in as %q; want %s as %q", tc.mech, got.numeric, got.text, got.account, tc.want, tc.account)
			}
		})
	}
}

// TestAccountsStopAndRestart: Restart brings SASL back (InspIRCd waits
// for atheme to link again), and Stop ends every process the harness
// started.
func TestAccountsStopAndRestart(t *testing.T) {
	spec := accountsSpec(t)
	t.Parallel()
	s := startAccounts(t, spec, Account{Name: "dave", Password: "dave-pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := trySASL(t, s.Addr(), nil, "PLAIN", plain("dave", "dave-pw")); got.numeric != "903" {
		t.Fatalf("after Restart: SASL %s %q", got.numeric, got.text)
	}
	pids := []int{s.proc.cmd.Process.Pid}
	if s.services != nil {
		pids = append(pids, s.services.pid())
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Errorf("directory %s not removed: %v", s.Dir(), err)
	}
	if spec.Kind == InspIRCd && !strings.Contains(s.Log(), "--- "+AthemeName+" ---") {
		t.Errorf("Log has no %s section", AthemeName)
	}
}

// TestAccountsRefused: ngIRCd has no SASL, so no accounts: the error says
// so at once, without starting anything.
func TestAccountsRefused(t *testing.T) {
	t.Parallel()
	_, err := StartWithAccounts(context.Background(), Spec{Kind: NgIRCd}, Options{}, Account{Name: "x", Password: "y"})
	if !errors.Is(err, ErrNoAccounts) || !strings.Contains(err.Error(), "this server has no accounts") {
		t.Fatalf("StartWithAccounts(ngircd): %v; want ErrNoAccounts", err)
	}
}

func TestAccountsValidation(t *testing.T) {
	t.Parallel()
	bad := []Account{
		{Name: "", Password: "p"},
		{Name: "1abc", Password: "p"},
		{Name: "has space", Password: "p"},
		{Name: strings.Repeat("a", 31), Password: "p"},
		{Name: "ok", Password: ""},
		{Name: "ok", Password: "two words"},
		{Name: "ok", Password: "p", CertFP: "abc"},
	}
	for _, a := range bad {
		if err := validateAccounts([]Account{a}); err == nil {
			t.Errorf("account %+v accepted", a)
		}
	}
	if err := validateAccounts([]Account{{Name: "Ab", Password: "p"}, {Name: "aB", Password: "q"}}); err == nil {
		t.Error("the same name twice (case aside) accepted")
	}
	good := []Account{{Name: "svc-bot_1", Password: "p@ss:w0rd!"}, {Name: "[x]", Password: "p", CertFP: strings.Repeat("ab", 32)}}
	if err := validateAccounts(good); err != nil {
		t.Error(err)
	}
}

func TestAthemeSeed(t *testing.T) {
	got := string(athemeSeed([]Account{{Name: "a", Password: "p"}, {Name: "B", Password: "q", CertFP: "ff"}}, time.Unix(100, 0)))
	want := "DBV 12\n" +
		"MU AAA000001 a p a@meshbot.test 100 100 +s default\n" +
		"MU AAA000002 B q b@meshbot.test 100 100 +s default\n" +
		"MCFP B ff\n"
	if got != want {
		t.Errorf("seed:\n%s\nwant:\n%s", got, want)
	}
}

// TestAccountsServicesFail: when the services daemon dies or never links,
// StartWithAccounts fails with an error that says so and quotes its
// output, within the ready timeout, and leaves nothing running.
func TestAccountsServicesFail(t *testing.T) {
	spec := accountsSpec(t)
	if spec.Kind != InspIRCd {
		t.Skipf("%s has its accounts built in: no services daemon to fail", spec.Kind)
	}
	cases := []struct {
		name, script, want, out string
	}{
		{"exits", "echo atheme-broken-config >&2; exit 1", AthemeName + " exited", "atheme-broken-config"},
		{"never links", "echo atheme-waiting; exec sleep 60", "no SASL after 3s", "atheme-waiting"},
	}
	t.Parallel()
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		_, err := StartWithAccounts(context.Background(), spec, Options{ServicesPath: "/nonexistent/atheme-services"}, Account{Name: "a", Password: "b"})
		if !errors.Is(err, ErrNotInstalled) {
			t.Errorf("with a missing services daemon: %v; want ErrNotInstalled", err)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			script := "#!/bin/sh\necho $$ > " + dir + "/pid\n" + tc.script + "\n"
			if err := os.WriteFile(dir+"/fake-atheme", []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			opts := Options{ReadyTimeout: 3 * time.Second, ServicesPath: dir + "/fake-atheme"}
			s, err := StartWithAccounts(ctx, spec, opts, Account{Name: "a", Password: "b"})
			if err == nil {
				_ = s.Stop()
				t.Fatal("started with a broken services daemon")
			}
			for _, want := range []string{tc.want, tc.out, "--- " + AthemeName + " log (tail) ---", "--- server log (tail) ---"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
			b, rerr := os.ReadFile(dir + "/pid")
			if rerr != nil {
				t.Fatalf("the fake daemon did not run: %v", rerr)
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("the daemon (pid %d) is still there (kill 0: %v)", pid, err)
			}
		})
	}
}

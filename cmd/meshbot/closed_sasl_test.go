package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// TestSASLCLI: a bound mesh from the command line. A tail binding the
// billing service to the billing account shows what billing publishes
// logged in with a password file (SASL PLAIN), and over TLS with a client
// certificate (--tls-cert, --tls-ca, SASL EXTERNAL), and refuses the same
// service not logged in; a wrong password file fails at once with the
// server's reason. A saved context holds the same settings.
func TestSASLCLI(t *testing.T) {
	t.Parallel()
	if spec := ircdtest.Spec(t); !ircd.HasAccounts(spec.Kind) {
		t.Skipf("%s=%s has no accounts (no SASL): the SASL flags need InspIRCd (with atheme-services) or ergo", ircd.EnvVar, spec)
	}
	cert, fp, err := ircd.NewClientCert("billing")
	if err != nil {
		t.Fatal(err)
	}
	srv := ircdtest.StartAccountServer(t, ircdtest.Spec(t), ircd.Options{},
		ircd.Account{Name: "billing", Password: "billing-pw-1", CertFP: fp})
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile := write("billing.pem", &pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	// The server's certificate is self-signed: it is its own CA.
	conn, err := tls.Dial("tcp", srv.TLSAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	caFile := write("server.pem", &pem.Block{Type: "CERTIFICATE", Bytes: conn.ConnectionState().PeerCertificates[0].Raw})
	conn.Close()
	passFile := filepath.Join(dir, "billing.pass")
	badFile := filepath.Join(dir, "bad.pass")
	if err := os.WriteFile(passFile, []byte("billing-pw-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badFile, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	base := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "acct", "MESHBOT_ALLOW_UNSIGNED": "1"}
	tail := startCLI(t, base, "tail", "invoices", "--account", "billing=billing")
	waitFor(t, "tail", tail.errbuf, "watching", 20*time.Second)
	for _, tc := range []struct {
		payload string
		args    []string
	}{
		{"with-a-password-file", []string{"--sasl-user", "billing", "--sasl-pass-file", passFile}},
		{"with-a-certificate", []string{"--server", srv.TLSAddr(), "--tls-cert", certFile, "--tls-ca", caFile, "--sasl-external", "--sasl-user", "billing"}},
	} {
		args := append([]string{"pub", "invoices", tc.payload, "--service", "billing"}, tc.args...)
		if r := runCLI(t, base, "", args...); r.code != 0 {
			t.Fatalf("pub %s: exit %d %s", tc.payload, r.code, r.stderr)
		}
		waitFor(t, "tail", tail.out, tc.payload, 10*time.Second)
	}
	// The same from a saved context (~ is the home directory).
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(`[contexts.billing]
server = "`+srv.TLSAddr()+`"
namespace = "acct"
tls_cert = "~/billing.pem"
tls_ca = "~/server.pem"
sasl_external = true
sasl_user = "billing"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	home := map[string]string{"MESHBOT_CONFIG": cfgPath, "HOME": dir, "MESHBOT_ALLOW_UNSIGNED": "1"}
	if r := runCLI(t, home, "", "pub", "invoices", "from-a-context", "--service", "billing", "--context", "billing"); r.code != 0 {
		t.Fatalf("pub --context billing: exit %d %s", r.code, r.stderr)
	}
	waitFor(t, "tail", tail.out, "from-a-context", 10*time.Second)
	if r := runCLI(t, base, "", "pub", "invoices", "not-logged-in", "--service", "billing"); r.code != 0 {
		t.Fatalf("pub not logged in: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, base, "", "pub", "invoices", "last", "--service", "billing", "--sasl-user", "billing", "--sasl-pass-file", passFile); r.code != 0 {
		t.Fatalf("pub: exit %d %s", r.code, r.stderr)
	}
	waitFor(t, "tail", tail.out, "last", 10*time.Second)
	if strings.Contains(tail.out.String(), "not-logged-in\n") || !strings.Contains(tail.out.String(), "REJECTED wrong-sender") {
		t.Errorf("the tail bound to billing's account did not refuse billing not logged in:\n%s", tail.out)
	}

	start := time.Now()
	r := runCLI(t, base, "", "pub", "invoices", "x", "--service", "billing", "--sasl-user", "billing", "--sasl-pass-file", badFile)
	if r.code != 1 || !strings.Contains(r.stderr, "SASL authentication failed") {
		t.Errorf("a wrong password file: exit %d, stderr %q; want 1 and the server's reason", r.code, r.stderr)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("a wrong password failed after %v, not at once", d)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sasl-external"}, "--sasl-external needs a client certificate (--tls-cert)"},
		{[]string{"--sasl-external", "--tls-cert", certFile, "--sasl-pass-file", passFile}, "--sasl-external logs in with the client certificate: give no SASL password"},
		{[]string{"--sasl-user", "billing", "--sasl-pass", "x", "--sasl-pass-file", passFile}, "--sasl-pass and --sasl-pass-file exclude each other"},
		{[]string{"--tls-key", certFile}, "--tls-key needs --tls-cert"},
	} {
		r := runCLI(t, base, "", append([]string{"pub", "invoices", "x"}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("pub %v: exit %d, stderr %q; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// TestServeNickTaken: serve with a fixed instance whose nick someone else
// holds fails, naming the nick, instead of running under another one.
func TestServeNickTaken(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	squatter := dialIRC(t, srv.Addr(), "shop-3")
	squatter.send("JOIN #nt._hb")
	squatter.expect("366")
	r := runCLI(t, map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "nt"}, "",
		"serve", "--service", "shop", "--instance", "3", "--allow-unsigned")
	if r.code != 1 || !strings.Contains(r.stderr, "shop-3 is in use by someone else") {
		t.Errorf("serve --instance 3 with shop-3 taken: exit %d, stderr %q; want 1 naming the nick", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "ready") {
		t.Errorf("serve said it was ready under another nick: %q", r.stdout)
	}
}

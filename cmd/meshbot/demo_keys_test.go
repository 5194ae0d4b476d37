package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// demoExport is the line the demo prints for another terminal.
var demoExport = regexp.MustCompile(`export MESHBOT_HMAC_KEY_FILE=(\S+) MESHBOT_KEYRING=(\S+) MESHBOT_REQUIRE_SIGNED=1`)

// demoKeyEnv is the environment the demo's export line sets.
func demoKeyEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	m := demoExport.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo printed no export line:\n%s", out)
	}
	return map[string]string{"MESHBOT_HMAC_KEY_FILE": m[1], "MESHBOT_KEYRING": m[2], "MESHBOT_REQUIRE_SIGNED": "1"}
}

// TestDemoSigned: the demo runs a signed mesh with a key of its own. An
// unsigned publish from another terminal is refused by its bots; one made
// with the export line the demo prints is taken; the key file is gone
// once the demo stops.
func TestDemoSigned(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	b := startCLI(t, nil, "demo", "--server", srv.Addr(), "--duration", "6s", "--interval", "1s")
	waitFor(t, "demo", b.out, "[audit-1] recorded order #1 ", 20*time.Second)
	m := demoExport.FindStringSubmatch(b.out.String())
	if m == nil || m[1] != m[2] {
		t.Fatalf("no export line:\n%s", b.out)
	}
	if _, err := os.Stat(m[1]); err != nil {
		t.Fatalf("the key file the demo names: %v", err)
	}
	env := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_ALLOW_UNSIGNED": "1"}
	if r := runCLI(t, env, "", "pub", "orders.created", `{"order":901,"item":"tea","qty":1}`); r.code != 0 {
		t.Fatalf("unsigned pub: exit %d %s", r.code, r.stderr)
	}
	signed := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_HMAC_KEY_FILE": m[1], "MESHBOT_KEYRING": m[2], "MESHBOT_REQUIRE_SIGNED": "1"}
	if r := runCLI(t, signed, "", "pub", "orders.created", `{"order":902,"item":"tea","qty":1}`); r.code != 0 {
		t.Fatalf("signed pub: exit %d %s", r.code, r.stderr)
	}
	waitFor(t, "demo", b.out, "[audit-1] recorded order #902 ", 10*time.Second)
	var code int
	select {
	case code = <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatal("demo --duration 6s did not end")
	}
	b.done <- code
	if code != 0 {
		t.Fatalf("demo exit %d\n%s", code, b.errbuf)
	}
	if strings.Contains(b.out.String(), "recorded order #901 ") {
		t.Errorf("the demo's bots took an unsigned order:\n%s", b.out)
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("the key file outlived the demo: %v", err)
	}
}

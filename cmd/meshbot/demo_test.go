package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// demoWants are what a few seconds of demo show.
var demoWants = []*regexp.Regexp{
	regexp.MustCompile(`Watch it from any IRC client: connect to 127\.0\.0\.1 port \d+, then /join #mesh\.orders\.created,#mesh\._hb`),
	regexp.MustCompile(`(?m)^\S+    \[pricing-1\] quote for order #1: \d × \w+ @ \d+\.\d\d = \d+\.\d\d$`),
	regexp.MustCompile(`(?m)^\S+    \[orders-1\] order #1: .* → published [0-9a-f]{8}$`),
	regexp.MustCompile(`(?m)^\S+    \[audit-1\] recorded order #1 \([0-9a-f]{8}\) from orders-1: `),
	regexp.MustCompile(`(?m)^\S+    \[audit-2\] recorded order #1 \([0-9a-f]{8}\) from orders-1: `),
	regexp.MustCompile(`(?m)^\S+  orders\.created +orders-1 +event +[0-9a-f]{8}  \{"order":1,"item":"\w+","qty":\d,"total":"[0-9.]+"\}  ct=application/json$`),
	regexp.MustCompile(`(?m)^meshbot demo: [1-9]\d* orders published, [1-9]\d* quoted by pricing, \d+ refused; audit-1 recorded [1-9]\d*; audit-2 recorded [1-9]\d* \(multicast`),
}

func checkDemo(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range demoWants {
		if !want.MatchString(r.stdout) {
			t.Errorf("demo output does not match %s:\n%s", want, r.stdout)
		}
	}
	// Both audit instances recorded the same number of orders (multicast).
	m := regexp.MustCompile(`audit-1 recorded (\d+); audit-2 recorded (\d+)`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] != m[2] {
		t.Errorf("audit instances recorded different counts: %v", m)
	}
}

// TestDemoExistingServer runs the demo against a server it did not start,
// and scrapes its metrics while it runs.
func TestDemoExistingServer(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	start := time.Now()
	// MESHBOT_SERVER is ignored by demo: only --server counts.
	b := startCLI(t, map[string]string{"MESHBOT_SERVER": "127.0.0.1:1"},
		"demo", "--server", srv.Addr(), "--duration", "3s", "--metrics-addr", "127.0.0.1:0")
	waitFor(t, "demo", b.out, "[audit-2] recorded order #1 ", 20*time.Second)
	addr := regexp.MustCompile(`metrics at (http://\S+/metrics)`).FindStringSubmatch(b.errbuf.String())
	if addr == nil {
		t.Fatalf("no metrics address in:\n%s", b.errbuf)
	}
	resp, err := http.Get(addr[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`meshbot_delivered_total{instance="2",namespace="mesh",service="audit"} `,
		`meshbot_requests_served_total{instance="1",namespace="mesh",service="pricing"} `,
		`meshbot_handler_duration_seconds_count{instance="1",namespace="mesh",service="pricing"} `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var code int
	select {
	case code = <-b.done:
	case <-time.After(20 * time.Second):
		t.Fatal("demo --duration 3s did not end")
	}
	b.done <- code
	checkDemo(t, result{code, b.out.String(), b.errbuf.String()})
	if !strings.Contains(b.out.String(), "a mesh on the IRC server at "+srv.Addr()) {
		t.Errorf("header does not name %s:\n%s", srv.Addr(), b.out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("demo --duration 3s took %v", d)
	}
	if !srv.Running() {
		t.Error("the demo stopped a server it did not start")
	}
}

// TestDemoOwnServer lets the demo start its own server (the one MESH_IRCD
// names; InspIRCd by default) and checks that it is gone afterwards.
func TestDemoOwnServer(t *testing.T) {
	t.Parallel()
	spec := ircdtest.Spec(t)
	r := runCLI(t, map[string]string{ircd.EnvVar: os.Getenv(ircd.EnvVar)}, "", "demo", "--port", "0", "--duration", "2s")
	checkDemo(t, r)
	if !strings.Contains(r.stderr, "starting "+string(spec.Kind)) {
		t.Errorf("stderr: %q", r.stderr)
	}
	m := regexp.MustCompile(`a mesh on ` + string(spec.Kind) + ` at (127\.0\.0\.1:\d+)\.`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("header does not name the server:\n%s", r.stdout)
	}
	if c, err := net.DialTimeout("tcp", m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("the demo's server at %s still accepts connections", m[1])
	}
}

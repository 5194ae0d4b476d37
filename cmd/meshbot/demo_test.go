package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// demoWants are what a few seconds of demo show: requests and their
// answers as traffic, the channel's events, the services' logs, the
// multicast and anycast handlers, and the summary.
var demoWants = []*regexp.Regexp{
	regexp.MustCompile(`Watch it and talk to it from any IRC client \(irssi, weechat, HexChat\):\n    /connect 127\.0\.0\.1 \d+\n    /join #mesh\.orders\.created\n    /msg pricing-1 quote \{"item":"tea","qty":2\}\n`),
	regexp.MustCompile(`(?m)^\S+  DM pricing\.quote  orders-1 +request  ([0-9a-f]{8})  \{"order":1,"item":"\w+","qty":\d\}$`),
	regexp.MustCompile(`(?m)^\S+  DM pricing\.quote  pricing-1 +answer   [0-9a-f]{8}  \{"order":1,"item":"\w+","qty":\d,"total":"\d+\.\d\d"\}$`),
	regexp.MustCompile(`(?m)^\S+    \[orders-1\] order #1: .* → published [0-9a-f]{8}$`),
	regexp.MustCompile(`(?m)^\S+    \[audit-1\] recorded order #1 \([0-9a-f]{8}\) from orders-1: `),
	regexp.MustCompile(`(?m)^\S+    \[audit-2\] recorded order #1 \([0-9a-f]{8}\) from orders-1: `),
	regexp.MustCompile(`(?m)^\S+    \[billing-[12]\] charged order #1 \([0-9a-f]{8}\): `),
	regexp.MustCompile(`(?m)^\S+  orders\.created +orders-1 +event +[0-9a-f]{8}  \{"order":1,"item":"\w+","qty":\d,"total":"[0-9.]+"\}  ct=application/json  signed=hmac-sha256:demo-[0-9a-f]{8}$`), // the demo mesh is signed
	regexp.MustCompile(`(?m)^  Try, from another terminal:\n    meshbot tail orders\.created`),
	regexp.MustCompile(`(?m)^meshbot demo: what the mesh did in \S+:\n  requests   orders-1 asked pricing for [1-9]\d* quotes by private message: [1-9]\d* answered, \d+ refused with error 400`),
	regexp.MustCompile(`(?m)^  events     [1-9]\d* orders published on orders\.created$`),
	regexp.MustCompile(`(?m)^  multicast  audit-1 recorded [1-9]\d*; audit-2 recorded [1-9]\d* \(every instance`),
	regexp.MustCompile(`(?m)^  anycast    billing-1 charged \d+; billing-2 charged \d+: [1-9]\d* charges for [1-9]\d* orders`),
	regexp.MustCompile(`(?m)^  members    .* orders depends on pricing$`),
	regexp.MustCompile(`(?m)^Try next: `),
}

// stamp is the time column of a demo line.
var stamp = regexp.MustCompile(`^(\d\d):(\d\d):(\d\d)\.(\d{3})  `)

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
	// Both audit instances recorded the same number of orders (multicast),
	// billing charged each order once (anycast).
	m := regexp.MustCompile(`audit-1 recorded (\d+); audit-2 recorded (\d+)`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] != m[2] {
		t.Errorf("audit instances recorded different counts: %v", m)
	}
	if m := regexp.MustCompile(`: (\d+) charges for (\d+) orders`).FindStringSubmatch(r.stdout); m == nil || m[1] != m[2] {
		t.Errorf("billing charged a different number of orders than were published: %v", m)
	}
	// Every request has its answer, after it.
	dm := regexp.MustCompile(`(?m)^\S+  DM pricing\.quote  \S+ +(request|answer) +([0-9a-f]{8})  `)
	asked := map[string]bool{}
	answered := 0
	for _, m := range dm.FindAllStringSubmatch(r.stdout, -1) {
		switch {
		case m[1] == "request":
			asked[m[2]] = true
		case !asked[m[2]]:
			t.Errorf("answer %s before its request", m[2])
		default:
			answered++
			delete(asked, m[2])
		}
	}
	if answered == 0 || len(asked) > 1 { // the demo may stop between the last two
		t.Errorf("%d requests answered, %d not: %v", answered, len(asked), asked)
	}
	// Time order: the stamps never go back.
	prev, lines := "", 0
	for _, line := range strings.Split(r.stdout, "\n") {
		s := stamp.FindString(line)
		if s == "" {
			continue
		}
		lines++
		if s < prev {
			t.Errorf("out of time order: %q after %s", line, prev)
		}
		prev = s
	}
	if lines < 10 {
		t.Errorf("only %d stamped lines:\n%s", lines, r.stdout)
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

// TestDemoPortTaken asks the demo for a port another IRC server holds: it
// says so and stops, instead of running its bots on the other server.
func TestDemoPortTaken(t *testing.T) {
	t.Parallel()
	other := ircdtest.Start(t)
	port := strconv.Itoa(other.Port())
	r := runCLI(t, map[string]string{ircd.EnvVar: os.Getenv(ircd.EnvVar)}, "", "demo", "--port", port, "--duration", "2s")
	if r.code != 1 || !strings.Contains(r.stderr, "port "+port+" of 127.0.0.1 is taken by another process") {
		t.Errorf("demo on a taken port: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "a mesh on") {
		t.Errorf("the demo ran on the other server:\n%s", r.stdout)
	}
}

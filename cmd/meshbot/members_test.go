package main

import (
	"bufio"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// meshNode connects an in-process node of service/instance that depends on
// depends and subscribes to topics; it is closed when the test ends (or
// earlier by the caller).
func meshNode(t *testing.T, srv *ircd.Server, namespace, service, instance string, depends []string, topics ...string) *mesh.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service, cfg.Instance, cfg.Depends = srv.Addr(), namespace, service, instance, depends
	n, err := mesh.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeNow(n) })
	for _, topic := range topics {
		if _, err := n.Subscribe(ctx, topic, func(context.Context, *mesh.Message) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func closeNow(n *mesh.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.Close(ctx)
}

// TestMembers runs members (table, JSON, filtered) against a mesh of
// three services, two of which depend on each other.
func TestMembers(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "mb"}
	alpha := meshNode(t, srv, "mb", "alpha", "1", []string{"beta"})
	if err := alpha.Handle("ping", func(context.Context, *mesh.Request) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	meshNode(t, srv, "mb", "beta", "1", []string{"alpha"})
	meshNode(t, srv, "mb", "gamma", "x7", []string{"alpha", "zeta"}, "orders.created", "orders.cancelled")
	meshNode(t, srv, "other", "delta", "1", nil) // another namespace: not a member

	t.Run("table", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, environ, "", "members", "--instance", "self1")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^SERVICE +INSTANCE +NICK +STATE +LAST BEAT +LOAD +SUBSCRIPTIONS +METHODS +DEPENDS$`),
			regexp.MustCompile(`(?m)^alpha +1 +alpha-1 +alive +\d+\.\ds ago +0\.00 +- +ping +beta$`),
			regexp.MustCompile(`(?m)^beta +1 +beta-1 +alive +\d+\.\ds ago +0\.00 +- +- +alpha$`),
			regexp.MustCompile(`(?m)^gamma +x7 +gamma-x7 +alive +\d+\.\ds ago +0\.00 +orders\.cancelled, orders\.created +- +alpha, zeta$`),
			regexp.MustCompile(`(?m)^DEPENDENCIES\n  alpha → beta +\(on a cycle\)\n  beta +→ alpha +\(on a cycle\)\n  gamma → alpha, zeta \(no live instance\)\n\ncycle: alpha → beta → alpha\n$`),
		} {
			if !want.MatchString(r.stdout) {
				t.Errorf("output does not match %s:\n%s", want, r.stdout)
			}
		}
		// (The other subtests' nodes, service meshbot, may be listed.)
		if strings.Contains(r.stdout, "meshbot-self1") || strings.Contains(r.stdout, "delta") {
			t.Errorf("the tool's own node or another namespace's is listed:\n%s", r.stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, environ, "", "members", "--json", "--settle", "1500ms")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		var doc membersDoc
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if dec.More() {
			t.Errorf("more than one JSON document:\n%s", r.stdout)
		}
		if doc.Namespace != "mb" || doc.Channel != "#mb._hb" || !strings.HasPrefix(doc.Observer, "meshbot-") || doc.SettleMS != 1500 {
			t.Errorf("header: %+v", doc)
		}
		var services []string
		for _, m := range doc.Members {
			if m.Service != "meshbot" { // the other subtests' nodes
				services = append(services, m.Service)
			}
			if m.Nick == doc.Observer {
				t.Errorf("the observer lists itself: %+v", m)
			}
		}
		if strings.Join(services, " ") != "alpha beta gamma" {
			t.Fatalf("members %v, want alpha beta gamma:\n%s", services, r.stdout)
		}
		var g *memberView
		for _, m := range doc.Members {
			if m.Service == "gamma" {
				g = m
			}
			if m.Service == "alpha" && strings.Join(m.Methods, ",") != "ping" {
				t.Errorf("alpha's methods: %v", m.Methods)
			}
		}
		if g.Service != "gamma" || g.Instance != "x7" || g.Nick != "gamma-x7" || g.State != "alive" ||
			g.Incarnation == 0 || g.IntervalMS != 1000 || g.Seq == 0 || g.LastBeat.IsZero() ||
			g.LastBeatAgeMS < 0 || g.LastBeatAgeMS > 5000 ||
			len(g.Subs) != 2 || g.Subs[0].Topic != "orders.cancelled" ||
			strings.Join(g.Depends, ",") != "alpha,zeta" {
			t.Errorf("gamma: %+v", g)
		}
		if strings.Join(doc.Dependencies["alpha"], ",") != "beta" || strings.Join(doc.Dependencies["gamma"], ",") != "alpha,zeta" ||
			strings.Join(doc.Missing["gamma"], ",") != "zeta" || len(doc.Missing) != 1 {
			t.Errorf("dependencies %v, missing %v", doc.Dependencies, doc.Missing)
		}
		if len(doc.Cycles) != 1 || strings.Join(doc.Cycles[0], ",") != "alpha,beta" {
			t.Errorf("cycles: %v", doc.Cycles)
		}
		// Field names, as documented.
		var raw map[string]any
		_ = json.Unmarshal([]byte(r.stdout), &raw)
		m0 := raw["members"].([]any)[0].(map[string]any)
		for _, k := range []string{"service", "instance", "nick", "incarnation", "state", "since", "last_beat", "last_beat_age_ms", "interval_ms", "load", "subs", "methods", "depends"} {
			if _, ok := m0[k]; !ok {
				t.Errorf("member lacks %q: %v", k, m0)
			}
		}
	})

	t.Run("filter", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, environ, "", "members", "gamma", "nosuch")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "gamma-x7") || strings.Contains(r.stdout, "alpha-1") || strings.Contains(r.stdout, "beta-1") {
			t.Errorf("filtered table:\n%s", r.stdout)
		}
		// gamma is on no cycle; its dependency alpha is live (not filtered
		// into "no live instance").
		if !strings.Contains(r.stdout, "  gamma → alpha, zeta (no live instance)\n\nno dependency cycles\n") {
			t.Errorf("filtered graph:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "no live instance of nosuch on #mb._hb") {
			t.Errorf("stderr: %q", r.stderr)
		}

		r = runCLI(t, environ, "", "members", "beta", "--json")
		var doc membersDoc
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
			t.Fatalf("exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if len(doc.Members) != 1 || doc.Members[0].Service != "beta" || len(doc.Dependencies) != 1 || len(doc.Cycles) != 1 {
			t.Errorf("filtered JSON: %s", r.stdout)
		}
	})
}

// TestMembersWatch: --watch (text and JSON) reports a node that joins and
// leaves, and the dependency cycle it makes and breaks; --all shows the
// node dead after it left.
func TestMembersWatch(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "mw"}
	meshNode(t, srv, "mw", "alpha", "1", []string{"beta"})

	text := startCLI(t, environ, "members", "--watch")
	jsonl := startCLI(t, environ, "members", "--watch", "--json")
	filtered := startCLI(t, environ, "members", "--watch", "nosuch")
	all := make(chan result, 1)
	go func() { all <- runCLI(t, environ, "", "members", "--all", "--settle", "4s") }()
	for _, b := range []*background{text, jsonl, filtered} {
		waitFor(t, "members --watch", b.errbuf, "watching #mw._hb", 15*time.Second)
	}
	if !regexp.MustCompile(`(?m)^alpha +1 +alpha-1 +alive `).MatchString(text.out.String()) {
		t.Errorf("watch does not start with the table:\n%s", text.out)
	}

	beta := meshNode(t, srv, "mw", "beta", "2", []string{"alpha"})
	waitFor(t, "members --watch", text.out, "beta/2", 10*time.Second)
	time.Sleep(300 * time.Millisecond) // the --all run hears a beat
	closeNow(beta)
	waitFor(t, "members --watch", text.out, "cycle-broken", 10*time.Second)
	waitFor(t, "members --watch --json", jsonl.out, "cycle-broken", 10*time.Second)

	out := text.out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  joined +beta/2 +beta-2 +depends=alpha$`),
		regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  cycle +alpha → beta → alpha$`),
		regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  left +beta/2 +beta-2 +\S.*$`),
		regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  cycle-broken +alpha → beta → alpha$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("watch output does not match %s:\n%s", want, out)
		}
	}
	if regexp.MustCompile(`joined +alpha/`).MatchString(out) {
		t.Errorf("a member of the first table is reported as joined:\n%s", out)
	}

	var kinds []string
	sc := bufio.NewScanner(strings.NewReader(jsonl.out.String()))
	for sc.Scan() {
		var ev struct {
			Time     time.Time `json:"time"`
			Kind     string    `json:"kind"`
			Service  string    `json:"service"`
			Instance string    `json:"instance"`
			Nick     string    `json:"nick"`
			State    string    `json:"state"`
			Reason   string    `json:"reason"`
			Cycle    []string  `json:"cycle"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if ev.Service == "meshbot" {
			continue // the other watchers
		}
		if ev.Time.IsZero() {
			t.Errorf("no time: %s", sc.Text())
		}
		k := ev.Kind + " " + ev.Service + "/" + ev.Instance + " " + ev.Nick + " " + ev.State
		switch ev.Kind {
		case "cycle", "cycle-broken":
			k = ev.Kind + " " + strings.Join(ev.Cycle, ",")
		case "left":
			if ev.Reason == "" {
				t.Errorf("left without a reason: %s", sc.Text())
			}
		}
		kinds = append(kinds, k)
	}
	want := []string{"present alpha/1 alpha-1 alive", "joined beta/2 beta-2 alive", "cycle alpha,beta", "left beta/2 beta-2 dead", "cycle-broken alpha,beta"}
	if strings.Join(kinds, "\n") != strings.Join(want, "\n") {
		t.Errorf("JSON events:\n%s\nwant:\n%s\n%s", strings.Join(kinds, "\n"), strings.Join(want, "\n"), jsonl.out)
	}

	for _, b := range []*background{text, jsonl, filtered} {
		if code := b.stop(t); code != 0 {
			t.Errorf("exit %d after the interrupt\n%s", code, b.errbuf)
		}
	}
	if !regexp.MustCompile(`meshbot: \d+ membership events\n$`).MatchString(text.errbuf.String()) {
		t.Errorf("summary: %q", text.errbuf)
	}
	if got := filtered.out.String(); got != "no live members of nosuch seen on #mw._hb in 1.5s\n\n" {
		t.Errorf("filtered watch printed %q", got)
	}

	r := <-all
	if r.code != 0 || !regexp.MustCompile(`(?m)^beta +2 +beta-2 +dead `).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^alpha +1 +alpha-1 +alive .* beta$`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "alpha → beta (no live instance)") {
		t.Errorf("members --all: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestMembersErrors: bad arguments are usage errors; an unreachable server
// exits 1.
func TestMembersErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"members", "Orders"}, `meshbot: members: service "Orders": names are a-z`},
		{[]string{"members", "--settle", "-1s"}, "meshbot: members: --settle -1s: want a duration of 0 or more"},
		{[]string{"members", "--server", closedAddr(t)}, "meshbot: cannot reach the IRC server at "},
	} {
		r := runCLI(t, nil, "", tc.args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q; want 1, %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

func TestSubsText(t *testing.T) {
	got := subsText([]heartbeat.Sub{{Topic: "orders.created"}, {Topic: "jobs", Group: "workers"}})
	if got != "orders.created, workers:jobs" {
		t.Errorf("subsText: %q", got)
	}
	if ago(400*time.Millisecond) != "0.4s ago" || ago(125*time.Second) != "2m5s ago" {
		t.Errorf("ago: %q, %q", ago(400*time.Millisecond), ago(125*time.Second))
	}
	if cycleText([]string{"a", "b"}) != "a → b → a" {
		t.Errorf("cycleText: %q", cycleText([]string{"a", "b"}))
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestServe runs serve in-process against a real server and drives it from
// a node: multicast events (text and binary) end up in the events file, a
// request is answered and recorded, the periodic publisher's events arrive
// and are recorded as published, "ready" is printed once, and an interrupt
// stops it cleanly.
func TestServe(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "sv"}
	b := startCLI(t, environ, "serve", "--service", "svc", "--instance", "1",
		"--subscribe", "orders.created", "--subscribe", "#sv.bin",
		"--handle", "echo", "--publish", "ticks", "--every", "100ms",
		"--events", events, "--log-level", "debug")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service, cfg.Instance = srv.Addr(), "sv", "tester", "1"
	node, err := mesh.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close(context.Background())
	ticks := make(chan *mesh.Message, 100)
	if _, err := node.Subscribe(ctx, "ticks", func(_ context.Context, m *mesh.Message) error {
		select {
		case ticks <- m:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "serve stdout", b.out, "\n", 20*time.Second)
	if got := b.out.String(); got != "ready svc-1\n" {
		t.Fatalf("serve stdout: %q, want %q", got, "ready svc-1\n")
	}

	ack, err := node.Publish(ctx, "orders.created", []byte(`{"order":1}`))
	if err != nil {
		t.Fatal(err)
	}
	binAck, err := node.Publish(ctx, "bin", []byte{0, 1, 0xff})
	if err != nil {
		t.Fatal(err)
	}
	answer, err := node.Request(ctx, "svc", "echo", []byte("hi"))
	if err != nil || string(answer) != "svc-1: hi" {
		t.Fatalf("request: %q, %v; want %q", answer, err, "svc-1: hi")
	}
	var tick *mesh.Message
	select {
	case tick = <-ticks:
	case <-ctx.Done():
		t.Fatal("no event from the periodic publisher")
	}
	if tick.From != "svc-1" || !strings.HasPrefix(string(tick.Payload), `{"from":"svc-1","seq":`) {
		t.Errorf("tick from %s: %s", tick.From, tick.Payload)
	}

	want := map[string]func(r serveRecord) bool{
		"text event": func(r serveRecord) bool {
			return r.Kind == "event" && r.Topic == "orders.created" && r.ID == ack.ID.String() &&
				r.Payload != nil && *r.Payload == `{"order":1}` && r.From == "tester-1"
		},
		"binary event": func(r serveRecord) bool {
			return r.Kind == "event" && r.Topic == "bin" && r.ID == binAck.ID.String() &&
				r.Payload == nil && r.PayloadBase64 == "AAH/" && r.From == "tester-1"
		},
		"request": func(r serveRecord) bool {
			return r.Kind == "request" && r.Method == "echo" && r.Payload != nil && *r.Payload == "hi" && r.From == "tester-1"
		},
		"tick": func(r serveRecord) bool {
			return r.Kind == "published" && r.Topic == "ticks" && r.ID == tick.ID.String() &&
				r.Payload != nil && *r.Payload == string(tick.Payload) && r.From == "svc-1"
		},
	}
	// The request was answered after it was recorded, but the events may
	// still be in the subscription queue, and the publisher records a tick
	// once its own confirm arrives: wait until every record is there.
	count := func(recs []serveRecord, match func(serveRecord) bool) int {
		n := 0
		for _, r := range recs {
			if match(r) {
				n++
			}
		}
		return n
	}
	var recs []serveRecord
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs = readRecords(t, events)
		all := true
		for _, match := range want {
			all = all && count(recs, match) > 0
		}
		if all {
			break
		}
	}
	for name, match := range want {
		if n := count(recs, match); n != 1 {
			t.Errorf("%s recorded %d times, want once; the file has:\n%s", name, n, readFile(t, events))
		}
	}
	for _, r := range recs {
		if r.At.IsZero() || time.Since(r.At) > time.Minute {
			t.Errorf("%s %s: at %v", r.Kind, r.ID, r.At)
		}
	}

	if code := b.stop(t); code != 0 {
		t.Errorf("serve exit %d after the interrupt\n%s", code, b.errbuf)
	}
	if got := b.out.String(); got != "ready svc-1\n" {
		t.Errorf("serve stdout at the end: %q, want only the ready line", got)
	}
	if !strings.Contains(b.errbuf.String(), "msg=stopping") {
		t.Errorf("serve stderr lacks the stopping log:\n%s", b.errbuf)
	}
	// Every line of the file is whole JSON.
	for i, line := range strings.Split(strings.TrimSuffix(readFile(t, events), "\n"), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("events line %d is not JSON: %q", i+1, line)
		}
	}
}

// TestServeErrors: bad calls fail before connecting, with a pointer to
// --help.
func TestServeErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no service", []string{"serve", "--subscribe", "t"}, "meshbot: serve: --service is required"},
		{"bad service", []string{"serve", "--service", "Svc"}, `meshbot: serve: --service "Svc": want a-z`},
		{"bad instance", []string{"serve", "--service", "s", "--instance", "a-1"}, `meshbot: serve: --instance "a-1": want a-z and 0-9 only`},
		{"every without publish", []string{"serve", "--service", "s", "--every", "1s"}, "meshbot: serve: --every needs --publish TOPIC"},
		{"zero every", []string{"serve", "--service", "s", "--publish", "t", "--every", "0s"}, "meshbot: serve: --every must be positive"},
		{"reserved topic", []string{"serve", "--service", "s", "--subscribe", "_hb"}, `topic "_hb": segments starting with '_' are reserved`},
		{"bad publish topic", []string{"serve", "--service", "s", "--publish", "a..b"}, `topic "a..b" has an empty segment`},
		{"twice the topic", []string{"serve", "--service", "s", "--subscribe", "t", "--subscribe", "#mesh.t"}, "meshbot: serve: --subscribe t given twice"},
		{"twice the method", []string{"serve", "--service", "s", "--handle", "m", "--handle", "m"}, "meshbot: serve: --handle m given twice"},
		{"arguments", []string{"serve", "--service", "s", "topic"}, "meshbot: serve: too many arguments (1)"},
		{"anycast without topics", []string{"serve", "--service", "s", "--anycast"}, "meshbot: serve: --anycast needs --subscribe TOPIC"},
		{"group without topics", []string{"serve", "--service", "s", "--group", "g"}, "meshbot: serve: --anycast needs --subscribe TOPIC"},
		{"lease without anycast", []string{"serve", "--service", "s", "--subscribe", "t", "--lease", "5s"}, "meshbot: serve: --lease needs --anycast (or --group)"},
		{"retry delay without anycast", []string{"serve", "--service", "s", "--subscribe", "t", "--retry-delay", "5s"}, "meshbot: serve: --retry-delay needs --anycast (or --group)"},
		{"bad group", []string{"serve", "--service", "s", "--subscribe", "t", "--group", "a b"}, `meshbot: serve: --group: mesh: group "a b": no spaces, commas or control characters`},
		{"zero lease", []string{"serve", "--service", "s", "--subscribe", "t", "--anycast", "--lease", "0s"}, "meshbot: serve: --lease must be positive"},
		{"zero attempts", []string{"serve", "--service", "s", "--subscribe", "t", "--anycast", "--max-attempts", "0"}, "meshbot: serve: --max-attempts must be at least 1"},
		{"post without topics", []string{"serve", "--service", "s", "--post", "http://127.0.0.1:1/x"}, "meshbot: serve: --post needs --subscribe TOPIC"},
		{"bad post URL", []string{"serve", "--service", "s", "--subscribe", "t", "--post", "127.0.0.1:80/x"}, `meshbot: serve: --post "127.0.0.1:80/x": want an http:// or https:// URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, "", append(tc.args, "--server", closedAddr(t))...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "'meshbot serve --help' for usage.") {
				t.Errorf("exit %d, stderr %q; want 1 and %q with the usage hint", r.code, r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout: %q", r.stdout)
			}
		})
	}
	// An events file that cannot be opened fails before connecting.
	r := runCLI(t, nil, "", "serve", "--service", "s", "--events", filepath.Join(dir, "no", "such", "dir"), "--server", closedAddr(t))
	if r.code != 1 || !strings.HasPrefix(r.stderr, "meshbot: --events: open ") {
		t.Errorf("bad --events: exit %d, stderr %q", r.code, r.stderr)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// readRecords parses the events file (a missing file has none).
func readRecords(t *testing.T, path string) []serveRecord {
	t.Helper()
	var out []serveRecord
	sc := bufio.NewScanner(bytes.NewReader([]byte(readFile(t, path))))
	for sc.Scan() {
		var r serveRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("events line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

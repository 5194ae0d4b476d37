package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
	dstate "github.com/meshbot/meshbot/state"
)

// ownerNode connects an in-process instance of service that owns domains.
func ownerNode(t *testing.T, srv *ircd.Server, namespace, service string, owns ...string) *mesh.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service, cfg.Owns = srv.Addr(), namespace, service, owns
	n, err := mesh.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeNow(n) })
	return n
}

// TestStateCommands runs state list, get, put and watch against a domain
// an in-process owner writes.
func TestStateCommands(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "st"}
	owner := ownerNode(t, srv, "st", "cfg", "cfg.flags")
	d, err := owner.Domain("cfg.flags")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, kv := range [][2]string{{"dark", "on"}, {"beta", "no"}, {"bin", "\xff\xfe"}} {
		if _, err := d.Put(ctx, kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}

	r := runCLI(t, environ, "", "state", "list")
	if r.code != 0 || !regexp.MustCompile(`(?m)^DOMAIN +OWNER +VERSION +AVAILABLE +KEYS +BYTES +HOLDERS\ncfg\.flags +cfg +3 +yes +3 +\d+ +cfg-`).MatchString(r.stdout) {
		t.Fatalf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, environ, "", "state", "list", "cfg.flags")
	if r.code != 0 || !strings.Contains(r.stdout, "# cfg.flags version 3, 3 keys, available") ||
		!regexp.MustCompile(`(?m)^dark +1 +1 +cfg/\w+ +2$`).MatchString(r.stdout) {
		t.Fatalf("list cfg.flags: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, environ, "", "state", "get", "cfg.flags", "dark")
	if r.code != 0 || r.stdout != "on\n" {
		t.Fatalf("get: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, environ, "", "state", "get", "cfg.flags")
	if r.code != 0 || !strings.Contains(r.stdout, "beta=no\nbin=\"\\xff\\xfe\"\ndark=on\n") {
		t.Fatalf("get all: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, environ, "", "state", "get", "cfg.flags", "bin", "--json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc["value_b64"] != "//4=" || doc["version"] != 1.0 || doc["available"] != true {
		t.Fatalf("get --json: %v %s%s", err, r.stdout, r.stderr)
	}
	r = runCLI(t, environ, "", "state", "get", "cfg.flags", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, "no such key") {
		t.Fatalf("missing key: exit %d %s", r.code, r.stderr)
	}

	w := startCLI(t, environ, "state", "watch", "cfg.flags", "--json")
	waitFor(t, "the watch to start", w.out, `"kind":"loaded"`, 20*time.Second)

	// put, as the owner's service; a compare-and-set that loses.
	r = runCLI(t, environ, "", "state", "put", "cfg.flags", "dark", "off", "--if-version", "1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "put dark@2 (domain cfg.flags version 4)") {
		t.Fatalf("put: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, environ, "", "state", "put", "cfg.flags", "dark", "x", "--if-version", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "compare-and-set conflict") || !strings.Contains(r.stderr, "the key is at version 2") {
		t.Fatalf("stale put: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, environ, "", "state", "put", "cfg.flags", "beta", "--delete")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "deleted beta@2") {
		t.Fatalf("delete: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, "the watched put", w.out, `"kind":"put","key":"dark","entry":{"key":"dark","value":"off","version":2`, 10*time.Second)
	waitFor(t, "the watched delete", w.out, `"kind":"deleted","key":"beta"`, 10*time.Second)
	waitUntil(t, 10*time.Second, "the owner's copy", func() bool {
		e, err := d.Get(ctx, "dark")
		return err == nil && string(e.Value) == "off"
	})

	// Usage errors.
	for _, args := range [][]string{
		{"state", "get", "Bad.Domain"},
		{"state", "put", "cfg.flags", "k"},
		{"state", "put", "cfg.flags", "k", "v", "--delete"},
		{"state", "put", "cfg.flags", "k", "v", "--if-absent", "--if-version", "3"},
	} {
		if r := runCLI(t, environ, "", args...); r.code != 1 || !strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: exit %d %s", args, r.code, r.stderr)
		}
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStateHistoryCommand: state history prints a key's versions from the
// recorders' index, and every update of a domain from its record.
func TestStateHistoryCommand(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "sh"}
	hm := historytest.NewMesh(srv, "sh", nil)
	rec := hm.StartRecorderIn(t, t.TempDir(), "", "rec", recorder.Config{StateVersions: 3})
	owner := ownerNode(t, srv, "sh", "cfg", "cfg.flags")
	d, err := owner.Domain("cfg.flags")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	historytest.WaitTopic(t, rec.Recorder, dstate.Topic("cfg.flags"))
	for i := 1; i <= 5; i++ {
		if _, err := d.Put(ctx, "dark", fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Put(ctx, "beta", []byte("b")); err != nil {
		t.Fatal(err)
	}
	versions := regexp.MustCompile(`(?m)^\S+  v3  cfg/\w+  put dark@3=v3\n\S+  v4  cfg/\w+  put dark@4=v4\n\S+  v5  cfg/\w+  put dark@5=v5\n$`)
	var r result
	waitUntil(t, 10*time.Second, "the recorder to index the versions", func() bool {
		r = runCLI(t, environ, "", "state", "history", "cfg.flags", "dark")
		return r.code == 0 && versions.MatchString(r.stdout)
	})
	r = runCLI(t, environ, "", "state", "history", "cfg.flags")
	if r.code != 0 || strings.Count(r.stdout, "put dark@") != 5 || !strings.Contains(r.stdout, "put beta@1=b") {
		t.Fatalf("history of the domain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

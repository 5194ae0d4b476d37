package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
)

// TestHistoryReplay runs `history` as the recorder, publishes with `pub`,
// and reads the record back with `replay`, from the start and after an
// offset.
func TestHistoryReplay(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "hr"}
	store := filepath.Join(t.TempDir(), "h.db")
	// A subscriber makes the topic known to the recorder before publishing.
	sub := startCLI(t, environ, "tail", "jobs")
	waitFor(t, "tail", sub.errbuf, "watching", 20*time.Second)
	rec := startCLI(t, environ, "history", "--store", store, "--rescan", "200ms")
	waitFor(t, "history", rec.out, "ready ", 20*time.Second)
	time.Sleep(time.Second) // it found the topic
	for _, p := range []string{"one", "two", "three"} {
		if r := runCLI(t, environ, "", "pub", "jobs", p); r.code != 0 {
			t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
		}
	}
	var lines []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := runCLI(t, environ, "", "replay", "jobs", "--json", "--progress", "never")
		if r.code != 0 {
			t.Fatalf("replay: exit %d\n%s", r.code, r.stderr)
		}
		lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
		if strings.Count(r.stdout, `"kind":"event"`) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var events []map[string]any
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("replay --json printed %q: %v", l, err)
		}
		if env, ok := v["envelope"].(map[string]any); ok && env["kind"] == "event" {
			events = append(events, v)
		}
	}
	if len(events) != 3 {
		t.Fatalf("replayed %d events, want 3:\n%s", len(events), strings.Join(lines, "\n"))
	}
	first, _ := events[0]["offset"].(string)
	if !strings.Contains(first, "/") {
		t.Fatalf("offset %q is not TIME/MSGID", first)
	}
	r := runCLI(t, environ, "", "replay", "jobs", "--from", first, "--progress", "never")
	if r.code != 0 || strings.Contains(r.stdout, "  one") || !strings.Contains(r.stdout, "two") || !strings.Contains(r.stdout, "three") {
		t.Fatalf("replay --from %s: exit %d\n%s%s", first, r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, environ, "", "replay", "jobs", "--from", "yesterday"); r.code != 1 || !strings.Contains(r.stderr, `--from "yesterday"`) {
		t.Errorf("bad --from: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, environ, "", "history"); r.code != 1 || !strings.Contains(r.stderr, "--store FILE is required") {
		t.Errorf("history without --store: exit %d\n%s", r.code, r.stderr)
	}
}

// TestServeCatchUp: a `serve --anycast --catch-up` worker is stopped while
// events are published; started again, it handles every one of them from
// the history service, once.
func TestServeCatchUp(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "cu"}
	dir := t.TempDir()
	rec := startCLI(t, environ, "history", "--store", filepath.Join(dir, "h.db"), "--rescan", "200ms", "--skip-heartbeats")
	waitFor(t, "history", rec.out, "ready ", 20*time.Second)
	events := filepath.Join(dir, "events.jsonl")
	args := []string{"serve", "--service", "wk", "--instance", "1", "--subscribe", "jobs", "--anycast", "--catch-up", "--events", events}
	w := startCLI(t, environ, args...)
	waitFor(t, "serve", w.out, "ready ", 20*time.Second)
	time.Sleep(time.Second) // the recorder found the topic
	w.cancel()
	code := <-w.done
	w.done <- code
	if r := runCLI(t, environ, "", "pub", "jobs", "missed", "--count", "20"); r.code != 0 {
		t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
	}
	time.Sleep(300 * time.Millisecond) // committed by the recorder
	w = startCLI(t, environ, args...)
	waitFor(t, "serve", w.out, "ready ", 20*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]int{}
		for _, r := range readRecords(t, events) {
			if r.Kind == "event" && r.Payload != nil && *r.Payload == "missed" {
				got[r.ID]++
			}
		}
		if len(got) == 20 {
			for p, n := range got {
				if n != 1 {
					t.Errorf("%s handled %d times", p, n)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 missed events handled after the restart:\n%s", len(got), readFile(t, events))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReplaySignedMesh: in an HMAC-signed mesh, `history` and `replay`
// with the mesh's key read the record; lines signed with another key are
// not printed, and replay says so on stderr, counted by reason, and exits
// 1. A replay without the mesh's keys cannot read the recorder's signed
// answers and says so too. The help of both commands tells how to run
// them in a signed mesh.
func TestReplaySignedMesh(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "rs"}
	dir, strangerDir := t.TempDir(), t.TempDir()
	mode, stranger := meshtest.NewMode(meshtest.HMAC), meshtest.NewMode(meshtest.HMAC)
	keys := mode.Flags(t, dir, "history")
	sub := startCLI(t, environ, "tail", "jobs") // the topic exists before the first publish
	waitFor(t, "tail", sub.errbuf, "watching", 20*time.Second)
	rec := startCLI(t, environ, append([]string{"history", "--store", filepath.Join(dir, "h.db"), "--rescan", "200ms"}, keys...)...)
	waitFor(t, "history", rec.out, "ready ", 20*time.Second)
	time.Sleep(time.Second) // it found the topic
	pub := func(flags []string, payloads ...string) {
		for _, p := range payloads {
			if r := runCLI(t, environ, "", append([]string{"pub", "jobs", p}, flags...)...); r.code != 0 {
				t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
			}
		}
	}
	pub(keys, "good-1", "good-2")
	pub(stranger.Flags(t, strangerDir, "intruder"), "bad-1", "bad-2", "bad-3")
	var r result
	deadline := time.Now().Add(15 * time.Second)
	for {
		r = runCLI(t, environ, "", append([]string{"replay", "jobs", "--progress", "never"}, keys...)...)
		if strings.Contains(r.stderr, "forged=3") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.code != 1 || !strings.Contains(r.stdout, "good-1") || !strings.Contains(r.stdout, "good-2") || strings.Contains(r.stdout, "bad-") ||
		!strings.Contains(r.stderr, "3 recorded lines or envelopes refused by the keys given, not printed (forged=3)") {
		t.Fatalf("replay with the mesh's key, lines of another: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("replay with the mesh's key, lines of another:\n%s", r.stderr)
	r = runCLI(t, environ, "", "replay", "jobs", "--progress", "never")
	if r.code != 1 || strings.Contains(r.stdout, "good-") || !strings.Contains(r.stderr, "not verified by this node's keys") || !strings.Contains(r.stderr, "give it the mesh's keyring") {
		t.Fatalf("replay without keys: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("replay without keys:\n%s", r.stderr)
	for _, c := range []string{"history", "replay"} {
		h := runCLI(t, environ, "", c, "--help")
		if !strings.Contains(h.stdout, "in a signed mesh") || !strings.Contains(h.stdout, "--keyring mesh.keyring --require-signed") {
			t.Errorf("%s --help does not tell how to run it in a signed mesh:\n%s", c, h.stdout)
		}
	}
}

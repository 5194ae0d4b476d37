package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
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

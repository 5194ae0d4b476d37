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

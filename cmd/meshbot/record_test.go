package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history/rawlog"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// TestRecordRaw records a topic with `record --raw` while `pub` publishes,
// then reads the file back with history/rawlog: the events are there, with
// the server's tags, and decode to what was published; the heartbeat
// channel was recorded too.
func TestRecordRaw(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "rec"}
	path := filepath.Join(t.TempDir(), "run.log")
	rec := startCLI(t, environ, "record", "--raw", path, "jobs")
	waitFor(t, "record stderr", rec.errbuf, "recording", 20*time.Second)
	if r := runCLI(t, environ, "", "pub", "jobs", "payload-1", "--count", "3"); r.code != 0 {
		t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
	}
	time.Sleep(1500 * time.Millisecond) // a heartbeat of the recorder's own node, and a flush
	rec.cancel()
	code := <-rec.done
	rec.done <- code // for the cleanup, which waits for it too
	if code != 0 {
		t.Fatalf("record: exit %d\n%s", code, rec.errbuf)
	}
	if !strings.Contains(rec.errbuf.String(), "recorded ") {
		t.Errorf("no summary:\n%s", rec.errbuf)
	}
	lines, err := rawlog.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := envelope.NewDecoder(envelope.DecoderConfig{})
	var events, beats int
	for _, l := range lines {
		if l.Command() != "PRIVMSG" {
			continue
		}
		envs, mesh, err := dec.Decode(l.Nick, l.Msg.AllTags(), l.Text(), l.Time)
		if !mesh || err != nil {
			t.Fatalf("line %d does not decode: %v\n%s", l.N, err, l.Raw)
		}
		if l.Time.IsZero() {
			t.Errorf("line %d has no server-time: %s", l.N, l.Raw)
		}
		for _, env := range envs {
			switch {
			case env.Kind == envelope.KindEvent && l.Param(0) == "#rec.jobs":
				events++
				if string(env.Payload) != "payload-1" {
					t.Errorf("event payload %q", env.Payload)
				}
			case env.Kind == envelope.KindHeartbeat && l.Param(0) == "#rec._hb":
				beats++
			}
		}
	}
	if events != 3 || beats == 0 {
		t.Errorf("recorded %d events (want 3) and %d heartbeats (want some) in %d lines", events, beats, len(lines))
	}
	if r := runCLI(t, environ, "", "record", "jobs"); r.code != 1 || !strings.Contains(r.stderr, "--raw FILE is required") {
		t.Errorf("record without --raw: exit %d\n%s", r.code, r.stderr)
	}
}

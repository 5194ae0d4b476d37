package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history/rawlog"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/meshtest/recording"
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

// demoLog is ten seconds of the demo mesh, recorded with record --raw.
const demoLog = "../../examples/billing/testdata/orders.log"

// recordedEvents decodes the events of a log file: "topic payload" each.
func recordedEvents(t *testing.T, path string) (events []string, beats int) {
	t.Helper()
	lines, err := rawlog.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := envelope.NewDecoder(envelope.DecoderConfig{AcceptUnchecked: true})
	for _, l := range lines {
		if l.Command() != "PRIVMSG" {
			continue
		}
		envs, _, err := dec.Decode(l.Nick, l.Msg.AllTags(), l.Text(), l.Time)
		if err != nil {
			t.Fatalf("line %d does not decode: %v", l.N, err)
		}
		for _, env := range envs {
			switch env.Kind {
			case envelope.KindEvent:
				events = append(events, strings.TrimPrefix(l.Param(0), "#mesh.")+" "+string(env.Payload))
			case envelope.KindHeartbeat:
				beats++
			}
		}
	}
	return events, beats
}

// TestRecordCutFile cuts a recorded log: by topic, time and sender,
// without heartbeats, with JSON fields redacted; no server is needed.
func TestRecordCutFile(t *testing.T) {
	t.Parallel()
	all, beats := recordedEvents(t, demoLog)
	if len(all) < 20 || beats == 0 {
		t.Fatalf("the demo log has %d events and %d heartbeats", len(all), beats)
	}
	out := filepath.Join(t.TempDir(), "cut.log")
	r := runCLI(t, nil, "", "record", "--from", demoLog, "--raw", out, "orders.created",
		"--since", "+2s", "--until", "+5s", "--sender", "orders", "--no-heartbeats", "--redact-json", "item")
	if r.code != 0 {
		t.Fatalf("record --from: exit %d\n%s", r.code, r.stderr)
	}
	whole, err := rawlog.ReadFile(demoLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("of the %d lines of", len(whole))) || !strings.Contains(r.stderr, "JSON fields item redacted") {
		t.Errorf("summary:\n%s", r.stderr)
	}
	events, beats := recordedEvents(t, out)
	if beats != 0 {
		t.Errorf("%d heartbeats kept", beats)
	}
	// The demo publishes an order every 300 ms: about ten in 3 s.
	if len(events) < 8 || len(events) > 12 {
		t.Errorf("%d events between +2s and +5s: %v", len(events), events)
	}
	for _, e := range events {
		if !strings.HasPrefix(e, "orders.created {") || !strings.Contains(e, `"item":"redacted-`) || strings.Contains(e, "tea") {
			t.Errorf("event %s: want an order with its item redacted", e)
		}
	}
	lines, err := rawlog.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var start time.Time
	for _, l := range whole {
		if !l.Time.IsZero() {
			start = l.Time
			break
		}
	}
	for _, l := range lines {
		if l.Command() == "PRIVMSG" && (l.Time.Before(start.Add(2*time.Second)) || !l.Time.Before(start.Add(5*time.Second))) {
			t.Errorf("line %d at %s is outside the cut", l.N, l.Time)
		}
		if l.Command() == "PRIVMSG" && !strings.HasPrefix(l.Nick, "orders-") {
			t.Errorf("line %d from %s: only what orders sent is kept", l.N, l.Nick)
		}
	}

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"record", "--from", demoLog, "--raw", out, "--for", "1s"}, "--for is for recording live"},
		{[]string{"record", "--raw", out, "jobs", "--since", "+1s"}, "--since and --until cut a log file"},
		{[]string{"record", "--from", demoLog, "--raw", out, "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"record", "--from", filepath.Join(t.TempDir(), "none.log"), "--raw", out}, "no such file"},
		{[]string{"record", "--raw", out}, "missing TOPIC"},
	} {
		if r := runCLI(t, nil, "", tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.err) {
			t.Errorf("%v: exit %d, want an error with %q:\n%s", tc.args[1:], r.code, tc.err, r.stderr)
		}
	}
}

// TestRecordRedacted records a signed mesh live with the payloads
// redacted, without heartbeats and with the signatures stripped: what is
// committed holds neither the data nor anything that needs the mesh's key.
func TestRecordRedacted(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	key := filepath.Join(t.TempDir(), "mesh.hmac")
	if r := runCLI(t, nil, "", "keygen", "hmac", "--out", key); r.code != 0 {
		t.Fatalf("keygen: exit %d\n%s", r.code, r.stderr)
	}
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "mesh",
		"MESHBOT_HMAC_KEY_FILE": key, "MESHBOT_KEYRING": key, "MESHBOT_REQUIRE_SIGNED": "1"}
	path := filepath.Join(t.TempDir(), "run.log")
	rec := startCLI(t, environ, "record", "--raw", path, "jobs", "--no-heartbeats", "--redact-payloads", "--strip-signatures")
	waitFor(t, "record stderr", rec.errbuf, "recording", 20*time.Second)
	if r := runCLI(t, environ, "", "pub", "jobs", "secret-1", "--count", "3"); r.code != 0 {
		t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
	}
	time.Sleep(1500 * time.Millisecond) // a heartbeat of the recorder's own node, and a flush
	if code := rec.stop(t); code != 0 {
		t.Fatalf("record: exit %d\n%s", code, rec.errbuf)
	}
	if !strings.Contains(rec.errbuf.String(), "payloads redacted; signatures stripped") {
		t.Errorf("summary:\n%s", rec.errbuf)
	}
	events, beats := recordedEvents(t, path)
	if len(events) != 3 || beats != 0 {
		t.Fatalf("%d events (want 3), %d heartbeats (want 0)", len(events), beats)
	}
	for _, e := range events {
		if e != "jobs "+recording.Redacted("secret-1") {
			t.Errorf("event %q: want the payload's stand-in", e)
		}
	}
	// A decoder with no key accepts every envelope: none is signed.
	lines, err := rawlog.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := envelope.NewDecoder(envelope.DecoderConfig{})
	for _, l := range lines {
		if l.Command() != "PRIVMSG" {
			continue
		}
		if _, _, err := dec.Decode(l.Nick, l.Msg.AllTags(), l.Text(), l.Time); err != nil {
			t.Errorf("line %d: %v", l.N, err)
		}
	}
}

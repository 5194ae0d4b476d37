package proctest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Event is one line of a `meshbot serve --events` file.
type Event struct {
	// Kind is "event" (received on a topic), "request" (received and
	// answered) or "published" (confirmed by the server).
	Kind   string `json:"kind"`
	Topic  string `json:"topic,omitempty"`
	Method string `json:"method,omitempty"`
	// ID is the envelope id (32 hex digits).
	ID string `json:"id"`
	// Payload is the payload when it is UTF-8; PayloadBase64 otherwise.
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
	// From is the sender's nick (the recorder's own for "published").
	From string    `json:"from"`
	At   time.Time `json:"at"`
}

// Data returns the payload's bytes.
func (e Event) Data() []byte {
	if e.PayloadBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(e.PayloadBase64)
		if err == nil {
			return b
		}
	}
	return []byte(e.Payload)
}

// ReadEvents reads an events file. A missing file holds no events, and an
// unterminated last line (a write cut short) is ignored; any other line
// that is not an event is an error.
func ReadEvents(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i < len(b)-1 {
		b = b[:i+1]
	}
	var out []Event
	for n, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			return out, fmt.Errorf("%s:%d: %v: %q", path, n+1, err, strings.TrimSpace(string(line)))
		}
		out = append(out, e)
	}
	return out, nil
}

// WaitEvents polls the events file at path until until returns true for
// its events, and returns them. It fails the test (with the file's events)
// when timeout passes first or the file does not parse.
func WaitEvents(t testing.TB, path string, timeout time.Duration, until func([]Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs, err := ReadEvents(path)
		if err != nil {
			t.Fatalf("proctest: %v", err)
		}
		if until(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, e := range evs {
				fmt.Fprintf(&b, "  %s %s%s id=%s from=%s payload=%q\n", e.Kind, e.Topic, e.Method, e.ID, e.From, e.Data())
			}
			t.Fatalf("proctest: %s: the awaited events did not arrive within %v; it holds %d:\n%s", path, timeout, len(evs), b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// HasID is a WaitEvents condition: an event of kind "event" or "request"
// with one of the ids (all of them must be there).
func HasID(ids ...string) func([]Event) bool {
	return func(evs []Event) bool {
		for _, id := range ids {
			if Count(evs, func(e Event) bool { return e.ID == id && e.Kind != "published" }) == 0 {
				return false
			}
		}
		return true
	}
}

// Count returns how many events match.
func Count(evs []Event, match func(Event) bool) int {
	n := 0
	for _, e := range evs {
		if match(e) {
			n++
		}
	}
	return n
}

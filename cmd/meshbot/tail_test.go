package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// A dropped connection shows in tail's text and JSON, is not a line in its
// summary, and stays out of a raw log.
func TestPrinterGap(t *testing.T) {
	gap := mesh.Observation{Gap: true, Channel: "#mesh.orders", Topic: "orders", Time: time.Now()}
	line := mesh.Observation{Channel: "#mesh.orders", Topic: "orders", From: "bob", Body: "hello", Time: time.Now()}
	for _, mode := range []printMode{modeText, modeJSON, modeRaw} {
		var buf bytes.Buffer
		p := &printer{w: &buf, mode: mode}
		p.observation(line)
		p.observation(gap)
		out := buf.String()
		switch mode {
		case modeText:
			if !strings.Contains(out, "connection to the server lost") {
				t.Errorf("text: %q", out)
			}
		case modeJSON:
			if !strings.Contains(out, `"type":"gap"`) {
				t.Errorf("json: %q", out)
			}
		case modeRaw:
			if strings.Count(out, "\n") != 1 {
				t.Errorf("raw: %q, want only the line", out)
			}
		}
		if s := p.summary(0); !strings.HasPrefix(s, "1 lines:") || !strings.Contains(s, "dropped 1 time") {
			t.Errorf("summary: %q", s)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestReq asks a real node that handles a method: answers, remote errors,
// a missing method and a missing service.
func TestReq(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service, cfg.Instance = srv.Addr(), "rq", "pricing", "p1"
	n := meshtest.Connect(t, cfg)
	err := n.Handle("quote", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		if string(r.Payload) == "unicorn" {
			return nil, mesh.Errorf(418, "we do not sell %s", r.Payload)
		}
		return bytes.ToUpper(r.Payload), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "rq"}
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"answer", "", []string{"req", "pricing", "quote", "tea"}, 0, "TEA\n", ""},
		{"stdin", "scone\n", []string{"req", "pricing", "quote", "-"}, 0, "SCONE\n", ""},
		{"remote error", "", []string{"req", "pricing", "quote", "unicorn"}, 1, "",
			"meshbot: pricing-p1 answered pricing.quote with error 418: we do not sell unicorn\n"},
		{"no handler", "", []string{"req", "pricing", "refund"}, 1, "", `with error 404: no handler for "refund"`},
		{"no service", "", []string{"req", "billing", "charge"}, 1, "", `no instance of service "billing" is present in namespace "rq"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, environ, tc.stdin, tc.args...)
			if r.code != tc.code || r.stdout != tc.stdout || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
			if tc.code != 0 && strings.Contains(r.stderr, "goroutine") {
				t.Errorf("a stack trace on stderr: %s", r.stderr)
			}
		})
	}
}

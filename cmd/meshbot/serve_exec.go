package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/meshbot/meshbot/internal/exechandler"
	"github.com/meshbot/meshbot/mesh"
)

// execFlags are serve's --exec flags: a program as the handler.
type execFlags struct {
	command, mode string
	timeout       time.Duration
}

func (e *execFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&e.command, "exec", "", "handle every event and request with this shell `COMMAND` (see above)")
	fs.StringVar(&e.mode, "exec-mode", "each", "each: run --exec once per event or request; lines: run it once, speaking JSON lines")
	fs.DurationVar(&e.timeout, "exec-timeout", exechandler.DefaultTimeout, "how long one event or request may take in --exec")
}

// runner checks the flags and returns the handler program's runner, nil
// without --exec.
func (e *execFlags) runner(fs *pflag.FlagSet, st *state, s *server) (*exechandler.Runner, error) {
	if e.command == "" {
		for _, name := range []string{"exec-mode", "exec-timeout"} {
			if fs.Changed(name) {
				return nil, usagef("serve: --%s needs --exec COMMAND", name)
			}
		}
		return nil, nil
	}
	mode, err := exechandler.ParseMode(e.mode)
	if err != nil {
		return nil, usagef("serve: --exec-mode: %v", err)
	}
	if e.timeout <= 0 {
		return nil, usagef("serve: --exec-timeout must be positive")
	}
	if len(s.topics) == 0 && len(s.methods) == 0 {
		return nil, usagef("serve: --exec needs --subscribe TOPIC or --handle METHOD to have something to handle")
	}
	if s.post != nil {
		return nil, usagef("serve: --exec and --post exclude each other: one handler per event")
	}
	return exechandler.New(exechandler.Config{Command: e.command, Mode: mode, Timeout: e.timeout, Stderr: st.env.stderr})
}

// execEvent hands an event to the --exec program; its failure fails the
// attempt (anycast: nacked, retried, dead-lettered after --max-attempts).
func (s *server) execEvent(ctx context.Context, m *mesh.Message) error {
	c := exechandler.Call{Kind: "event", ID: m.ID.String(), Topic: m.Topic, From: m.From, Payload: m.Payload}
	if cl := m.Claim; cl != nil {
		c.Group, c.Epoch, c.Attempt, c.Token = cl.Group, cl.Epoch, cl.Attempt, cl.Token
	}
	if _, err := s.exec.Run(ctx, c); err != nil {
		return fmt.Errorf("--exec: %w", err)
	}
	return nil
}

// execRequest answers a request with the --exec program's output; its
// failure is an error answer (500, or 504 when it ran out of time).
func (s *server) execRequest(ctx context.Context, r *mesh.Request) ([]byte, error) {
	out, err := s.exec.Run(ctx, exechandler.Call{Kind: "request", ID: r.ID.String(), Method: r.Method, From: r.From, Payload: r.Payload})
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, context.DeadlineExceeded):
		return nil, mesh.Errorf(mesh.CodeDeadline, "%v", err)
	}
	return nil, mesh.Errorf(mesh.CodeInternal, "%v", err)
}

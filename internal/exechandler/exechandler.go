// Package exechandler runs a program as a mesh handler, so that handlers
// can be written in any language (`meshbot serve --exec CMD`).
//
// Two modes:
//
//   - ModeEach runs CMD once per event or request (with sh -c): the payload
//     on its stdin, its stdout the answer, a non-zero exit a failed
//     attempt (the error quotes the end of its stderr). The call's fields
//     are in its environment (see Call.Env), the anycast claim's fencing
//     token among them.
//   - ModeLines starts CMD once and keeps it running: one JSON object per
//     line on its stdin for each call (a call id "id", then Call's fields,
//     the payload as "payload" text or "payload_base64"), one JSON object
//     per line on its stdout for each answer, {"id":ID,"result":TEXT} (or
//     "result_base64") or {"id":ID,"error":TEXT}. Answers may come in any
//     order: the id pairs them. A child that exits fails the calls it
//     had and is started again for the next call.
//
// Every call has a timeout; a call that runs out of it fails (ModeEach
// kills the process group). A Runner is safe for concurrent use.
package exechandler

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"
)

// Mode chooses how the program is run.
type Mode int

const (
	// ModeEach runs the program once per call.
	ModeEach Mode = iota
	// ModeLines runs one long-lived program speaking JSON lines.
	ModeLines
)

// ParseMode parses "each" or "lines".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "each", "":
		return ModeEach, nil
	case "lines":
		return ModeLines, nil
	}
	return 0, fmt.Errorf("exec mode %q: want each or lines", s)
}

func (m Mode) String() string {
	if m == ModeLines {
		return "lines"
	}
	return "each"
}

// Config configures a Runner.
type Config struct {
	// Command is a shell command line, run with sh -c.
	Command string
	Mode    Mode
	// Timeout bounds one call (30 s when zero).
	Timeout time.Duration
	// Env is added to the program's environment (on top of this
	// process's).
	Env []string
	// Stderr receives the program's stderr as it is written (nil: this
	// process's stderr). Errors quote its last lines in any case.
	Stderr io.Writer
}

// DefaultTimeout bounds a call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// ErrFailed is wrapped by the error of a call the program failed: a
// non-zero exit, an "error" answer, a timeout, or a program that could
// not start or died.
var ErrFailed = errors.New("exec handler failed")

// Call is one event or request handed to the program.
type Call struct {
	Kind    string `json:"kind"`        // "event" or "request"
	ID      string `json:"envelope_id"` // the envelope id
	Topic   string `json:"topic,omitempty"`
	Method  string `json:"method,omitempty"`
	From    string `json:"from,omitempty"` // the sender's nick
	Group   string `json:"group,omitempty"`
	Epoch   uint64 `json:"epoch,omitempty"`
	Attempt uint32 `json:"attempt,omitempty"`
	Token   uint64 `json:"token,omitempty"` // the claim's fencing token (anycast)
	Payload []byte `json:"-"`
}

// Env is the call's fields as environment variables: MESHBOT_KIND,
// MESHBOT_ID, MESHBOT_TOPIC, MESHBOT_METHOD, MESHBOT_FROM, MESHBOT_GROUP,
// MESHBOT_EPOCH, MESHBOT_ATTEMPT, MESHBOT_TOKEN (empty when not set).
func (c Call) Env() []string {
	num := func(v uint64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatUint(v, 10)
	}
	return []string{
		"MESHBOT_KIND=" + c.Kind, "MESHBOT_ID=" + c.ID, "MESHBOT_TOPIC=" + c.Topic,
		"MESHBOT_METHOD=" + c.Method, "MESHBOT_FROM=" + c.From, "MESHBOT_GROUP=" + c.Group,
		"MESHBOT_EPOCH=" + num(c.Epoch), "MESHBOT_ATTEMPT=" + num(uint64(c.Attempt)),
		"MESHBOT_TOKEN=" + num(c.Token),
	}
}

// Runner runs calls through the program.
type Runner struct {
	cfg   Config
	lines *linesChild // ModeLines
}

// New checks cfg and returns a Runner; ModeLines starts the program at
// the first call.
func New(cfg Config) (*Runner, error) {
	if cfg.Command == "" {
		return nil, errors.New("exechandler: no command")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	r := &Runner{cfg: cfg}
	if cfg.Mode == ModeLines {
		r.lines = newLinesChild(cfg)
	}
	return r, nil
}

// Run hands c to the program and returns its answer (stdout, or the
// "result" of its JSON answer). A failed call's error wraps ErrFailed;
// one cut short by ctx wraps ctx's error.
func (r *Runner) Run(ctx context.Context, c Call) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var out []byte
	var err error
	if r.lines != nil {
		out, err = r.lines.call(ctx, c)
	} else {
		out, err = runOnce(ctx, r.cfg, c)
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("%w: no answer within %s (--exec-timeout)", ErrFailed, r.cfg.Timeout)
	}
	return out, err
}

// Close stops the program of ModeLines (closing its stdin, then killing
// it after a grace period); a no-op for ModeEach.
func (r *Runner) Close() error {
	if r.lines != nil {
		return r.lines.close()
	}
	return nil
}

// payloadFields splits a payload into text (when valid UTF-8) or base64.
func payloadFields(p []byte) (text *string, b64 string) {
	if utf8.Valid(p) {
		s := string(p)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(p)
}

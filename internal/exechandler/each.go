package exechandler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// maxOutput bounds what one run may write on stdout (the answer).
const maxOutput = 4 << 20

// stderrTail is how much of the program's stderr an error quotes.
const stderrTail = 300

// runOnce runs the program for one call (ModeEach).
func runOnce(ctx context.Context, cfg Config, c Call) ([]byte, error) {
	cmd := exec.Command("sh", "-c", cfg.Command)
	cmd.Env = append(append(os.Environ(), cfg.Env...), c.Env()...)
	cmd.Stdin = bytes.NewReader(c.Payload)
	var out limitedBuffer
	out.max = maxOutput
	var errTail tailBuffer
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(cfg.Stderr, &errTail)
	// Its own process group, so that a timeout ends what it spawned too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %q: %v", ErrFailed, cfg.Command, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return nil, fmt.Errorf("%w: %w", ErrFailed, ctx.Err())
	}
	if out.over {
		return nil, fmt.Errorf("%w: it wrote more than %d bytes on stdout", ErrFailed, maxOutput)
	}
	if err != nil {
		var ee *exec.ExitError
		msg := err.Error()
		if errors.As(err, &ee) {
			msg = ee.ProcessState.String() // "exit status 3", "signal: killed"
		}
		if tail := strings.TrimSpace(errTail.String()); tail != "" {
			msg += ": " + tail
		}
		return nil, fmt.Errorf("%w: %s", ErrFailed, msg)
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps at most max bytes and notes an overflow.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// tailBuffer keeps the last stderrTail bytes written.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > stderrTail {
		t.b = t.b[len(t.b)-stderrTail:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	s := strings.ToValidUTF8(string(t.b), "?")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

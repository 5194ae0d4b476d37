//go:build unix

package proctest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// killWait bounds waiting for a SIGKILLed process to be reaped.
	killWait = 10 * time.Second
	// stateWait bounds waiting for SIGSTOP or SIGCONT to take effect.
	stateWait = 5 * time.Second
	// pipeWait bounds reading the output pipes after the process exited
	// (a grandchild holding them open must not hang the test).
	pipeWait = 2 * time.Second
	// readyPrefix starts the line meshbot serve prints once ready.
	readyPrefix = "ready "
)

// Options adjust how a process is started.
type Options struct {
	// Env holds extra KEY=VALUE variables, added to the test's environment
	// (from which every MESHBOT_* variable is removed).
	Env []string
	// Dir is the working directory (the test's when empty).
	Dir string
}

// Proc is one running (or ended) meshbot process.
type Proc struct {
	t      testing.TB
	opts   Options
	args   []string
	cmd    *exec.Cmd
	label  string
	stdout *output
	stderr *output
	done   chan struct{} // closed once the process has been waited for

	mu      sync.Mutex
	stopped bool             // SIGSTOPped by us and not continued since
	state   *os.ProcessState // set before done is closed
	waitErr error
}

// Start runs the meshbot binary (see Binary) with args, and kills it when
// the test ends. It fails the test if the process cannot be started.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return StartWith(t, Options{}, args...)
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options, args ...string) *Proc {
	t.Helper()
	bin := Binary(t)
	p := &Proc{
		t:      t,
		opts:   opts,
		args:   append([]string(nil), args...),
		stdout: &output{ready: make(chan struct{})},
		stderr: &output{},
		done:   make(chan struct{}),
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = opts.Dir
	cmd.Env = environ(opts.Env)
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = pipeWait
	if err := cmd.Start(); err != nil {
		t.Fatalf("proctest: starting meshbot %s: %v", strings.Join(args, " "), err)
	}
	p.cmd = cmd
	p.label = fmt.Sprintf("meshbot %s (pid %d)", strings.Join(args, " "), cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.state, p.waitErr = cmd.ProcessState, err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(p.cleanup)
	return p
}

// environ is the test's environment without MESHBOT_* variables, plus extra.
func environ(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESHBOT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// cleanup kills the process and shows its output if the test failed.
func (p *Proc) cleanup() {
	p.Kill()
	stderr := p.stderr.String()
	if strings.Contains(stderr, "WARNING: DATA RACE") {
		p.t.Errorf("proctest: %s reported a data race", p.label)
	}
	if p.t.Failed() {
		p.t.Logf("proctest: %s, %s\n--- stdout:\n%s--- stderr:\n%s", p.label, p.status(), p.stdout.String(), stderr)
	}
}

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Args returns the arguments the process was started with.
func (p *Proc) Args() []string { return append([]string(nil), p.args...) }

// String names the process, with its arguments and PID.
func (p *Proc) String() string { return p.label }

// Stdout returns what the process wrote on stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr returns what the process wrote on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Done is closed once the process has ended and been waited for.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended (and been waited for).
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode returns the exit code of an ended process: -1 when a signal
// ended it, or when it has not ended yet.
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return -1
	}
	return p.state.ExitCode()
}

// status describes the process's state, for messages.
func (p *Proc) status() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state != nil:
		return "ended: " + p.state.String()
	case p.stopped:
		return "running (stopped by SIGSTOP)"
	default:
		return "running"
	}
}

// WaitReady waits up to timeout for the "ready NICK" line on stdout and
// returns NICK. It fails the test if the process ends first or the time is
// up.
func (p *Proc) WaitReady(timeout time.Duration) (nick string) {
	p.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.stdout.ready:
	case <-p.done:
		select {
		case <-p.stdout.ready: // ready, then ended
		default:
			p.t.Fatalf("proctest: %s %s before printing %q\n--- stderr:\n%s", p.label, p.status(), readyPrefix+"NICK", tail(p.Stderr(), 40))
		}
	case <-timer.C:
		p.t.Fatalf("proctest: %s printed no %q line within %v (%s)\n--- stderr:\n%s", p.label, readyPrefix+"NICK", timeout, p.status(), tail(p.Stderr(), 40))
	}
	return p.stdout.readyNick()
}

// Nick returns the nick of the ready line, or "" before it was printed.
func (p *Proc) Nick() string { return p.stdout.readyNick() }

// Kill sends SIGKILL and waits until the process has been reaped. Killing
// an ended process does nothing.
func (p *Proc) Kill() {
	if err := p.signal(syscall.SIGKILL); err != nil {
		p.t.Errorf("proctest: SIGKILL %s: %v", p.label, err)
	}
	select {
	case <-p.done:
	case <-time.After(killWait):
		p.t.Errorf("proctest: %s not reaped %v after SIGKILL", p.label, killWait)
	}
}

// Stop freezes the process with SIGSTOP and (on Linux) waits until the
// kernel reports it stopped. Its connections stay open, unread. It fails
// the test if the process has ended.
func (p *Proc) Stop() {
	p.t.Helper()
	p.mustRun("SIGSTOP")
	if err := p.signal(syscall.SIGSTOP); err != nil {
		p.t.Fatalf("proctest: SIGSTOP %s: %v", p.label, err)
	}
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.waitStopped(true)
}

// Cont continues a stopped process with SIGCONT and (on Linux) waits until
// it runs again. It fails the test if the process has ended.
func (p *Proc) Cont() {
	p.t.Helper()
	p.mustRun("SIGCONT")
	if err := p.signal(syscall.SIGCONT); err != nil {
		p.t.Fatalf("proctest: SIGCONT %s: %v", p.label, err)
	}
	p.mu.Lock()
	p.stopped = false
	p.mu.Unlock()
	p.waitStopped(false)
}

func (p *Proc) mustRun(what string) {
	p.t.Helper()
	if p.Exited() {
		p.t.Fatalf("proctest: %s to %s, which %s\n--- stderr:\n%s", what, p.label, p.status(), tail(p.Stderr(), 40))
	}
}

// waitStopped waits until the process's stopped state is want, when /proc
// can tell.
func (p *Proc) waitStopped(want bool) {
	p.t.Helper()
	deadline := time.Now().Add(stateWait)
	for {
		stopped, ok := stopState(p.PID())
		if !ok || stopped == want || p.Exited() {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("proctest: %s: stopped=%v %v after the signal, want %v", p.label, stopped, stateWait, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// Terminate sends SIGTERM (and SIGCONT, so that a stopped process can act on
// it), waits up to timeout for the process to end, and SIGKILLs it then. It
// returns the exit code: -1 when a signal ended it (the SIGKILL, or a second
// SIGTERM). Terminating an ended process returns its exit code.
//
// A process that has not installed its signal handlers yet (one started a
// moment ago) dies of the SIGTERM itself, with -1: wait until it is ready
// when the exit code matters.
func (p *Proc) Terminate(timeout time.Duration) int {
	if err := p.signal(syscall.SIGTERM); err != nil {
		p.t.Errorf("proctest: SIGTERM %s: %v", p.label, err)
	}
	_ = p.signal(syscall.SIGCONT)
	p.mu.Lock()
	p.stopped = false
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Logf("proctest: %s did not end within %v of SIGTERM; killing it", p.label, timeout)
		p.Kill()
	}
	return p.ExitCode()
}

// Wait waits up to timeout for the process to end by itself and returns its
// exit code (-1 when a signal ended it). It fails the test when the time is
// up.
func (p *Proc) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("proctest: %s still %s after %v", p.label, p.status(), timeout)
		return -1
	}
}

// Restart kills the process if it still runs, and starts a new one with
// the same arguments and options (a fixed --instance makes it the same
// instance), cleaned up at the end of t.
func (p *Proc) Restart(t testing.TB) *Proc {
	t.Helper()
	p.Kill()
	return StartWith(t, p.opts, p.args...)
}

// signal sends sig to the process; an ended process is not an error. The
// os.Process handle (a pidfd on Linux) never signals a recycled PID.
func (p *Proc) signal(sig syscall.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// output collects what the process writes on one stream; on stdout it also
// watches for the ready line.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int           // bytes of buf already looked at for the ready line
	ready   chan struct{} // nil: not watched; closed on the first ready line
	nick    string
}

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(b)
	if o.ready == nil || o.nick != "" {
		return len(b), nil
	}
	for {
		rest := o.buf.Bytes()[o.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := strings.TrimRight(string(rest[:i]), "\r")
		o.scanned += i + 1
		if nick, ok := strings.CutPrefix(line, readyPrefix); ok && strings.TrimSpace(nick) != "" {
			o.nick = strings.TrimSpace(nick)
			close(o.ready)
			return len(b), nil
		}
	}
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *output) readyNick() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.nick
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = append([]string{"...\n"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

package exechandler

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// request is one call as a JSON line on the program's stdin.
type request struct {
	CallID string `json:"id"` // unique per call: the answer's id
	Call
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 string  `json:"payload_base64,omitempty"`
}

// answer is one JSON line from the program's stdout.
type answer struct {
	ID           string  `json:"id"`
	Result       *string `json:"result"`
	ResultBase64 string  `json:"result_base64"`
	Error        *string `json:"error"`
}

// maxAnswerLine bounds one line of the program's stdout.
const maxAnswerLine = 4 << 20

// closeGrace is how long Close waits for the program to exit after its
// stdin closed, before killing it.
const closeGrace = 3 * time.Second

// linesChild is the long-running program of ModeLines.
type linesChild struct {
	cfg Config

	mu      sync.Mutex
	proc    *child // nil until started, and after it exited
	closed  bool
	pending map[string]chan answerOrErr // by call id
	seq     uint64
}

type answerOrErr struct {
	out []byte
	err error
}

// child is one run of the program.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	wmu   sync.Mutex // one line written at a time
	done  chan struct{}
	err   error // why it ended (set before done closes)
}

func newLinesChild(cfg Config) *linesChild {
	return &linesChild{cfg: cfg, pending: map[string]chan answerOrErr{}}
}

// start starts the program; l.mu is held.
func (l *linesChild) start() (*child, error) {
	cmd := exec.Command("sh", "-c", l.cfg.Command)
	cmd.Env = append(os.Environ(), l.cfg.Env...)
	cmd.Env = append(cmd.Env, "MESHBOT_EXEC_MODE=lines")
	cmd.Stderr = l.cfg.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %q: %v", ErrFailed, l.cfg.Command, err)
	}
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go l.read(c, stdout)
	return c, nil
}

// read takes the program's answers until its stdout closes, then waits
// for it and fails what it left unanswered.
func (l *linesChild) read(c *child, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), maxAnswerLine)
	var readErr error
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var a answer
		if err := json.Unmarshal([]byte(line), &a); err != nil || a.ID == "" {
			readErr = fmt.Errorf("it wrote a line that is not an answer ({\"id\":...,\"result\":...}): %.80q", line)
			break
		}
		l.deliver(a)
	}
	if readErr == nil {
		readErr = sc.Err()
	}
	if readErr != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
	werr := c.cmd.Wait()
	switch {
	case readErr != nil:
		c.err = fmt.Errorf("%w: %v", ErrFailed, readErr)
	case werr != nil:
		c.err = fmt.Errorf("%w: the program ended: %v", ErrFailed, werr)
	default:
		c.err = fmt.Errorf("%w: the program ended", ErrFailed)
	}
	close(c.done)
	l.mu.Lock()
	if l.proc == c {
		l.proc = nil
	}
	waiting := l.pending
	l.pending = map[string]chan answerOrErr{}
	l.mu.Unlock()
	for _, ch := range waiting {
		ch <- answerOrErr{err: c.err}
	}
}

// deliver hands an answer to the call waiting for it.
func (l *linesChild) deliver(a answer) {
	l.mu.Lock()
	ch, ok := l.pending[a.ID]
	delete(l.pending, a.ID)
	l.mu.Unlock()
	if !ok {
		return // late: its call gave up
	}
	switch {
	case a.Error != nil:
		ch <- answerOrErr{err: fmt.Errorf("%w: %s", ErrFailed, *a.Error)}
	case a.ResultBase64 != "":
		out, err := base64.StdEncoding.DecodeString(a.ResultBase64)
		if err != nil {
			err = fmt.Errorf("%w: result_base64: %v", ErrFailed, err)
		}
		ch <- answerOrErr{out: out, err: err}
	case a.Result != nil:
		ch <- answerOrErr{out: []byte(*a.Result)}
	default:
		ch <- answerOrErr{}
	}
}

// call sends c to the program (starting it if needed) and waits for its
// answer.
func (l *linesChild) call(ctx context.Context, c Call) ([]byte, error) {
	ch := make(chan answerOrErr, 1)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: closed", ErrFailed)
	}
	l.seq++
	req := request{CallID: strconv.FormatUint(l.seq, 10), Call: c}
	req.Payload, req.PayloadBase64 = payloadFields(c.Payload)
	line, err := json.Marshal(req)
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	line = append(line, '\n')
	if l.proc == nil {
		if l.proc, err = l.start(); err != nil {
			l.mu.Unlock()
			return nil, err
		}
	}
	p := l.proc
	l.pending[req.CallID] = ch
	l.mu.Unlock()
	p.wmu.Lock()
	_, err = p.stdin.Write(line)
	p.wmu.Unlock()
	if err != nil {
		l.forget(req.CallID)
		return nil, fmt.Errorf("%w: writing to the program: %v", ErrFailed, err)
	}
	select {
	case a := <-ch:
		return a.out, a.err
	case <-ctx.Done():
		l.forget(req.CallID)
		return nil, fmt.Errorf("%w: %w", ErrFailed, ctx.Err())
	}
}

func (l *linesChild) forget(id string) {
	l.mu.Lock()
	delete(l.pending, id)
	l.mu.Unlock()
}

func (l *linesChild) close() error {
	l.mu.Lock()
	l.closed = true
	p := l.proc
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(closeGrace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}

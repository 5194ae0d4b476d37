package exechandler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/exechandler"
)

func runner(t *testing.T, cfg exechandler.Config) *exechandler.Runner {
	t.Helper()
	cfg.Stderr = io.Discard
	r, err := exechandler.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

var call = exechandler.Call{Kind: "event", ID: "0123abcd", Topic: "jobs", Group: "workers", Epoch: 2, Attempt: 3, Token: 8589934594, Payload: []byte("hello")}

// TestEach: the payload on stdin, the answer on stdout, the call's fields
// in the environment; a non-zero exit fails with the end of stderr; a
// program that outlives the timeout is killed.
func TestEach(t *testing.T) {
	ctx := context.Background()
	r := runner(t, exechandler.Config{Command: `printf '%s|%s|%s|%s|%s|%s|' "$MESHBOT_KIND" "$MESHBOT_TOPIC" "$MESHBOT_ID" "$MESHBOT_EPOCH" "$MESHBOT_ATTEMPT" "$MESHBOT_TOKEN"; tr a-z A-Z`})
	out, err := r.Run(ctx, call)
	if err != nil {
		t.Fatal(err)
	}
	if want := "event|jobs|0123abcd|2|3|8589934594|HELLO"; string(out) != want {
		t.Errorf("answer %q, want %q", out, want)
	}

	r = runner(t, exechandler.Config{Command: `echo "store busy" >&2; exit 3`})
	_, err = r.Run(ctx, call)
	if !errors.Is(err, exechandler.ErrFailed) || !strings.Contains(err.Error(), "exit status 3: store busy") {
		t.Errorf("failing program: %v", err)
	}

	r = runner(t, exechandler.Config{Command: `sleep 30`, Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err = r.Run(ctx, call)
	if !errors.Is(err, exechandler.ErrFailed) || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Errorf("slow program: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the timeout took %v to act", d)
	}
}

// pyLines is a long-running handler in Python speaking JSON lines: it
// answers "fail" with an error, "bytes" in base64, anything else in upper
// case with the token, and answers a "slow" call after the next one.
const pyLines = `python3 -u -c '
import sys, json
held = None
for line in sys.stdin:
    c = json.loads(line)
    p = c.get("payload", "")
    if p == "fail":
        out = {"id": c["id"], "error": "cannot " + p}
    elif p == "bytes":
        out = {"id": c["id"], "result_base64": "AAH/"}
    elif p == "slow":
        held = c
        continue
    else:
        out = {"id": c["id"], "result": p.upper() + " token=" + str(c.get("token", 0))}
    print(json.dumps(out))
    if held is not None:
        print(json.dumps({"id": held["id"], "result": "late"}))
        held = None
'`

// TestLines: one program answers many calls, concurrently and out of
// order; errors and base64 answers come back; a program that dies fails
// its calls and is started again.
func TestLines(t *testing.T) {
	ctx := context.Background()
	r := runner(t, exechandler.Config{Command: pyLines, Mode: exechandler.ModeLines})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			c := call
			c.Payload = []byte(fmt.Sprintf("event %d", i))
			out, err := r.Run(ctx, c)
			if want := fmt.Sprintf("EVENT %d token=8589934594", i); err != nil || string(out) != want {
				errs <- fmt.Errorf("call %d: %q, %v; want %q", i, out, err, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := call
	c.Payload = []byte("fail")
	if _, err := r.Run(ctx, c); !errors.Is(err, exechandler.ErrFailed) || !strings.Contains(err.Error(), "cannot fail") {
		t.Errorf("error answer: %v", err)
	}
	c.Payload = []byte("bytes")
	if out, err := r.Run(ctx, c); err != nil || string(out) != "\x00\x01\xff" {
		t.Errorf("base64 answer: %q, %v", out, err)
	}
	// Out of order: the slow call is answered after the next one.
	slow := make(chan string, 1)
	go func() {
		c := call
		c.Payload = []byte("slow")
		out, err := r.Run(ctx, c)
		slow <- fmt.Sprintf("%s %v", out, err)
	}()
	time.Sleep(100 * time.Millisecond)
	c.Payload = []byte("next")
	if out, err := r.Run(ctx, c); err != nil || !strings.HasPrefix(string(out), "NEXT") {
		t.Errorf("next: %q, %v", out, err)
	}
	if got := <-slow; got != "late <nil>" {
		t.Errorf("slow call: %s", got)
	}

	// A program that exits: its call fails, the next one starts it again.
	r = runner(t, exechandler.Config{Command: `read line; exit 7`, Mode: exechandler.ModeLines})
	if _, err := r.Run(ctx, call); !errors.Is(err, exechandler.ErrFailed) || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("dying program: %v", err)
	}
	if _, err := r.Run(ctx, call); !errors.Is(err, exechandler.ErrFailed) || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("restarted program: %v", err)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what a run of the tool left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the tool in-process with the given environment (nothing of
// the real one) and stdin, and waits for it.
func runCLI(t *testing.T, environ map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb syncBuffer
	code := run(ctx, args, testEnv(environ, strings.NewReader(stdin), &out, &errb))
	return result{code, out.String(), errb.String()}
}

func testEnv(environ map[string]string, stdin *strings.Reader, out, errb *syncBuffer) env {
	return env{stdin: stdin, stdout: out, stderr: errb, getenv: func(k string) string { return environ[k] }}
}

// background is a long-running command (tail, demo) started by startCLI.
type background struct {
	cancel      context.CancelFunc
	done        chan int
	out, errbuf *syncBuffer
}

func startCLI(t *testing.T, environ map[string]string, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan int, 1), out: &syncBuffer{}, errbuf: &syncBuffer{}}
	go func() { b.done <- run(ctx, args, testEnv(environ, strings.NewReader(""), b.out, b.errbuf)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(15 * time.Second):
			t.Errorf("%v did not stop", args)
		}
	})
	return b
}

// waitFor waits until buf holds want (an error naming what it holds
// instead after timeout).
func waitFor(t *testing.T, what string, buf *syncBuffer, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after %v; it holds:\n%s", what, want, timeout, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop interrupts the command (as Ctrl-C does) and returns its exit code.
func (b *background) stop(t *testing.T) int {
	t.Helper()
	b.cancel()
	select {
	case code := <-b.done:
		b.done <- code // for the cleanup
		return code
	case <-time.After(15 * time.Second):
		t.Fatal("command did not stop within 15s of the interrupt")
		return -1
	}
}

// ircClient is a person on IRC, in a raw connection.
type ircClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	nick string
}

func dialIRC(t *testing.T, addr, nick string) *ircClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &ircClient{t: t, conn: conn, r: bufio.NewReader(conn), nick: nick}
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :a person")
	c.expect(" 001 ")
	return c
}

func (c *ircClient) send(line string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", line); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads lines until one contains want, answering PINGs.
func (c *ircClient) expect(want string) string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%s: waiting for %q: %v", c.nick, want, err)
		}
		if strings.HasPrefix(line, "PING ") {
			c.send("PONG " + strings.TrimSpace(line[5:]))
		}
		if strings.Contains(line, want) {
			return line
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

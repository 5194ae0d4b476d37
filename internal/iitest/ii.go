//go:build unix

// Package iitest drives ii(1), the Debian package "ii": a real IRC client
// whose input is a FIFO per server, channel and query, and whose output
// is a plain file for each, for tests that check what a person in an IRC
// client sees and can do.
package iitest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
)

// Client is a running ii(1), the Debian package "ii": a real IRC client
// whose input is a FIFO per server and channel and whose output is a plain
// file per server and channel.
type Client struct {
	t    testing.TB
	nick string
	dir  string // <prefix>/<host>: holds in, out and one directory per channel
	log  string // ii's own stdout and stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when ii has exited
	err  error         // ii's exit status, once done is closed
}

// Start starts ii as nick against srv and stops it when the test ends. A
// missing ii fails the test: CI installs it.
func Start(t testing.TB, srv *ircd.Server, nick string) *Client {
	t.Helper()
	bin, err := exec.LookPath("ii")
	if err != nil {
		t.Fatalf("the IRC client ii is not installed (Debian package %q: apt-get install -y ii): %v", "ii", err)
	}
	prefix := t.TempDir()
	c := &Client{
		t:    t,
		nick: nick,
		dir:  filepath.Join(prefix, srv.Host()),
		log:  filepath.Join(prefix, "ii.log"),
		done: make(chan struct{}),
	}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "-s", srv.Host(), "-p", strconv.Itoa(srv.Port()),
		"-n", nick, "-f", "meshbot test watcher", "-i", prefix)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start ii: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(3 * time.Second):
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}
		if t.Failed() {
			c.dump()
		}
	})
	return c
}

// dump logs what ii wrote, to explain a failure.
func (c *Client) dump() {
	c.t.Helper()
	_ = filepath.WalkDir(filepath.Dir(c.dir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (d.Name() != "out" && path != c.log) {
			return nil
		}
		b, _ := os.ReadFile(path)
		c.t.Logf("ii %s:\n%s", path, b)
		return nil
	})
}

func (c *Client) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Write sends one line to the FIFO in (relative to c.dir: "in" for the
// server, "#chan/in" for a channel). Opening a FIFO for writing blocks
// until someone reads it, so it is opened non-blocking, retrying until ii
// has it open or the timeout passes.
func (c *Client) Write(in, line string, timeout time.Duration) {
	c.t.Helper()
	path := filepath.Join(c.dir, in)
	deadline := time.Now().Add(timeout)
	for {
		fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err == nil {
			b := []byte(line + "\n")
			n, werr := syscall.Write(fd, b)
			syscall.Close(fd)
			if werr != nil || n != len(b) {
				c.t.Fatalf("write %q to %s: %d bytes, %v", line, path, n, werr)
			}
			return
		}
		// ENOENT: ii has not made the FIFO yet; ENXIO: nobody reads it.
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENXIO) {
			c.t.Fatalf("open %s: %v", path, err)
		}
		if c.Exited() {
			c.t.Fatalf("ii exited (%v) before reading %s", c.err, path)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ii did not read %s within %v: %v", path, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Lines returns the lines ii has written to out (relative to c.dir).
func (c *Client) Lines(out string) []string {
	b, err := os.ReadFile(filepath.Join(c.dir, out))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// WaitLines polls out until ok accepts its lines or the timeout passes.
func (c *Client) WaitLines(out string, timeout time.Duration, what string, ok func([]string) bool) []string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ls := c.Lines(out)
		if ok(ls) {
			return ls
		}
		if c.Exited() {
			c.t.Fatalf("ii exited (%v) while waiting for %s", c.err, what)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ii: no %s in %s within %v", what, out, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Join joins channel and waits until the server confirms it. ii sends the
// JOIN at once, and servers refuse it before registration completes
// (InspIRCd registers a client after about a second), so it is repeated
// until the channel's out shows the client joined.
func (c *Client) Join(channel string, timeout time.Duration) {
	c.t.Helper()
	joined := func(ls []string) bool {
		for _, l := range ls {
			if strings.Contains(l, c.nick) && strings.Contains(l, "has joined "+channel) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(timeout)
	for {
		c.Write("in", "/j "+channel, time.Until(deadline))
		wait := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(wait) {
			if joined(c.Lines(channel + "/out")) {
				return
			}
			if c.Exited() {
				c.t.Fatalf("ii exited (%v) while joining %s", c.err, channel)
			}
			time.Sleep(25 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ii did not join %s within %v", channel, timeout)
		}
	}
}

// Nick returns the client's nick.
func (c *Client) Nick() string { return c.nick }

// Dir returns the client's directory for the server: in, out, and one
// directory per channel and per nick it talks with.
func (c *Client) Dir() string { return c.dir }

// Say sends text to nick privately (ii's "/j NICK TEXT"): the nick's
// answers are in "NICK/out" (lower case, as ii names it).
func (c *Client) Say(nick, text string) {
	c.t.Helper()
	c.Write("in", "/j "+nick+" "+text, 5*time.Second)
}

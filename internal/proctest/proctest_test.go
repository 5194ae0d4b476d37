//go:build unix

package proctest

import (
	"context"
	"fmt"
	"github.com/meshbot/meshbot/internal/meshtest"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

func TestMain(m *testing.M) { Main(m) }

const readyWait = 20 * time.Second

// presentWithin polls node.Present(service) until it equals want (sorted
// nicks), and fails the test naming what it saw after timeout. It returns
// how long it took.
func presentWithin(t *testing.T, node *mesh.Node, service string, want []string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got []string
	for time.Since(start) < timeout {
		got = node.Present(service)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("Present(%q) = %v after %v, want %v", service, got, timeout, want)
	return 0
}

func publish(t *testing.T, node *mesh.Node, topic, payload string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := node.Publish(ctx, topic, []byte(payload))
	if err != nil {
		t.Fatalf("publish %s: %v", payload, err)
	}
	return ack.ID.String()
}

// TestServeProcesses runs two `meshbot serve` processes of one service and
// does to them what failure detection must survive: multicast reaches both;
// a SIGKILLed one is seen leaving (the server relays its QUIT); a
// SIGSTOPped one receives nothing while frozen and everything once
// continued; the killed one restarted with the same --instance is back as
// the same nick; SIGTERM stops them gracefully, even a frozen one.
func TestServeProcesses(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	dir := t.TempDir()
	evA, evB := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	common := []string{"serve", "--server", srv.Addr(), "--namespace", "pt", "--service", "svc",
		"--subscribe", "orders", "--handle", "echo", "--log-level", "info"}
	a := Start(t, append(common, "--instance", "a", "--events", evA)...)
	b := Start(t, append(common, "--instance", "b", "--events", evB)...)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service, cfg.Instance = srv.Addr(), "pt", "tester", "1"
	node, err := mesh.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close(context.Background())

	if nick := a.WaitReady(readyWait); nick != "svc-a" {
		t.Fatalf("a is %q", nick)
	}
	if nick := b.WaitReady(readyWait); nick != "svc-b" {
		t.Fatalf("b is %q", nick)
	}
	presentWithin(t, node, "svc", []string{"svc-a", "svc-b"}, 5*time.Second)

	// Multicast: both get it.
	one := publish(t, node, "orders", "one")
	WaitEvents(t, evA, 10*time.Second, HasID(one))
	WaitEvents(t, evB, 10*time.Second, HasID(one))

	// SIGKILL: no goodbye from the process, but the kernel closes its
	// socket and the server relays a QUIT.
	a.Kill()
	if code := a.ExitCode(); code != -1 {
		t.Errorf("a's exit code after SIGKILL: %d, want -1", code)
	}
	took := presentWithin(t, node, "svc", []string{"svc-b"}, 5*time.Second)
	t.Logf("SIGKILLed instance seen leaving after %v", took)

	// SIGSTOP: the process is frozen but its connection stays; what is
	// published meanwhile waits in its socket and is handled on SIGCONT.
	b.Stop()
	two := publish(t, node, "orders", "two")
	time.Sleep(300 * time.Millisecond)
	if evs, _ := ReadEvents(evB); HasID(two)(evs) {
		t.Errorf("a stopped process recorded an event")
	}
	if got := node.Present("svc"); !slices.Equal(got, []string{"svc-b"}) {
		t.Errorf("while b is stopped, Present = %v", got)
	}
	b.Cont()
	WaitEvents(t, evB, 10*time.Second, HasID(two))
	three := publish(t, node, "orders", "three")
	WaitEvents(t, evB, 10*time.Second, HasID(three))
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	answer, err := node.Request(rctx, "svc", "echo", []byte("still there?"))
	rcancel()
	if err != nil || string(answer) != "svc-b: still there?" {
		t.Errorf("request to b after SIGCONT: %q, %v", answer, err)
	}

	// Restart: the same arguments, so the same instance, appending to the
	// same events file.
	a = a.Restart(t)
	if nick := a.WaitReady(readyWait); nick != "svc-a" {
		t.Fatalf("restarted a is %q", nick)
	}
	presentWithin(t, node, "svc", []string{"svc-a", "svc-b"}, 5*time.Second)
	four := publish(t, node, "orders", "four")
	evs := WaitEvents(t, evA, 10*time.Second, HasID(four))
	var got []string
	for _, e := range evs {
		got = append(got, e.Payload)
	}
	if !slices.Equal(got, []string{"one", "four"}) {
		t.Errorf("a recorded %v over its two lives, want [one four]", got)
	}
	evs = WaitEvents(t, evB, 10*time.Second, HasID(four))
	if n := Count(evs, func(e Event) bool { return e.Kind == "event" }); n != 4 {
		t.Errorf("b recorded %d events, want 4", n)
	}
	if n := Count(evs, func(e Event) bool { return e.Kind == "request" && e.Method == "echo" && e.From == "tester-1" }); n != 1 {
		t.Errorf("b recorded %d requests, want 1", n)
	}

	// SIGTERM: graceful, exit 0, the bot quits. b is frozen first:
	// Terminate continues it.
	b.Stop()
	for _, p := range []*Proc{a, b} {
		if code := p.Terminate(10 * time.Second); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM", p, code)
		}
	}
	presentWithin(t, node, "svc", nil, 5*time.Second)
	for _, p := range []*Proc{a, b} {
		if strings.Count(p.Stdout(), "ready ") != 1 {
			t.Errorf("%s stdout: %q, want one ready line", p, p.Stdout())
		}
		if !strings.Contains(p.Stderr(), "msg=stopping") {
			t.Errorf("%s stderr lacks the stopping log:\n%s", p, p.Stderr())
		}
	}
}

// TestProcLifecycle exercises Proc without an IRC server: a process that
// fails before ready, double kills, Terminate and Restart of ended
// processes, signals to a process that is gone.
func TestProcLifecycle(t *testing.T) {
	t.Parallel()

	// A usage error: exit 1 before ready.
	p := Start(t, "serve")
	if code := p.Wait(20 * time.Second); code != 1 {
		t.Errorf("serve without --service: exit %d, want 1", code)
	}
	if !strings.Contains(p.Stderr(), "--service is required") || p.Stdout() != "" {
		t.Errorf("stdout %q, stderr %q", p.Stdout(), p.Stderr())
	}
	p.Kill()
	p.Kill()
	if code := p.Terminate(time.Second); code != 1 {
		t.Errorf("Terminate of an ended process: %d, want its exit code 1", code)
	}

	// WaitReady on a process that ends first fails the test, at once.
	ft := &fakeT{TB: t}
	p = Start(ft, "serve", "--service", "s", "--server", closedAddr(t))
	start := time.Now()
	ft.run(func() { p.WaitReady(20 * time.Second) })
	if !ft.fataled || !strings.Contains(ft.msg, "before printing") || !strings.Contains(ft.msg, "cannot reach the IRC server") {
		t.Errorf("WaitReady on a failing process: fatal %v, %q", ft.fataled, ft.msg)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("WaitReady took %v to notice the exit", time.Since(start))
	}

	// Stop on an ended process fails the test.
	ft.fataled, ft.msg = false, ""
	ft.run(p.Stop) // p reports to ft
	if !ft.fataled || !strings.Contains(ft.msg, "SIGSTOP to meshbot serve") {
		t.Errorf("Stop on an ended process: fatal %v, %q", ft.fataled, ft.msg)
	}

	// A process that runs (waiting for a server that does not answer the
	// handshake): SIGSTOP, SIGKILL while stopped, Restart.
	addr, accepted := silentServer(t)
	p = Start(t, "serve", "--service", "s", "--server", addr, "--connect-timeout", "1m")
	waitAccepted(t, p, accepted, 1)
	p.Stop()
	if runtime.GOOS == "linux" {
		if stopped, ok := stopState(p.PID()); !ok || !stopped {
			t.Errorf("after Stop: stopped=%v ok=%v", stopped, ok)
		}
	}
	p.Kill()
	if !p.Exited() || p.ExitCode() != -1 {
		t.Errorf("after Kill: exited %v, code %d", p.Exited(), p.ExitCode())
	}
	q := p.Restart(t)
	if q.PID() == p.PID() || q.Exited() || !slices.Equal(q.Args(), p.Args()) {
		t.Errorf("Restart: pid %d (was %d), exited %v, args %v", q.PID(), p.PID(), q.Exited(), q.Args())
	}
	// Once it dialled, its signal handlers are in place.
	waitAccepted(t, q, accepted, accepted()+1)
	if code := q.Terminate(10 * time.Second); code != 0 {
		t.Errorf("SIGTERM while connecting: exit %d, want 0 (a clean stop)\n%s", code, q.Stderr())
	}
	// Reaped: no zombies left behind.
	if runtime.GOOS == "linux" {
		for _, pid := range []int{p.PID(), q.PID()} {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				t.Errorf("process %d still in /proc", pid)
			}
		}
	}
}

// silentServer listens on loopback and reads whatever its clients send,
// answering nothing; it stops at the end of the test.
func silentServer(t *testing.T) (addr string, accepted func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

// waitAccepted waits until the silent server accepted n connections in
// all, failing the test if p ends first.
func waitAccepted(t *testing.T, p *Proc, accepted func() int, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for accepted() < n {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("%s did not connect (%d connections, want %d)", p, accepted(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadEvents: a cut last line is ignored, a missing file is empty,
// binary payloads decode.
func TestReadEvents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if evs, err := ReadEvents(filepath.Join(dir, "none")); err != nil || evs != nil {
		t.Errorf("missing file: %v, %v", evs, err)
	}
	path := filepath.Join(dir, "ev.jsonl")
	content := `{"kind":"event","topic":"t","id":"01","payload":"hi","from":"x-1","at":"2025-01-02T03:04:05Z"}
{"kind":"request","method":"m","id":"02","payload_base64":"AAH/","from":"x-2","at":"2025-01-02T03:04:05Z"}
{"kind":"event","topic":"t","id":"03","pay`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	evs, err := ReadEvents(path)
	if err != nil || len(evs) != 2 {
		t.Fatalf("ReadEvents: %v, %v", evs, err)
	}
	if string(evs[0].Data()) != "hi" || string(evs[1].Data()) != "\x00\x01\xff" || evs[1].Method != "m" || evs[0].At.Year() != 2025 {
		t.Errorf("events: %+v", evs)
	}
	if !HasID("01", "02")(evs) || HasID("03")(evs) {
		t.Error("HasID")
	}
	if err := os.WriteFile(path, []byte("not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEvents(path); err == nil || !strings.Contains(err.Error(), "ev.jsonl:1:") {
		t.Errorf("bad line: %v", err)
	}
}

// fakeT records a Fatal instead of failing the test.
type fakeT struct {
	testing.TB
	mu      sync.Mutex
	fataled bool
	msg     string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fataled, f.msg = true, fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls fn on a goroutine of its own (Fatalf ends it) and waits.
func (f *fakeT) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func closedAddr(t *testing.T) string { return meshtest.ClosedAddr(t) }

package ircd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune Start. The zero value is ready to use.
type Options struct {
	// Port is the client port on 127.0.0.1; 0 picks a free one (and retries
	// with another if the server fails to start, e.g. because the port was
	// taken in the meantime).
	Port int
	// ServerName is the server's name (InspIRCd and ngIRCd; ergo takes it
	// from ergo.yaml). Empty means "<kind>.meshbot.test".
	ServerName string
	// ReadyTimeout bounds each wait for the server to accept a client
	// registration (Start, Restart). Default 30s.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop and Restart wait after SIGTERM before
	// sending SIGKILL. Default 5s.
	StopTimeout time.Duration
	// Output, if set, also receives the server's stdout and stderr as they
	// are written (Log keeps a copy in any case).
	Output io.Writer
	// ServicesPath is the services daemon's executable for InspIRCd with
	// accounts (StartWithAccounts). Empty means atheme-services from PATH,
	// /usr/bin or /usr/sbin.
	ServicesPath string
	// MaxChannels bounds the channels one client may be in (InspIRCd's
	// maxchans, ngIRCd's MaxJoins, ergo's max-channels-per-client); 0
	// keeps the configs' 1,000 (ngIRCd: no limit).
	MaxChannels int
}

func (o Options) withDefaults() Options {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 5 * time.Second
	}
	return o
}

// logLimit bounds the output kept per server (the tail is kept).
const logLimit = 1 << 20

// logTailLines is how much of the log errors quote.
const logTailLines = 40

// Server is a running IRC server process listening on 127.0.0.1. Its
// methods are safe for concurrent use.
type Server struct {
	spec   Spec
	binary string
	opts   Options
	dir    string // private temporary directory: config, logs, database
	data   templateData
	log    *logBuffer
	name   atomic.Pointer[string] // server name seen in RPL_WELCOME

	mu       sync.Mutex // serializes Stop, Kill, Restart, Signal
	proc     *process   // the current (or last) process; nil before the first
	services *services  // InspIRCd's services daemon (StartWithAccounts); nil without
	stopped  bool

	fileLogMu sync.Mutex
	fileLog   string // InspIRCd's log file, saved when the directory is removed
}

// process is one run of the server executable.
type process struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	err      error         // cmd.Wait's result, set before done is closed
	expected atomic.Bool   // the harness asked it to exit
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ErrPortInUse is wrapped by the error Start returns when the port asked
// for is held by another process.
var ErrPortInUse = errors.New("port in use")

// errExited reports that the server process ended while the harness was
// waiting for it to become ready.
var errExited = errors.New("server process exited")

// Start starts the server spec names on a loopback port in a fresh temporary
// directory and returns once a client can connect and register (RPL_WELCOME
// received). ctx bounds only the start-up, not the server's life: call Stop
// when done. On error nothing is left running and the error quotes the end
// of the server's log.
func Start(ctx context.Context, spec Spec, opts Options) (*Server, error) {
	return startServer(ctx, spec, opts, templateData{})
}

func startServer(ctx context.Context, spec Spec, opts Options, data templateData) (*Server, error) {
	s, err := newServer(spec, opts, data)
	if err != nil {
		return nil, err
	}
	return s, s.start(ctx)
}

// start launches a new server, picking its ports, retrying on other ports
// when they were taken. On error s is stopped.
func (s *Server) start(ctx context.Context) error {
	opts := s.opts
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(1 + s.extraPorts())
		if err != nil {
			_ = s.Stop()
			return err
		}
		port := opts.Port
		if port == 0 {
			port = ports[0]
		}
		s.data.Port = port
		s.setExtraPorts(ports[1:])
		if opts.Port != 0 && portTaken(port) {
			_ = s.Stop()
			return fmt.Errorf("%w: port %d of 127.0.0.1 is taken by another process", ErrPortInUse, port)
		}
		err = s.launch(ctx)
		if err == nil {
			return nil
		}
		retry := errors.Is(err, errExited) || errors.Is(err, ErrPortInUse)
		if opts.Port != 0 || attempt == 3 || !retry || ctx.Err() != nil {
			_ = s.Stop()
			return err
		}
		fmt.Fprintf(s.log, "\n--- meshbot/ircd: start attempt %d failed (%v); retrying on another port ---\n", attempt, err)
		if s.services != nil {
			_ = s.services.stop() // linked to the old ports
			s.services.proc = nil
		}
	}
}

func newServer(spec Spec, opts Options, data templateData) (*Server, error) {
	switch spec.Kind {
	case InspIRCd, NgIRCd, Ergo:
	default:
		return nil, fmt.Errorf("unknown IRC server kind %q", spec.Kind)
	}
	bin, err := spec.Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "meshbot-"+string(spec.Kind)+"-")
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	data.Dir = dir
	if data.ServerName == "" {
		data.ServerName = opts.ServerName
	}
	data.MaxChans = opts.MaxChannels
	return &Server{spec: spec, binary: bin, opts: opts, dir: dir, data: data, log: newLogBuffer(logLimit)}, nil
}

// Addr is the client address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())) }

// Host is always "127.0.0.1".
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the client port. It stays the same across Restart.
func (s *Server) Port() int { return s.data.Port }

// Kind is the server implementation.
func (s *Server) Kind() Kind { return s.spec.Kind }

// Spec is what the server was started from.
func (s *Server) Spec() Spec { return s.spec }

// Binary is the absolute path of the server's executable.
func (s *Server) Binary() string { return s.binary }

// Name is the server's name as clients see it (the source of RPL_WELCOME).
func (s *Server) Name() string {
	if p := s.name.Load(); p != nil {
		return *p
	}
	return ""
}

// Dir is the server's private temporary directory (config, logs,
// database). Stop removes it.
func (s *Server) Dir() string { return s.dir }

// String describes the server for logs, e.g. "inspircd at 127.0.0.1:40123".
func (s *Server) String() string { return fmt.Sprintf("%s at %s", s.spec.Kind, s.Addr()) }

// launch writes the config, starts the process and waits until it is ready.
// On error the process is stopped. Callers hold s.mu or own s exclusively.
func (s *Server) launch(ctx context.Context) error {
	confPath, err := writeConfig(s.spec.Kind, s.data)
	if err != nil {
		return err
	}
	var args []string
	switch s.spec.Kind {
	case InspIRCd:
		args = []string{"--nofork", "--config=" + confPath}
		if os.Geteuid() == 0 {
			args = append(args, "--runasroot") // it refuses to run as root otherwise
		}
	case NgIRCd:
		args = []string{"--nodaemon", "--config", confPath}
	case Ergo:
		args = []string{"run", "--conf", confPath}
	}
	cmd := exec.Command(s.binary, args...)
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	var out io.Writer = s.log
	if s.opts.Output != nil {
		out = io.MultiWriter(s.log, s.opts.Output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 2 * time.Second // don't hang on pipes inherited by stray children
	fmt.Fprintf(s.log, "--- meshbot/ircd: %s %s ---\n", s.binary, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.binary, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p
	if err := s.startServices(ctx, p); err != nil {
		_ = s.stopProcess(p)
		return fmt.Errorf("%s (%s) on %s: %w\n%s", s.spec.Kind, s.binary, s.Addr(), err, s.logTail())
	}

	name, err := s.waitReady(ctx, p)
	if err != nil {
		_ = s.stopProcess(p)
		return fmt.Errorf("%s (%s) did not become ready on %s: %w\n%s", s.spec.Kind, s.binary, s.Addr(), err, s.logTail())
	}
	// The client that registered may have reached another server that
	// holds the port (the new one failed to bind it).
	if ours, err := listensOn(p.cmd.Process.Pid, s.data.Port); err == nil && !ours {
		_ = s.stopProcess(p)
		return fmt.Errorf("%w: port %d of 127.0.0.1 is held by another process (an IRC server answers there, not the %s just started)",
			ErrPortInUse, s.data.Port, s.spec.Kind)
	}
	if err := s.servicesReady(ctx, p); err != nil {
		_ = s.stopProcess(p)
		return fmt.Errorf("%s (%s) on %s: %w\n%s", s.spec.Kind, s.binary, s.Addr(), err, s.logTail())
	}
	s.name.Store(&name)
	return nil
}

// serverEnv is the environment for server processes: ours without ergo's
// config overrides, so that the config file is the whole truth.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ERGO__") || strings.HasPrefix(kv, "ORAGONO__") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitReady polls until a client registers, and returns the server name.
func (s *Server) waitReady(ctx context.Context, p *process) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var lastErr error
	for {
		if p.exited() {
			return "", fmt.Errorf("%w (%v)", errExited, p.err)
		}
		if ctx.Err() != nil {
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return "", fmt.Errorf("after %v: %w", s.opts.ReadyTimeout, lastErr)
		}
		name, err := s.tryRegister(ctx)
		if err == nil {
			return name, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) tryRegister(ctx context.Context) (string, error) {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	rc, err := dialRaw(dctx, s.Addr())
	cancel()
	if err != nil {
		return "", err
	}
	defer rc.quit(ctx)
	welcome, err := rc.register(ctx, "ready", nil)
	if err != nil {
		return "", fmt.Errorf("registration: %w", err)
	}
	return welcome.Source, nil
}

// stopProcess ends p: SIGTERM, then SIGKILL after StopTimeout.
func (s *Server) stopProcess(p *process) error {
	if p.exited() {
		return nil
	}
	p.expected.Store(true)
	_ = signalProcess(p.cmd, sigterm)
	resume(p.cmd) // a frozen (SIGSTOP) server could not act on SIGTERM
	select {
	case <-p.done:
		return nil
	case <-time.After(s.opts.StopTimeout):
	}
	fmt.Fprintf(s.log, "\n--- meshbot/ircd: no exit %v after SIGTERM; sending SIGKILL ---\n", s.opts.StopTimeout)
	return s.killProcess(p)
}

// killProcess sends SIGKILL and waits (bounded) for the exit.
func (s *Server) killProcess(p *process) error {
	if p.exited() {
		return nil
	}
	p.expected.Store(true)
	_ = signalProcess(p.cmd, sigkill)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", s.spec.Kind, p.cmd.Process.Pid)
	}
}

// unexpectedExit reports a process that ended without the harness asking.
func (s *Server) unexpectedExit(p *process) error {
	if p == nil || !p.exited() || p.expected.Load() {
		return nil
	}
	return fmt.Errorf("%s on %s exited unexpectedly (%v)\n%s", s.spec.Kind, s.Addr(), p.err, s.logTail())
}

// Stop ends the server (SIGTERM, then SIGKILL after Options.StopTimeout),
// waits for it and removes its directory. It is safe to call more than once
// and after Kill; later calls return nil. The error reports a server that
// had exited by itself (a crash) or could not be stopped.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	var errs []error
	if s.services != nil {
		errs = append(errs, s.services.stop())
	}
	if s.proc != nil {
		errs = append(errs, s.unexpectedExit(s.proc), s.stopProcess(s.proc))
	}
	s.saveFileLog()
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Kill ends the server with SIGKILL, like a crash: clients see their
// connections reset, nothing is shut down cleanly. The directory is kept,
// so Restart brings the server back (with ergo's database).
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("ircd: Kill after Stop")
	}
	if s.proc == nil {
		return nil
	}
	return s.killProcess(s.proc)
}

// Signal sends sig to the server process (e.g. syscall.SIGSTOP and
// SIGCONT to freeze and thaw it). It is an error if the process is not
// running.
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.proc == nil || s.proc.exited() {
		return errors.New("ircd: server not running")
	}
	return signalProcess(s.proc.cmd, sig)
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.stopped && s.proc != nil && !s.proc.exited()
}

// Restart stops the server gracefully if it is running (after Kill it is
// not) and starts it again on the same port with the same directory,
// returning once a client can register. Clients must reconnect.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("ircd: Restart after Stop")
	}
	if s.proc != nil {
		if err := s.unexpectedExit(s.proc); err != nil {
			fmt.Fprintf(s.log, "\n--- meshbot/ircd: %v ---\n", strings.SplitN(err.Error(), "\n", 2)[0])
		}
		if err := s.stopProcess(s.proc); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.log, "\n--- meshbot/ircd: restart ---\n")
	var err error
	// The old process's listening socket may linger for a moment.
	for attempt := 1; attempt <= 3; attempt++ {
		if err = s.launch(ctx); err == nil || !errors.Is(err, errExited) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// Log returns what the server wrote to stdout and stderr (the last MiB)
// and, for InspIRCd, its log file, then what its services daemon wrote
// (StartWithAccounts). It stays available after Stop.
func (s *Server) Log() string {
	out := s.serverLog()
	if s.services != nil {
		out += "\n--- " + AthemeName + " ---\n" + s.services.log.String()
	}
	return out
}

func (s *Server) serverLog() string {
	out := s.log.String()
	if s.spec.Kind == InspIRCd {
		out += "\n--- inspircd.log ---\n" + s.inspircdLog()
	}
	return out
}

func (s *Server) logTail() string {
	out := "--- server log (tail) ---\n" + tail(s.serverLog(), logTailLines)
	if s.services != nil {
		out += "\n--- " + AthemeName + " log (tail) ---\n" + tail(s.services.log.String(), logTailLines)
	}
	return out
}

const inspircdLogFile = "inspircd.log"

func (s *Server) inspircdLog() string {
	s.fileLogMu.Lock()
	defer s.fileLogMu.Unlock()
	if s.fileLog != "" {
		return s.fileLog
	}
	return readTail(filepath.Join(s.dir, inspircdLogFile), logLimit)
}

// saveFileLog keeps InspIRCd's log file before the directory goes away.
func (s *Server) saveFileLog() {
	if s.spec.Kind != InspIRCd {
		return
	}
	s.fileLogMu.Lock()
	defer s.fileLogMu.Unlock()
	s.fileLog = readTail(filepath.Join(s.dir, inspircdLogFile), logLimit)
	if s.fileLog == "" {
		s.fileLog = "(empty)\n"
	}
}

// readTail returns the last max bytes of a file, or "" if it can't be read.
func readTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if off := fi.Size() - max; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// portTaken reports whether port of 127.0.0.1 cannot be listened on now.
func portTaken(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return true
	}
	_ = l.Close()
	return false
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 (free when
// checked: another process may take one before the server binds it).
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

package ircd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// AthemeName is the executable of atheme-services, the services daemon
// that gives an InspIRCd network its accounts and SASL (Debian package
// atheme-services).
const AthemeName = "atheme-services"

// The services' server on an InspIRCd network with accounts.
const (
	servicesName = "services.meshbot.test"
	servicesSID  = "0SV" // InspIRCd's is 0MB unless linked
)

// servicesData fills testdata/atheme.conf and the services section of
// testdata/atheme-inspircd.conf.
type servicesData struct {
	Name     string // the services' server name
	SID      string // the services' server id
	Uplink   string // InspIRCd's server name
	LinkPort int    // InspIRCd's server-to-server port
	Password string // the link password
}

// services is an atheme-services process linked to the InspIRCd server
// that owns it: started once InspIRCd listens for servers, stopped before
// it. Its methods are called with the Server's mu held, or while the
// Server is owned exclusively (start-up).
type services struct {
	binary      string
	dir         string // <server dir>/atheme: atheme.conf, atheme.log, atheme.pid, data/services.db
	log         *logBuffer
	output      io.Writer
	stopTimeout time.Duration
	proc        *process
}

// athemeBinary finds atheme-services at path or, when path is empty, in
// PATH, then in /usr/bin and /usr/sbin. The error wraps ErrNotInstalled.
func athemeBinary(path string) (string, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("%s executable %q: %w (%v)", AthemeName, path, ErrNotInstalled, err)
		}
		return filepath.Abs(p)
	}
	if p, err := exec.LookPath(AthemeName); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin"} {
		p := filepath.Join(dir, AthemeName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/bin or /usr/sbin: %w (InspIRCd's accounts come from services: install the Debian package %s)",
		AthemeName, ErrNotInstalled, AthemeName)
}

// newServices prepares atheme's directory in the server's, with the
// accounts seeded into its database.
func newServices(serverDir string, accounts []Account, opts Options) (*services, error) {
	bin, err := athemeBinary(opts.ServicesPath)
	if err != nil {
		return nil, err
	}
	sv := &services{
		binary:      bin,
		dir:         filepath.Join(serverDir, "atheme"),
		log:         newLogBuffer(logLimit),
		output:      opts.Output,
		stopTimeout: opts.StopTimeout,
	}
	if err := os.MkdirAll(filepath.Join(sv.dir, "data"), 0o700); err != nil {
		return nil, err
	}
	db := athemeSeed(accounts, time.Now())
	if err := os.WriteFile(filepath.Join(sv.dir, "data", "services.db"), db, 0o600); err != nil {
		return nil, err
	}
	return sv, nil
}

// athemeSeed is a services.db (atheme's opensex format, schema 12) that
// holds the accounts: passwords in plain text (atheme hashes each on its
// first use), certificate fingerprints as MCFP lines. atheme adds the
// nick entries (MN) itself when it loads the file.
func athemeSeed(accounts []Account, now time.Time) []byte {
	var b strings.Builder
	b.WriteString("DBV 12\n")
	ts := now.Unix()
	for i, a := range accounts {
		// An entity id: 9 characters, unique per account.
		fmt.Fprintf(&b, "MU %s %s %s %s@meshbot.test %d %d +s default\n",
			fmt.Sprintf("AAA%06d", i+1), a.Name, a.Password, strings.ToLower(a.Name), ts, ts)
		if a.CertFP != "" {
			fmt.Fprintf(&b, "MCFP %s %s\n", a.Name, a.CertFP)
		}
	}
	return []byte(b.String())
}

// running reports whether the daemon is up.
func (sv *services) running() bool { return sv.proc != nil && !sv.proc.exited() }

// start launches atheme once InspIRCd (ircd) listens on the link port,
// unless it is running already (after a restart of InspIRCd it links
// again by itself within a second). It does not wait for the link.
func (sv *services) start(ctx context.Context, ircd *process, clientPort int, d servicesData) error {
	if sv.running() {
		return nil
	}
	if err := waitListening(ctx, ircd, clientPort, d.LinkPort); err != nil {
		return fmt.Errorf("InspIRCd's server port %d: %w", d.LinkPort, err)
	}
	conf, err := execTemplate(athemeConfig, d)
	if err != nil {
		return err
	}
	confPath := filepath.Join(sv.dir, "atheme.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return err
	}
	// -n: in the foreground, so that the harness owns the process (its
	// group, Pdeathsig); it logs to stdout and to -l.
	args := []string{"-n", "-c", confPath, "-D", filepath.Join(sv.dir, "data"),
		"-l", filepath.Join(sv.dir, "atheme.log"), "-p", filepath.Join(sv.dir, "atheme.pid")}
	cmd := exec.Command(sv.binary, args...)
	cmd.Dir = sv.dir
	var out io.Writer = sv.log
	if sv.output != nil {
		out = io.MultiWriter(sv.log, sv.output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 2 * time.Second
	fmt.Fprintf(sv.log, "--- meshbot/ircd: %s %s ---\n", sv.binary, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", sv.binary, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	sv.proc = p
	return nil
}

// waitListening polls until p listens on port (on systems where that
// cannot be seen, it returns at once). It fails when p exits, and with
// ErrPortInUse when p listens on its client port (bound first) but, a
// moment later, still not on port: another process had it.
func waitListening(ctx context.Context, p *process, clientPort, port int) error {
	var clientSince time.Time
	for {
		if p.exited() {
			return fmt.Errorf("%w (%v)", errExited, p.err)
		}
		if ours, err := listensOn(p.cmd.Process.Pid, port); err != nil || ours {
			return nil
		}
		if clientSince.IsZero() {
			if ours, _ := listensOn(p.cmd.Process.Pid, clientPort); ours {
				clientSince = time.Now()
			}
		} else if time.Since(clientSince) > 500*time.Millisecond {
			return fmt.Errorf("%w: the server listens for clients but not on port %d", ErrPortInUse, port)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not listening: %w", ctx.Err())
		case <-p.done:
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stop ends atheme (SIGTERM: it saves its database and quits; SIGKILL
// after the stop timeout) and waits for it. The error reports a daemon
// that had exited by itself.
func (sv *services) stop() error {
	p := sv.proc
	if p == nil {
		return nil
	}
	var err error
	if p.exited() && !p.expected.Load() {
		err = fmt.Errorf("%s exited unexpectedly (%v)\n--- %s log (tail) ---\n%s", AthemeName, p.err, AthemeName, tail(sv.log.String(), logTailLines))
	}
	if p.exited() {
		return err
	}
	p.expected.Store(true)
	_ = signalProcess(p.cmd, sigterm)
	resume(p.cmd)
	select {
	case <-p.done:
		return err
	case <-time.After(sv.stopTimeout):
	}
	fmt.Fprintf(sv.log, "\n--- meshbot/ircd: no exit %v after SIGTERM; sending SIGKILL ---\n", sv.stopTimeout)
	_ = signalProcess(p.cmd, sigkill)
	select {
	case <-p.done:
		return err
	case <-time.After(10 * time.Second):
		return errors.Join(err, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", AthemeName, p.cmd.Process.Pid))
	}
}

// pid is the daemon's process id, 0 before it started.
func (sv *services) pid() int {
	if sv.proc == nil {
		return 0
	}
	return sv.proc.cmd.Process.Pid
}

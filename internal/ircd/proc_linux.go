package ircd

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

var (
	sigterm os.Signal = syscall.SIGTERM
	sigkill os.Signal = syscall.SIGKILL
)

// sysProcAttr puts the server in its own process group (so signals reach
// anything it spawns) and has the kernel SIGKILL it if our process dies
// without stopping it (Pdeathsig; it fires when the OS thread that started
// the server exits, which the Go runtime does only for goroutines that
// locked their thread and returned: not the case here).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalProcess signals the server's process group.
func signalProcess(cmd *exec.Cmd, sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return cmd.Process.Signal(sig)
	}
	return syscall.Kill(-cmd.Process.Pid, s)
}

// resume continues a process a test may have frozen with SIGSTOP.
func resume(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT) }

// listensOn reports whether process pid holds a listening TCP socket on
// port (any local address), from /proc: the server the harness started is
// the one clients reach, not another process that had the port.
func listensOn(pid, port int) (bool, error) {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return false, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		if link, err := os.Readlink(dir + "/" + fd.Name()); err == nil && inodes[link] {
			return true, nil
		}
	}
	return false, nil
}

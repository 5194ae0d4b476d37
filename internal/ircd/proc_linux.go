package ircd

import (
	"os"
	"os/exec"
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

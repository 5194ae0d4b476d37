//go:build !linux

package ircd

import (
	"os"
	"os/exec"
	"syscall"
)

var (
	sigterm os.Signal = syscall.SIGTERM
	sigkill os.Signal = os.Kill
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalProcess(cmd *exec.Cmd, sig os.Signal) error { return cmd.Process.Signal(sig) }

func resume(*exec.Cmd) {}

// listensOn cannot tell on this system: it trusts the server.
func listensOn(int, int) (bool, error) { return true, nil }

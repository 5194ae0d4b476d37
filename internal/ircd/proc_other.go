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

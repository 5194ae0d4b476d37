//go:build unix && !linux

package proctest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// stopState cannot tell without /proc.
func stopState(int) (stopped, ok bool) { return false, false }

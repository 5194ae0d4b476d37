package proctest

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// sysProcAttr puts the process in its own process group (a Ctrl-C in the
// terminal reaches the test, not its children) and has the kernel SIGKILL
// it if the test binary dies without stopping it (Pdeathsig; it fires when
// the OS thread that started the process exits, which the Go runtime does
// only for goroutines that locked their thread and returned).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// stopState reports whether process pid is stopped by a signal, and false
// with ok false when that cannot be told.
func stopState(pid int) (stopped, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false, false
	}
	// pid (comm) state ...: comm may hold anything, so look after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false, false
	}
	return b[i+2] == 'T', true
}

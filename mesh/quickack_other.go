//go:build !linux

package mesh

import "syscall"

// quickAck is Linux-only; elsewhere delayed ACKs stay as the kernel has them.
func quickAck(syscall.RawConn) {}

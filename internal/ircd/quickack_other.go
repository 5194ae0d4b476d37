//go:build !linux

package ircd

import "net"

// quickAck is Linux-only; elsewhere delayed ACKs stay as the kernel has them.
func quickAck(net.Conn) {}

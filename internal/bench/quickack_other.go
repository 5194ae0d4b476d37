//go:build !linux

package bench

import "net"

// withQuickAck returns c: delayed ACKs are tuned on Linux only.
func withQuickAck(c net.Conn) net.Conn { return c }

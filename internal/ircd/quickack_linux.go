package ircd

import (
	"net"
	"syscall"
)

// quickAck acknowledges data received on c at once instead of delaying
// the ACK (Linux clears the flag after use: call it after every read).
// InspIRCd sets no TCP_NODELAY: a server holds its next small segment
// until the last one is acknowledged, so a link whose receiver delays ACKs
// (40 ms) makes lines wait that long; this is what `ip route ... quickack
// 1` does for a route between servers.
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}

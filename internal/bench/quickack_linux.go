package bench

import (
	"net"
	"syscall"
)

// quickAckConn acknowledges what it reads at once instead of delaying the
// ACK, as a node does (mesh/quickack_linux.go): servers without
// TCP_NODELAY (InspIRCd, ngIRCd) hold a second small segment until the
// first is acknowledged, and a delayed ACK would add 40 ms to a round
// trip. Linux clears the flag after use, so it is set after every read.
type quickAckConn struct {
	net.Conn
	rc syscall.RawConn
}

// withQuickAck wraps a TCP connection; other connections are returned as
// they are.
func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{Conn: c, rc: rc}
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	_ = c.rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
	return n, err
}

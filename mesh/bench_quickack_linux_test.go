package mesh_test

import (
	"io"
	"net"
	"syscall"
)

// quickAckReader reads conn, asking the kernel after every read to
// acknowledge at once (TCP_QUICKACK, which Linux clears after use).
func quickAckReader(conn net.Conn) io.Reader {
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return conn
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return conn
	}
	return &quickAcker{conn: conn, rc: rc}
}

type quickAcker struct {
	conn net.Conn
	rc   syscall.RawConn
}

func (q *quickAcker) Read(p []byte) (int, error) {
	n, err := q.conn.Read(p)
	if n > 0 {
		_ = q.rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
	return n, err
}

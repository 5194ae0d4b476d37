package mesh

import "syscall"

// quickAck asks the kernel to acknowledge received data at once instead of
// delaying the ACK. IRC servers that do not set TCP_NODELAY (InspIRCd,
// ngIRCd) hold a second small packet until the first is acknowledged; with
// delayed ACKs every request/response round trip would wait ~40 ms. Linux
// clears the flag after use, so it is set again after every read.
func quickAck(rc syscall.RawConn) {
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}

//go:build !linux

package mesh_test

import (
	"io"
	"net"
)

// quickAckReader is conn itself where TCP_QUICKACK does not exist.
func quickAckReader(conn net.Conn) io.Reader { return conn }

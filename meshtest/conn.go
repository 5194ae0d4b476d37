package meshtest

import (
	"io"
	"net"
	"sync"
	"time"
)

// The connection between the node under test and the replay server: two
// in-memory byte queues. A write never blocks (it appends), and a read
// waits on a channel made inside the test's bubble, so that a goroutine
// waiting for bytes is durably blocked (testing/synctest) and the virtual
// clock can move on. net.Pipe would not do: its writes wait for the
// reader, under a mutex, and a goroutine waiting on a mutex is not
// durably blocked.

// queue is one direction of a connection.
type queue struct {
	mu     sync.Mutex // held only to touch buf and closed, never while waiting
	buf    []byte     // written, not read yet: buf[off:]
	off    int
	closed bool
	ready  chan struct{} // holds a token while buf has bytes or closed is set
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) write(p []byte) (int, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, net.ErrClosed
	}
	q.buf = append(q.buf, p...)
	q.mu.Unlock()
	q.signal()
	return len(p), nil
}

func (q *queue) read(p []byte) (int, error) {
	for {
		q.mu.Lock()
		if q.off < len(q.buf) {
			k := copy(p, q.buf[q.off:])
			q.off += k
			if q.off == len(q.buf) {
				q.buf, q.off = q.buf[:0], 0 // all read: the next write reuses it
			} else {
				q.signal() // more for the next read
			}
			q.mu.Unlock()
			return k, nil
		}
		if q.closed {
			q.mu.Unlock()
			q.signal()
			return 0, io.EOF
		}
		q.mu.Unlock()
		<-q.ready
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// memConn is one end of an in-memory connection.
type memConn struct {
	in, out *queue
	once    sync.Once
}

// memPipe returns the two ends of a connection.
func memPipe() (client, server *memConn) {
	a, b := newQueue(), newQueue()
	return &memConn{in: a, out: b}, &memConn{in: b, out: a}
}

func (c *memConn) Read(p []byte) (int, error)  { return c.in.read(p) }
func (c *memConn) Write(p []byte) (int, error) { return c.out.write(p) }

// Close ends both directions: the peer reads EOF once it has read what
// was written, and writes fail.
func (c *memConn) Close() error {
	c.once.Do(func() { c.out.close(); c.in.close() })
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr { return memAddr{} }

// Deadlines are not kept: the replay server always reads and answers, and
// a write never blocks.
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "meshtest" }
func (memAddr) String() string  { return "replay" }

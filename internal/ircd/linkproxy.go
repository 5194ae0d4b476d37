package ircd

import (
	"errors"
	"io"
	"net"
	"sync"
)

// linkProxy forwards one server-to-server link of a network over loopback
// so that the harness can cut it like a failing network: Cut closes every
// connection through it (both servers see the link drop at once: a
// netsplit) and refuses new ones until Heal. Its methods are safe for
// concurrent use.
type linkProxy struct {
	l        net.Listener
	target   func() string // the address to forward to, read at each accept
	quickAck bool          // acknowledge what a server sends at once (no delayed ACKs)

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{} // both ends of every forwarded connection
	wg    sync.WaitGroup
}

// newLinkProxy listens on a free loopback port and forwards to target().
// With quick, it acknowledges the data of both servers at once, as a
// route with quickack set between them would.
func newLinkProxy(target func() string, quick bool) (*linkProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &linkProxy{l: l, target: target, quickAck: quick, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// port is the port the proxy listens on.
func (p *linkProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *linkProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target())
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// track registers a forwarded pair; it closes them and reports false when
// the link was cut meanwhile.
func (p *linkProxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		_ = a.Close()
		_ = b.Close()
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

// pipe copies src to dst until either ends, then closes both: a link
// broken on one side is broken on the other.
func (p *linkProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	if p.quickAck {
		buf := make([]byte, 64<<10)
		for {
			quickAck(src)
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
	} else {
		_, _ = io.Copy(dst, src)
	}
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// setCut cuts (true) or heals (false) the link. Cutting closes every
// connection through it.
func (p *linkProxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	var conns []net.Conn
	if cut {
		for c := range p.conns {
			conns = append(conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, like a failing network
		}
		_ = c.Close()
	}
}

// isCut reports whether the link is cut.
func (p *linkProxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// close stops the proxy and waits for its goroutines.
func (p *linkProxy) close() error {
	err := p.l.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	p.setCut(true)
	p.wg.Wait()
	return err
}

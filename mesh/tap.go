package mesh

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
)

// The tap sits between girc and the socket. girc keeps what it does well —
// registration, CAP negotiation, SASL, answering the server's PINGs, nick
// collisions — while the node reads every line itself, in server order, on
// the one goroutine that reads the socket, and writes its mesh lines itself,
// a whole window per write. girc never sees the mesh traffic (PRIVMSGs and
// the node's window PONGs): that keeps its per-event costs (a goroutine per
// handler, several copies of each event) off the hot path.

// maxLine bounds one received line (tags 8191 + message 512, with room); a
// longer one is dropped and counted rather than buffered without end.
const maxLine = 16 << 10

// line is one received IRC line.
type line struct {
	cmd    string
	params []string
	tags   map[string]string
	nick   string // source nick ("" for server lines)
	user   string
	host   string
}

func (l *line) last() string {
	if len(l.params) == 0 {
		return ""
	}
	return l.params[len(l.params)-1]
}

func (l *line) param(i int) string {
	if i < len(l.params) {
		return l.params[i]
	}
	return ""
}

// tapDialer dials for girc and wraps the connection in a tap.
type tapDialer struct {
	n *Node
}

func (d tapDialer) Dial(network, addr string) (net.Conn, error) {
	addr = d.n.dialAddr(addr) // the current server of Config.Servers (failover.go)
	ctx, cancel := context.WithTimeout(context.Background(), d.n.cfg.ConnectTimeout)
	defer cancel()
	var raw net.Conn
	var err error
	if dial := d.n.cfg.Dial; dial != nil {
		raw, err = dial(ctx, network, addr)
	} else {
		raw, err = (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	var rc syscall.RawConn
	if tcp, ok := raw.(*net.TCPConn); ok {
		rc, _ = tcp.SyscallConn()
	}
	conn := raw
	if d.n.cfg.TLS != nil {
		cfg := d.n.cfg.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		conn = tc
	}
	t := &tapConn{Conn: conn, rc: rc, n: d.n, buf: make([]byte, 0, 64<<10)}
	t.diag.start = time.Now()
	d.n.setTap(t)
	return t, nil
}

// tapConn is the node's view of one connection.
type tapConn struct {
	net.Conn
	rc syscall.RawConn // of the TCP socket, for TCP_QUICKACK; nil if not TCP
	n  *Node

	// Read side: owned by the goroutine girc reads with.
	buf  []byte            // bytes read, not yet split into lines
	out  []byte            // lines for girc
	tags map[string]string // the tags of the line being handled, reused (onRaw)
	err  error             // read error to return once out is drained

	// retired: the connection ended and the node moved on (retireTap); its
	// lines are no longer handled. Guarded by Node.lines.
	retired bool

	wmu sync.Mutex // one writer at a time: girc's send loop and the node's
	// opened: a line that opens a registration was written (stale.go);
	// guarded by wmu.
	opened bool

	diag connDiag // what the server showed, to explain how it ended (connerr.go)
}

// Read hands girc the lines it needs, after the node has seen every line.
func (c *tapConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		c.fill()
	}
	k := copy(p, c.out)
	c.out = c.out[k:]
	return k, nil
}

func (c *tapConn) fill() {
	if len(c.buf) == cap(c.buf) {
		c.buf = append(c.buf, 0)[:len(c.buf)] // grow
	}
	k, err := c.Conn.Read(c.buf[len(c.buf):cap(c.buf)])
	c.buf = c.buf[:len(c.buf)+k]
	if c.rc != nil && k > 0 {
		quickAck(c.rc)
	}
	// The lines read are handled under Node.lines, and only while the
	// connection is current: girc can give up a connection while the
	// goroutine reading it is still inside this loop (its read loop returns
	// on a cancel without waiting for the read it started), and the node's
	// next connection must not have its lines handled at the same time, nor
	// after lines of a connection that ended.
	c.n.lines.Lock()
	defer c.n.lines.Unlock()
	if c.retired {
		c.buf, c.out = c.buf[:0], nil
		c.err = net.ErrClosed
		return
	}
	rest := c.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		raw := rest[:i+1]
		rest = rest[i+1:]
		if !c.diag.saw(bytes.TrimRight(raw, "\r\n"), c.n.cfg.wantsSASL()) {
			err = ErrAuthFailed // registered without the SASL asked for: end it here
			break
		}
		if c.tags == nil {
			c.tags = make(map[string]string, 8)
		}
		if c.n.onRaw(bytes.TrimRight(raw, "\r\n"), c.tags) {
			c.out = append(c.out, raw...)
		}
		if len(c.tags) > 16 {
			c.tags = nil // a line with many tags: clearing what it grew would cost every line after it
		}
	}
	if len(rest) > maxLine {
		c.n.stats.rejected.Add(1)
		c.n.countReject("too-large")
		rest = rest[:0]
	}
	c.buf = append(c.buf[:0], rest...)
	if err != nil {
		c.err = err
	}
}

// retireTap ends the handling of the lines of the last connection: once it
// returns, no line of it reaches the node, and none is being handled. It
// waits at most for the lines its reader is handling (those it read before
// the connection ended), never for the network. connLoop calls it as soon as
// a connection attempt ends, before anything learns that it did.
func (n *Node) retireTap() {
	n.mu.Lock()
	t := n.tap
	n.mu.Unlock()
	if t == nil {
		return
	}
	n.lines.Lock()
	t.retired = true
	n.lines.Unlock()
}

// Write is used by girc's send loop and by the node's writer. A write the
// server does not take within KeepAliveTimeout fails: a server that stopped
// reading is as dead as one that stopped talking.
func (c *tapConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := p
	if !c.opened {
		var stale int
		out, stale, c.opened = skipStale(p)
		if stale > 0 {
			c.n.stats.staleLines.Add(uint64(stale))
		}
		if len(out) == 0 {
			return len(p), nil
		}
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.n.cfg.KeepAliveTimeout))
	if k, err := c.Conn.Write(out); err != nil {
		return len(p) - len(out) + k, err
	}
	return len(p), nil
}

// onRaw parses one line and hands it to the node; it reports whether girc
// should see it too. tags is the reader's map, cleared and filled with the
// line's tags: what keeps a line's tags past its handling copies them.
func (n *Node) onRaw(raw []byte, tags map[string]string) bool {
	if len(raw) == 0 {
		return false
	}
	if n.cfg.RawLog != nil {
		n.rawMu.Lock()
		_, _ = n.cfg.RawLog.Write(append(raw[:len(raw):len(raw)], '\n'))
		n.rawMu.Unlock()
	}
	msg, err := parseLineInto(string(raw), tags) // tags.go: one map of tags, not three
	if err != nil {
		n.stats.rejected.Add(1)
		n.countReject("malformed")
		return false
	}
	l := &line{cmd: strings.ToUpper(msg.Command), params: msg.Params, tags: tags}
	if msg.Source != "" {
		if nuh, err := ircmsg.ParseNUH(msg.Source); err == nil {
			l.nick, l.user, l.host = nuh.Name, nuh.User, nuh.Host
		} else {
			l.nick = msg.Source
		}
	}
	return n.onLine(l)
}

package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// rawClient is a bare IRC client, the reference meshbot is measured
// against: registered by hand with no capabilities (so no tags), writing
// whole lines through one buffered writer, reading on one goroutine that
// looks at a line only as far as it needs (source nick, command, first
// parameter, text) without allocating. It answers the server's PINGs.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
	nick string

	wmu sync.Mutex
	w   *bufio.Writer

	// Set before run; called on the reader goroutine, which they must not
	// block. The slices are valid only during the call.
	onPrivmsg func(src, text []byte)
	onPong    func(token []byte)

	dead chan struct{} // closed when the reader stops
	err  error         // why it stopped; set before dead is closed
}

// ErrServer is returned when the server refuses or drops a raw client.
var ErrServer = errors.New("bench: the server closed a raw client's connection")

// dialRaw connects to addr (over TLS when tlsCfg is set) and registers a
// client whose nick starts with prefix. ctx bounds the dial and the
// registration.
func dialRaw(ctx context.Context, addr, prefix string, tlsCfg *tls.Config) (*rawClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: raw client: %w", err)
	}
	conn = withQuickAck(conn)
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("bench: raw client: TLS: %w", err)
		}
		conn = tc
	}
	c := &rawClient{
		conn: conn,
		r:    bufio.NewReaderSize(conn, 64<<10),
		w:    bufio.NewWriterSize(conn, 64<<10),
		nick: rawNick(prefix),
		dead: make(chan struct{}),
	}
	if err := c.register(ctx, prefix); err != nil {
		conn.Close()
		return nil, fmt.Errorf("bench: raw client %s: %w", c.nick, err)
	}
	return c, nil
}

// rawNick is prefix and 6 random hex digits: short enough for a NICKLEN
// of 9 with a 3-letter prefix.
func rawNick(prefix string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// deadlineOf is ctx's deadline, or now plus IOTimeout.
func deadlineOf(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(IOTimeout)
}

func (c *rawClient) register(ctx context.Context, prefix string) error {
	_ = c.conn.SetDeadline(deadlineOf(ctx))
	defer c.conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Now()) })
	defer stop()
	if err := c.send("NICK "+c.nick, "USER bench 0 * :meshbot bench"); err != nil {
		return err
	}
	return c.readUntil(func(cmd, rest []byte) bool {
		switch string(cmd) {
		case "001":
			first, _ := splitParam(rest)
			c.nick = string(first)
			return true
		case "432", "433", "436": // erroneous nick, in use, collision
			c.nick = rawNick(prefix)
			_ = c.send("NICK " + c.nick)
		}
		return false
	})
}

// join joins channel and returns once the server has sent the end of its
// NAMES. Call it before run.
func (c *rawClient) join(ctx context.Context, channel string) error {
	_ = c.conn.SetDeadline(deadlineOf(ctx))
	defer c.conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Now()) })
	defer stop()
	if err := c.send("JOIN " + channel); err != nil {
		return err
	}
	return c.readUntil(func(cmd, rest []byte) bool {
		switch string(cmd) {
		case "366": // RPL_ENDOFNAMES: me #channel :End of /NAMES list.
			_, after := splitParam(rest)
			ch, _ := splitParam(after)
			return strings.EqualFold(string(ch), channel)
		}
		return false
	})
}

// readUntil reads lines, answering PINGs, until ok returns true.
func (c *rawClient) readUntil(ok func(cmd, rest []byte) bool) error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		_, cmd, rest := splitLine(line)
		switch string(cmd) {
		case "PING":
			if err := c.send("PONG " + string(rest)); err != nil {
				return err
			}
		case "ERROR":
			return fmt.Errorf("%w: %s", ErrServer, line)
		case "465", "464": // banned, password required
			return fmt.Errorf("%w: %s", ErrServer, line)
		default:
			if ok(cmd, rest) {
				return nil
			}
		}
	}
}

func (c *rawClient) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// run reads until the connection ends, handing PRIVMSGs and PONGs to the
// hooks. Start it once, after registering and joining.
func (c *rawClient) run() {
	defer close(c.dead)
	for {
		line, err := c.readLine()
		if err != nil {
			c.err = err
			return
		}
		nick, cmd, rest := splitLine(line)
		switch string(cmd) {
		case "PRIVMSG":
			if c.onPrivmsg != nil {
				_, text := splitParam(rest)
				c.onPrivmsg(nick, bytes.TrimPrefix(text, []byte(":")))
			}
		case "PONG":
			if c.onPong != nil {
				c.onPong(lastParam(rest))
			}
		case "PING":
			if err := c.send("PONG " + string(rest)); err != nil {
				c.err = err
				return
			}
		case "ERROR":
			c.err = fmt.Errorf("%w: %s", ErrServer, line)
			return
		}
	}
}

// send writes lines (without CRLF) and flushes.
func (c *rawClient) send(lines ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, l := range lines {
		c.w.WriteString(l)
		c.w.WriteString("\r\n")
	}
	return c.w.Flush()
}

// sendWindow writes CRLF-terminated lines and a PING with token, then
// flushes: one flow-control window.
func (c *rawClient) sendWindow(lines []byte, token string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.Write(lines)
	c.w.WriteString("PING :")
	c.w.WriteString(token)
	c.w.WriteString("\r\n")
	return c.w.Flush()
}

// close quits and closes the connection, and waits (briefly) for the
// reader when it runs.
func (c *rawClient) close(running bool) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.send("QUIT :bench done")
	_ = c.conn.Close()
	if running {
		select {
		case <-c.dead:
		case <-time.After(5 * time.Second):
		}
	}
}

// splitLine splits a received line into the source's nick (nil without a
// prefix), the command and the rest. Tags are skipped.
func splitLine(line []byte) (nick, cmd, rest []byte) {
	if len(line) > 0 && line[0] == '@' {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return nil, nil, nil
		}
		line = line[i+1:]
	}
	if len(line) > 0 && line[0] == ':' {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return nil, nil, nil
		}
		nick = line[1:i]
		if j := bytes.IndexByte(nick, '!'); j >= 0 {
			nick = nick[:j]
		}
		line = line[i+1:]
	}
	cmd, rest = splitParam(line)
	return nick, cmd, rest
}

// splitParam splits off the first space-separated word.
func splitParam(s []byte) (first, after []byte) {
	first, after, _ = bytes.Cut(s, []byte(" "))
	return first, after
}

// lastParam returns the last parameter of rest.
func lastParam(rest []byte) []byte {
	if i := bytes.Index(rest, []byte(" :")); i >= 0 {
		return rest[i+2:]
	}
	if len(rest) > 0 && rest[0] == ':' {
		return rest[1:]
	}
	if i := bytes.LastIndexByte(rest, ' '); i >= 0 {
		return rest[i+1:]
	}
	return rest
}

// connectRaw registers one raw client per prefix in parallel (InspIRCd
// completes a registration about a second after USER). On error it closes
// those that connected.
func connectRaw(ctx context.Context, env Env, prefixes ...string) ([]*rawClient, error) {
	cctx, cancel := context.WithTimeout(ctx, IOTimeout)
	defer cancel()
	out := make([]*rawClient, len(prefixes))
	errs := make([]error, len(prefixes))
	var wg sync.WaitGroup
	for i, p := range prefixes {
		wg.Go(func() { out[i], errs[i] = dialRaw(cctx, env.Server, p, env.TLS) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeRaw(out, false)
		return nil, err
	}
	return out, nil
}

func closeRaw(cs []*rawClient, running bool) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c != nil {
			wg.Go(func() { c.close(running) })
		}
	}
	wg.Wait()
}

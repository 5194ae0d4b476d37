package mesh_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/mesh"
)

// Helpers of the benchmarks in bench_test.go: a bare IRC client (the
// physical limit meshbot is measured against) and a counter that notes when
// a number of deliveries has been reached.

// benchRaw is a bare IRC client: registered by hand with no capabilities
// (so no tags), writing whole lines through one buffered writer, reading on
// one goroutine that parses a line only as far as it needs (source nick,
// command, target, text) without allocating. It answers the server's PINGs.
type benchRaw struct {
	conn net.Conn
	r    *bufio.Reader
	nick string
	caps map[string]bool // capabilities the server acknowledged

	wmu sync.Mutex
	w   *bufio.Writer

	// Set before run; called on the reader goroutine, which they must not
	// block. The slices are only valid during the call.
	onPrivmsg func(src, target, text []byte)
	onPong    func(token []byte)

	dead chan struct{} // closed when the reader stops
	err  error         // why it stopped; set before dead is closed
}

// benchIOTimeout bounds registration, joins and every wait of a benchmark.
const benchIOTimeout = 30 * time.Second

// benchDialRaw connects and registers a client, requesting those of caps
// the server offers (none when caps is empty).
func benchDialRaw(ctx context.Context, addr, prefix string, caps ...string) (*benchRaw, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &benchRaw{
		conn: conn,
		r:    bufio.NewReaderSize(conn, 64<<10),
		w:    bufio.NewWriterSize(conn, 64<<10),
		nick: benchNick(prefix),
		caps: map[string]bool{},
		dead: make(chan struct{}),
	}
	if err := c.register(ctx, prefix, caps); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raw client %s: %w", c.nick, err)
	}
	return c, nil
}

func benchNick(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (c *benchRaw) register(ctx context.Context, prefix string, caps []string) error {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(benchIOTimeout)
	}
	_ = c.conn.SetDeadline(dl)
	defer c.conn.SetDeadline(time.Time{})
	var lines []string
	if len(caps) > 0 {
		lines = append(lines, "CAP LS 302")
	}
	if err := c.send(append(lines, "NICK "+c.nick, "USER bench 0 * :meshbot benchmark")...); err != nil {
		return err
	}
	var offered []string
	return c.readUntil(func(nick, cmd, rest []byte) bool {
		switch string(cmd) {
		case "001":
			target, _ := benchParams(rest)
			c.nick = string(target)
			return true
		case "432", "433", "436":
			c.nick = benchNick(prefix)
			_ = c.send("NICK " + c.nick)
		case "CAP":
			// CAP * LS [*] :caps, CAP * ACK :caps, CAP * NAK :caps
			msg, err := ircmsg.ParseLine("CAP " + string(rest))
			if err != nil || len(msg.Params) < 3 {
				return false
			}
			switch msg.Params[1] {
			case "LS":
				for _, cp := range strings.Fields(msg.Params[len(msg.Params)-1]) {
					name, _, _ := strings.Cut(cp, "=")
					offered = append(offered, name)
				}
				if len(msg.Params) > 3 && msg.Params[2] == "*" {
					return false // more to come
				}
				var want []string
				for _, cp := range caps {
					if slices.Contains(offered, cp) {
						want = append(want, cp)
					}
				}
				if len(want) == 0 {
					_ = c.send("CAP END")
				} else {
					_ = c.send("CAP REQ :" + strings.Join(want, " "))
				}
			case "ACK":
				for _, cp := range strings.Fields(msg.Params[2]) {
					c.caps[cp] = true
				}
				_ = c.send("CAP END")
			case "NAK":
				_ = c.send("CAP END")
			}
		}
		return false
	})
}

// join joins channel and returns once the server has sent the end of NAMES
// for it. Call it before run.
func (c *benchRaw) join(ctx context.Context, channel string) error {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(benchIOTimeout)
	}
	_ = c.conn.SetDeadline(dl)
	defer c.conn.SetDeadline(time.Time{})
	if err := c.send("JOIN " + channel); err != nil {
		return err
	}
	return c.readUntil(func(_, cmd, rest []byte) bool {
		if string(cmd) != "366" { // RPL_ENDOFNAMES: me #channel :End
			return false
		}
		_, after := benchParams(rest)
		ch, _, _ := bytes.Cut(after, []byte(" "))
		return strings.EqualFold(string(ch), channel)
	})
}

// readUntil reads lines (answering PING) until ok returns true.
func (c *benchRaw) readUntil(ok func(nick, cmd, rest []byte) bool) error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		nick, cmd, rest := benchSplit(line)
		switch string(cmd) {
		case "PING":
			if err := c.send("PONG " + string(rest)); err != nil {
				return err
			}
		case "ERROR":
			return fmt.Errorf("server closed the connection: %s", line)
		default:
			if ok(nick, cmd, rest) {
				return nil
			}
		}
	}
}

func (c *benchRaw) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// run reads until the connection ends, dispatching PRIVMSG and PONG to the
// hooks. Start it once, after registering and joining.
func (c *benchRaw) run() {
	defer close(c.dead)
	for {
		line, err := c.readLine()
		if err != nil {
			c.err = err
			return
		}
		nick, cmd, rest := benchSplit(line)
		switch string(cmd) {
		case "PRIVMSG":
			if c.onPrivmsg != nil {
				target, text := benchParams(rest)
				c.onPrivmsg(nick, target, bytes.TrimPrefix(text, []byte(":")))
			}
		case "PONG":
			if c.onPong != nil {
				c.onPong(benchLast(rest))
			}
		case "PING":
			if err := c.send("PONG " + string(rest)); err != nil {
				c.err = err
				return
			}
		case "ERROR":
			c.err = fmt.Errorf("server closed the connection: %s", line)
			return
		}
	}
}

// send writes lines (without CRLF) and flushes.
func (c *benchRaw) send(lines ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, l := range lines {
		c.w.WriteString(l)
		c.w.WriteString("\r\n")
	}
	return c.w.Flush()
}

// sendWindow writes ready CRLF-terminated lines and a PING with token, then
// flushes: one window.
func (c *benchRaw) sendWindow(lines []byte, token string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.Write(lines)
	c.w.WriteString("PING :")
	c.w.WriteString(token)
	c.w.WriteString("\r\n")
	return c.w.Flush()
}

func (c *benchRaw) close() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.send("QUIT :bye")
	_ = c.conn.Close()
	select {
	case <-c.dead:
	case <-time.After(5 * time.Second):
	}
}

// benchSplit splits a received line into the source's nick (nil when the
// line has no prefix), the command and the rest. Tags are skipped.
func benchSplit(line []byte) (nick, cmd, rest []byte) {
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
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		return nick, line, nil
	}
	return nick, line[:i], line[i+1:]
}

// benchParams splits off the first parameter.
func benchParams(rest []byte) (first, after []byte) {
	first, after, _ = bytes.Cut(rest, []byte(" "))
	return first, after
}

// benchLast returns the last parameter.
func benchLast(rest []byte) []byte {
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

// benchTally counts deliveries and notes when an expected count is reached.
type benchTally struct {
	mu   sync.Mutex
	n    int64
	want int64
	done chan struct{}
	at   time.Time // when want was reached
}

func (t *benchTally) add() {
	t.mu.Lock()
	t.n++
	if t.done != nil && t.n >= t.want {
		t.at = time.Now()
		close(t.done)
		t.done = nil
	}
	t.mu.Unlock()
}

// expect arms the tally for delta more deliveries and returns a channel
// closed when they have arrived.
func (t *benchTally) expect(delta int64) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.want = t.n + delta
	t.done = make(chan struct{})
	return t.done
}

func (t *benchTally) count() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

func (t *benchTally) reached() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.at
}

// benchWaitAll waits until every channel is closed, or timeout passes.
func benchWaitAll(timeout time.Duration, chans ...<-chan struct{}) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for i, ch := range chans {
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("receiver %d of %d not done after %s", i+1, len(chans), timeout)
		}
	}
	return nil
}

// benchConfig is a node config for the benchmarks on srv.
func benchConfig(srv *ircd.Server, service string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server = srv.Addr()
	cfg.Namespace = "bench"
	cfg.Service = service
	return cfg
}

// benchConnect registers raw clients (one per prefix; raw client i asks for
// caps[i] when given) and mesh nodes (one per config) in parallel (InspIRCd
// completes a registration about a second after USER) and closes them all
// when the benchmark ends.
func benchConnect(b *testing.B, srv *ircd.Server, rawPrefixes []string, cfgs []mesh.Config, caps ...[]string) ([]*benchRaw, []*mesh.Node) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchIOTimeout)
	defer cancel()
	raws := make([]*benchRaw, len(rawPrefixes))
	nodes := make([]*mesh.Node, len(cfgs))
	errs := make([]error, len(rawPrefixes)+len(cfgs))
	var wg sync.WaitGroup
	for i, p := range rawPrefixes {
		var want []string
		if i < len(caps) {
			want = caps[i]
		}
		wg.Go(func() { raws[i], errs[i] = benchDialRaw(ctx, srv.Addr(), p, want...) })
	}
	for i, cfg := range cfgs {
		wg.Go(func() { nodes[i], errs[len(rawPrefixes)+i] = mesh.Connect(ctx, cfg) })
	}
	wg.Wait()
	b.Cleanup(func() {
		for _, c := range raws {
			if c != nil {
				c.close()
			}
		}
		for _, n := range nodes {
			if n != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = n.Close(ctx)
				cancel()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return raws, nodes
}

// benchFanout is one bare publisher and its bare subscribers in a channel:
// the publisher writes windows of lines, each closed by a PING, with at most
// benchMaxWindows unconfirmed, the way meshbot's writer does.
type benchFanout struct {
	pub     *benchRaw
	subs    []*benchRaw
	tallies []*benchTally
	windows chan struct{} // a slot per unconfirmed window
	window  []byte        // benchWindow lines, CRLF-terminated
	seq     int
}

// newBenchFanout joins everyone to channel and starts the readers. Set the
// line to send with setLine.
func newBenchFanout(ctx context.Context, pub *benchRaw, subs []*benchRaw, channel string) (*benchFanout, error) {
	f := &benchFanout{pub: pub, subs: subs, windows: make(chan struct{}, benchMaxWindows)}
	for _, c := range append([]*benchRaw{pub}, subs...) {
		jctx, cancel := context.WithTimeout(ctx, benchIOTimeout)
		err := c.join(jctx, channel)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s joining %s: %w", c.nick, channel, err)
		}
	}
	for _, c := range subs {
		t := &benchTally{}
		f.tallies = append(f.tallies, t)
		c.onPrivmsg = func(_, _, _ []byte) { t.add() }
		go c.run()
	}
	pub.onPong = func(tok []byte) {
		if len(tok) > 0 && tok[0] == 'r' {
			select {
			case <-f.windows:
			default:
			}
		}
	}
	go pub.run()
	return f, nil
}

// setLine sets the line a window repeats (without CRLF).
func (f *benchFanout) setLine(line string) {
	var w bytes.Buffer
	for range benchWindow {
		w.WriteString(line)
		w.WriteString("\r\n")
	}
	f.window = w.Bytes()
}

// round sends lines lines and returns the time from the first write until
// every subscriber had them all.
func (f *benchFanout) round(lines int) (time.Duration, error) {
	var dones []<-chan struct{}
	for _, t := range f.tallies {
		dones = append(dones, t.expect(int64(lines)))
	}
	timer := time.NewTimer(benchRoundLimit)
	defer timer.Stop()
	start := time.Now()
	for sent := 0; sent < lines; sent += benchWindow {
		select {
		case f.windows <- struct{}{}:
		case <-f.pub.dead:
			return 0, fmt.Errorf("publisher: %v", f.pub.err)
		case <-timer.C:
			return 0, fmt.Errorf("publisher: window not confirmed after %s", benchRoundLimit)
		}
		f.seq++
		if err := f.pub.sendWindow(f.window, "r"+strconv.Itoa(f.seq)); err != nil {
			return 0, err
		}
	}
	if err := benchWaitAll(benchRoundLimit, dones...); err != nil {
		var counts []string
		for _, t := range f.tallies {
			counts = append(counts, strconv.FormatInt(t.count(), 10))
		}
		return 0, fmt.Errorf("%w (lines so far per subscriber: %s)", err, strings.Join(counts, ", "))
	}
	var last time.Time
	for _, t := range f.tallies {
		if at := t.reached(); at.After(last) {
			last = at
		}
	}
	// Let the last windows' PONGs come back before the next round.
	for range benchMaxWindows {
		select {
		case f.windows <- struct{}{}:
		case <-timer.C:
			return 0, fmt.Errorf("publisher: last windows not confirmed")
		}
	}
	for range benchMaxWindows {
		<-f.windows
	}
	return last.Sub(start), nil
}

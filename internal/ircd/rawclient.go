package ircd

import (
	"context"

	"github.com/ergochat/irc-go/ircmsg"
)

// RawClient is a bare IRC client — no capabilities, no library — for tests
// and benchmarks that measure meshbot against the server's own limit.
type RawClient struct{ rc *rawConn }

// DialRaw connects to addr and registers with a nick starting with
// nickPrefix.
func DialRaw(ctx context.Context, addr, nickPrefix string) (*RawClient, error) {
	rc, err := dialRaw(ctx, addr)
	if err != nil {
		return nil, err
	}
	if _, err := rc.register(ctx, nickPrefix, nil); err != nil {
		rc.Close()
		return nil, err
	}
	return &RawClient{rc: rc}, nil
}

// Nick returns the registered nick.
func (c *RawClient) Nick() string { return c.rc.nick }

// Send writes one line (without CRLF).
func (c *RawClient) Send(ctx context.Context, line string) error { return c.rc.send(ctx, line) }

// Read returns the next line, answering PINGs on the way.
func (c *RawClient) Read(ctx context.Context) (ircmsg.Message, error) { return c.rc.read(ctx) }

// Quit sends QUIT and closes the connection.
func (c *RawClient) Quit(ctx context.Context) { c.rc.quit(ctx) }

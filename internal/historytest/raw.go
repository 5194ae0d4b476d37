package historytest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshbot/meshbot/internal/ircd"
)

// Bare IRC clients for the benchmarks, which measure recorders and
// replays against the server's own line rate in the same run
// (docs/performance.md).

// BenchLine is the bytes of text of one raw line.
const BenchLine = 200

// RawBlast sends n PRIVMSG lines of BenchLine bytes to target from c, 100
// per PING, waiting for each PONG (flow control, as meshbot's writer does).
func RawBlast(ctx context.Context, c *ircd.RawClient, target string, n int) error {
	text := strings.Repeat("x", BenchLine)
	for i := 0; i < n; i += 100 {
		for j := i; j < min(i+100, n); j++ {
			if err := c.Send(ctx, "PRIVMSG "+target+" :"+text); err != nil {
				return err
			}
		}
		tok := fmt.Sprintf("w%d", i)
		if err := c.Send(ctx, "PING :"+tok); err != nil {
			return err
		}
		for {
			m, err := c.Read(ctx)
			if err != nil {
				return err
			}
			if m.Command == "PONG" && len(m.Params) > 0 && m.Params[len(m.Params)-1] == tok {
				break
			}
		}
	}
	return nil
}

// RawCount reads until n PRIVMSGs arrived and returns when the last did.
func RawCount(ctx context.Context, c *ircd.RawClient, n int) (time.Time, error) {
	for got := 0; got < n; {
		m, err := c.Read(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if m.Command == "PRIVMSG" {
			got++
		}
	}
	return time.Now(), nil
}

// JoinRaw joins c to ch and waits for the end of its NAMES.
func JoinRaw(ctx context.Context, c *ircd.RawClient, ch string) error {
	if err := c.Send(ctx, "JOIN "+ch); err != nil {
		return err
	}
	for {
		m, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if m.Command == "366" {
			return nil
		}
	}
}

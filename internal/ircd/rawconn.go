package ircd

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
)

// rawConn is a minimal IRC client connection for probing servers: it reads
// and writes whole lines, answers PING, and never runs goroutines.
type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
	nick string
}

// maxLineBytes bounds one received line (tags may take 8 KB, the rest 512).
const maxLineBytes = 16 << 10

func dialRaw(ctx context.Context, addr string) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{conn: c, r: bufio.NewReaderSize(c, maxLineBytes)}, nil
}

func (rc *rawConn) Close() error { return rc.conn.Close() }

func (rc *rawConn) deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(30 * time.Second)
}

// send writes one line (without CRLF).
func (rc *rawConn) send(ctx context.Context, line string) error {
	if err := rc.conn.SetWriteDeadline(rc.deadline(ctx)); err != nil {
		return err
	}
	_, err := io.WriteString(rc.conn, line+"\r\n")
	return err
}

// read returns the next line other than PING (which it answers).
func (rc *rawConn) read(ctx context.Context) (ircmsg.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return ircmsg.Message{}, err
		}
		// Wake up at least every 200ms to notice a cancelled context.
		dl := rc.deadline(ctx)
		if soon := time.Now().Add(200 * time.Millisecond); soon.Before(dl) {
			dl = soon
		}
		if err := rc.conn.SetReadDeadline(dl); err != nil {
			return ircmsg.Message{}, err
		}
		line, err := rc.r.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if line != "" {
					// Keep the partial line: bufio has consumed it.
					rest, err2 := rc.readRest(ctx)
					if err2 != nil {
						return ircmsg.Message{}, err2
					}
					line += rest
				} else {
					continue
				}
			} else {
				return ircmsg.Message{}, err
			}
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		msg, err := ircmsg.ParseLine(line)
		if err != nil {
			return ircmsg.Message{}, fmt.Errorf("parse %q: %w", line, err)
		}
		if msg.Command == "PING" {
			if err := rc.send(ctx, "PONG :"+strings.Join(msg.Params, " ")); err != nil {
				return ircmsg.Message{}, err
			}
			continue
		}
		if msg.Command == "ERROR" {
			return msg, fmt.Errorf("server closed the connection: ERROR %s", strings.Join(msg.Params, " "))
		}
		return msg, nil
	}
}

// readRest finishes a line whose beginning was read before a timeout.
func (rc *rawConn) readRest(ctx context.Context) (string, error) {
	if err := rc.conn.SetReadDeadline(rc.deadline(ctx)); err != nil {
		return "", err
	}
	return rc.r.ReadString('\n')
}

// register sends NICK and USER (after capLS, when non-nil, has seen the
// whole CAP LS reply and CAP END was sent) and waits for RPL_WELCOME. It
// picks another nick on 433. It returns the 001 message.
func (rc *rawConn) register(ctx context.Context, nickPrefix string, capLS func(params []string) (done bool)) (ircmsg.Message, error) {
	rc.nick = randomNick(nickPrefix)
	if capLS != nil {
		if err := rc.send(ctx, "CAP LS 302"); err != nil {
			return ircmsg.Message{}, err
		}
	}
	if err := rc.send(ctx, "NICK "+rc.nick); err != nil {
		return ircmsg.Message{}, err
	}
	if err := rc.send(ctx, "USER "+userName+" 0 * :meshbot ircd probe"); err != nil {
		return ircmsg.Message{}, err
	}
	for {
		msg, err := rc.read(ctx)
		if err != nil {
			return msg, err
		}
		switch msg.Command {
		case "001":
			if len(msg.Params) > 0 {
				rc.nick = msg.Params[0]
			}
			return msg, nil
		case "CAP":
			if capLS != nil && len(msg.Params) >= 3 && msg.Params[1] == "LS" {
				if capLS(msg.Params[2:]) {
					if err := rc.send(ctx, "CAP END"); err != nil {
						return msg, err
					}
				}
			}
		case "432", "433", "436": // erroneous nick, nick in use, collision
			rc.nick = randomNick(nickPrefix)
			if err := rc.send(ctx, "NICK "+rc.nick); err != nil {
				return msg, err
			}
		case "451", "421":
			// "You have not registered" or an unknown command (CAP on a
			// server without it): keep waiting.
		}
	}
}

// userName is the user (ident) field the harness registers with.
const userName = "meshbot"

func randomNick(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// quit sends QUIT and closes the connection.
func (rc *rawConn) quit(ctx context.Context) {
	_ = rc.send(ctx, "QUIT :bye")
	_ = rc.Close()
}

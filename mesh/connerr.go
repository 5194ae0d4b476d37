package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircmsg"
)

// Connection errors: what a failed connection attempt, or a lost
// connection, was, in words a person can act on. Errors returned by
// Connect (and logged on a reconnect) wrap one of these when the node
// could tell; otherwise the network's own error.
var (
	// ErrNotIRC: something answered on the port, but not an IRC server
	// (an HTTP server, a TLS port spoken to in plain text, ...). The error
	// quotes the start of what it sent.
	ErrNotIRC = errors.New("mesh: not an IRC server")
	// ErrNoAnswer: the connection was accepted but the server sent
	// nothing before the node gave up on it.
	ErrNoAnswer = errors.New("mesh: no answer from the server")
	// ErrAuthFailed: the server refused the node's credentials (SASL or
	// the server password), or SASL was asked for and the server offers
	// none. The error quotes the server's reason. Connect fails with it
	// at once, also with RetryOnFailedConnect: trying again would not
	// help.
	ErrAuthFailed = errors.New("mesh: authentication failed")
	// ErrServerClosed: the server closed the connection with an ERROR
	// line (a ban, a kill, a shutdown); the error quotes it.
	ErrServerClosed = errors.New("mesh: the server closed the connection")
)

// connDiag is what one connection showed of the server before it ended:
// enough to say what happened. The connection's reader updates it; the
// connect loop reads it once the connection is over.
type connDiag struct {
	mu         sync.Mutex
	start      time.Time
	bytes      int         // bytes received
	first      string      // the first line received (clipped)
	irc        bool        // a line only an IRC server sends was seen
	registered bool        // RPL_WELCOME
	past       atomic.Bool // registered: only ERROR lines matter from now on
	saslOK     bool        // RPL_SASLSUCCESS (903)
	saslOffer  bool        // "sasl" in the server's CAP LS
	auth       string      // why authentication failed ("" if it did not)
	closed     string      // the server's ERROR text
}

// diagClip bounds what an error quotes of the server's words.
const diagClip = 80

// saw takes one received line (no line ending), as the reader gets it. It
// reports false when the connection must end now: SASL was asked for
// and registration completed without it.
func (d *connDiag) saw(raw []byte, wantSASL bool) bool {
	if d.past.Load() && !bytes.HasPrefix(raw, []byte("ERROR ")) {
		return true // the hot path: mesh traffic
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bytes += len(raw) + 1
	if d.first == "" {
		d.first = clipText(raw)
	}
	msg, err := ircmsg.ParseLine(string(raw))
	if err != nil {
		return true
	}
	cmd := strings.ToUpper(msg.Command)
	switch {
	case len(cmd) == 3 && cmd[0] >= '0' && cmd[0] <= '9' && msg.Source != "", // numerics come from a server
		cmd == "CAP", cmd == "NOTICE", cmd == "PING", cmd == "AUTHENTICATE":
		d.irc = true
	case cmd == "ERROR":
		d.irc = true
		d.closed = clipText([]byte(last(msg.Params)))
	}
	switch cmd {
	case "CAP":
		if len(msg.Params) > 2 && strings.EqualFold(msg.Params[1], "LS") {
			for _, c := range strings.Fields(last(msg.Params)) {
				if name, _, _ := strings.Cut(c, "="); name == "sasl" {
					d.saslOffer = true
				}
			}
		}
	case "903":
		d.saslOK = true
	case "902", "904", "905", "906", "908", "464":
		// 902 account unavailable, 904 failed, 905 too long, 906
		// aborted, 908 mechanisms, 464 server password incorrect.
		if d.auth == "" {
			d.auth = clipText([]byte(last(msg.Params)))
		}
	case "001":
		d.registered = true
		d.past.Store(true)
		if wantSASL && !d.saslOK {
			if d.auth == "" {
				d.auth = "the server does not offer SASL"
				if d.saslOffer {
					d.auth = "SASL did not complete"
				}
			}
			return false
		}
	}
	return true
}

// explain turns how a connection ended into an error that says what
// happened, from what the connection showed. err is what the IRC client
// returned; nil diag (no connection was made) returns it unchanged.
func (d *connDiag) explain(err error, silentAfter time.Duration) error {
	if d == nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.auth != "":
		return fmt.Errorf("%w: %s", ErrAuthFailed, d.auth)
	case d.bytes == 0 && !d.registered:
		return fmt.Errorf("%w: nothing received in %s after connecting (is it an IRC server? is it the TLS port, without --tls?)",
			ErrNoAnswer, silentAfter.Round(100*time.Millisecond))
	case !d.irc:
		return fmt.Errorf("%w: it answered %q", ErrNotIRC, d.first)
	case d.closed != "":
		return fmt.Errorf("%w: %s", ErrServerClosed, d.closed)
	}
	return err
}

func last(params []string) string {
	if len(params) == 0 {
		return ""
	}
	return params[len(params)-1]
}

// clipText makes a server's bytes safe to quote: valid UTF-8, at most
// diagClip runes.
func clipText(b []byte) string {
	s := strings.ToValidUTF8(string(bytes.TrimRight(b, "\r\n")), "?")
	if utf8.RuneCountInString(s) > diagClip {
		r := []rune(s)
		s = string(r[:diagClip]) + "…"
	}
	return s
}

// explainAttempt says what the connection attempt that began at started
// ended with (err from the IRC client).
func (n *Node) explainAttempt(err error, started time.Time) error {
	if refused := n.takeRefusal(); refused != nil {
		return refused // the node ended it itself (nick.go)
	}
	n.mu.Lock()
	t := n.tap
	n.mu.Unlock()
	if t == nil || t.diag.start.Before(started) {
		return err // no connection was made (the dial failed)
	}
	return t.diag.explain(err, time.Since(t.diag.start))
}

// watchFirstAttempts ends Connect's wait (cancel) as soon as a connection
// attempt fails for good: the first failure, or with RetryOnFailedConnect
// an authentication failure; the failure is what Connect returns.
func (n *Node) watchFirstAttempts(ctx context.Context, cancel context.CancelFunc) {
	for {
		select {
		case err := <-n.firstErr:
			if !n.cfg.RetryOnFailedConnect || errors.Is(err, ErrAuthFailed) {
				n.lastErr.Store(&err)
				cancel()
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

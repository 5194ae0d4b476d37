package mesh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IRC operators. The server tells who is an IRC operator in its WHOIS
// answer (RPL_WHOISOPERATOR, 313, on InspIRCd, ergo and ngIRCd alike):
// IsIRCOperator asks it. One question per nick is in flight at a time,
// and at most maxWhois nicks at once, so no amount of asking makes the
// node flood the server.

// maxWhois bounds the WHOIS questions in flight.
const maxWhois = 8

// whoisTimeout bounds the wait for a WHOIS answer when ctx has no earlier
// deadline.
const whoisTimeout = 5 * time.Second

// errWhoisBusy: too many WHOIS questions in flight.
var errWhoisBusy = errors.New("mesh: too many WHOIS questions in flight")

// whoisQuery is one WHOIS in flight: oper is set by 313, done closed by
// the end of the answer (318) or 401.
type whoisQuery struct {
	oper bool
	seen bool // 311: the nick exists
	done chan struct{}
}

// IsIRCOperator asks the server whether nick is an IRC operator (WHOIS).
// It waits for the answer until ctx ends (5 s at most).
func (n *Node) IsIRCOperator(ctx context.Context, nick string) (bool, error) {
	if nick == "" || strings.ContainsAny(nick, " ,*?\r\n\x00") {
		return false, fmt.Errorf("mesh: %q is not a nick", nick)
	}
	if n.current() == nil {
		return false, ErrDisconnected
	}
	key := strings.ToLower(nick)
	t := n.talk
	t.mu.Lock()
	q := t.whois[key]
	if q == nil {
		if len(t.whois) >= maxWhois {
			t.mu.Unlock()
			return false, errWhoisBusy
		}
		q = &whoisQuery{done: make(chan struct{})}
		t.whois[key] = q
		t.mu.Unlock()
		_ = n.client.Cmd.SendRaw("WHOIS " + nick)
	} else {
		t.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, whoisTimeout)
	defer cancel()
	select {
	case <-q.done:
		return q.oper, nil
	case <-ctx.Done():
		t.mu.Lock()
		if t.whois[key] == q {
			delete(t.whois, key) // a later question asks again
		}
		t.mu.Unlock()
		return false, fmt.Errorf("mesh: WHOIS %s: %w", nick, context.Cause(ctx))
	case <-n.done:
		return false, ErrClosed
	}
}

// onWhoisReply takes the WHOIS numerics: 311 (the user), 313 (an IRC
// operator), 318 (the end), 401 (no such nick).
func (n *Node) onWhoisReply(l *line) {
	if len(l.params) < 2 {
		return
	}
	key := strings.ToLower(l.params[1])
	t := n.talk
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.whois[key]
	if q == nil {
		return
	}
	switch l.cmd {
	case "311":
		q.seen = true
	case "313":
		q.oper = true
	case "318", "401":
		delete(t.whois, key)
		close(q.done)
	}
}

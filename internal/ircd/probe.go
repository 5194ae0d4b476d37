package ircd

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Caps is what a server announced to a fresh client: its IRCv3 capabilities
// (CAP LS 302) and its ISUPPORT (005) tokens. Decide features from it, never
// from the server's name.
type Caps struct {
	// ServerName is the source of the server's RPL_WELCOME.
	ServerName string
	// Caps maps each offered capability to its value ("" when it has none),
	// e.g. "draft/multiline" → "max-bytes=65536,max-lines=1000".
	Caps map[string]string
	// ISupport maps each ISUPPORT token to its value ("" when it has none),
	// e.g. "NICKLEN" → "30", "CHATHISTORY" → "1000".
	ISupport map[string]string
	// Nick is the nick the probe registered with and Source its full
	// nick!user@host as the server reports it (USERHOST): the prefix other
	// clients see on its messages. The probe registers with user "meshbot".
	Nick, Source string
}

// Has reports whether the server offered the capability.
func (c *Caps) Has(capability string) bool {
	_, ok := c.Caps[capability]
	return ok
}

// Token returns an ISUPPORT token's value and whether it was announced.
func (c *Caps) Token(name string) (string, bool) {
	v, ok := c.ISupport[name]
	return v, ok
}

// IntToken returns an ISUPPORT token as a number, or def when it is absent
// or not a number.
func (c *Caps) IntToken(name string, def int) int {
	v, ok := c.ISupport[name]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return n
}

// LineLen is the server's line length (ISUPPORT LINELEN, default 512).
func (c *Caps) LineLen() int { return c.IntToken("LINELEN", 512) }

// Probe connects to addr as a plain client, sends CAP LS 302 and collects
// the (possibly multi-line) capability list, registers, reads ISUPPORT up to
// the end of the MOTD, asks USERHOST for its own prefix and quits. It
// requests no capabilities. Bound it with ctx.
func Probe(ctx context.Context, addr string) (*Caps, error) {
	rc, err := dialRaw(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", addr, err)
	}
	defer rc.quit(ctx)

	caps := &Caps{Caps: map[string]string{}, ISupport: map[string]string{}}
	welcome, err := rc.register(ctx, "probe", func(params []string) bool {
		// params: ["*", "caps..."] (more to come) or ["caps..."] (last).
		more := len(params) >= 2 && params[0] == "*"
		for _, c := range strings.Fields(params[len(params)-1]) {
			name, value, _ := strings.Cut(c, "=")
			caps.Caps[name] = value
		}
		return !more
	})
	if err != nil {
		return nil, fmt.Errorf("probe %s: register: %w", addr, err)
	}
	caps.ServerName = welcome.Source
	caps.Nick = rc.nick

	// ISUPPORT comes between 001 and the MOTD; the MOTD (or 422) ends the burst.
	for done := false; !done; {
		msg, err := rc.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("probe %s: reading ISUPPORT: %w", addr, err)
		}
		switch msg.Command {
		case "005":
			// :server 005 nick TOKEN TOKEN=value -TOKEN :are supported by this server
			if len(msg.Params) < 2 {
				continue
			}
			for _, tok := range msg.Params[1 : len(msg.Params)-1] {
				if strings.HasPrefix(tok, "-") {
					delete(caps.ISupport, tok[1:])
					continue
				}
				name, value, _ := strings.Cut(tok, "=")
				caps.ISupport[name] = value
			}
		case "376", "422": // end of MOTD, no MOTD
			done = true
		}
	}

	if err := rc.send(ctx, "USERHOST "+rc.nick); err != nil {
		return nil, fmt.Errorf("probe %s: %w", addr, err)
	}
	for caps.Source == "" {
		msg, err := rc.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("probe %s: waiting for USERHOST: %w", addr, err)
		}
		if msg.Command != "302" || len(msg.Params) < 2 {
			continue
		}
		// nick=+user@host or nick*=-user@host (oper, away flags)
		for _, reply := range strings.Fields(msg.Params[len(msg.Params)-1]) {
			nick, rest, ok := strings.Cut(reply, "=")
			if !ok || len(rest) < 1 {
				continue
			}
			caps.Source = strings.TrimSuffix(nick, "*") + "!" + rest[1:]
		}
		if caps.Source == "" {
			return nil, fmt.Errorf("probe %s: unexpected USERHOST reply %v", addr, msg.Params)
		}
	}
	return caps, nil
}

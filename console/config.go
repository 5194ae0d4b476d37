package console

import (
	"log/slog"
	"strings"
	"time"
)

// Config says who may use a console and bounds its work. The zero value is
// the default: anyone may read, the mesh's operators may act.
type Config struct {
	// Restricted makes the reading commands (status, members, methods,
	// claims, state, help) need the same trust as the acting ones.
	Restricted bool
	// Accounts are the accounts trusted to act: a person logged in to one
	// of them (the server's account tag: ergo's own accounts, InspIRCd
	// with a services daemon such as atheme) may run every command.
	Accounts []string
	// TrustEveryone lets anyone act: for a demo on a throwaway server of
	// one's own, never for a mesh others can reach.
	TrustEveryone bool
	// NoChannelOperators stops trusting the channel operators of the
	// mesh's channels this node is in; NoIRCOperators the server's IRC
	// operators (asked with WHOIS). By default both are trusted.
	NoChannelOperators, NoIRCOperators bool
	// RequestTimeout bounds a req and a pub (5 s).
	RequestTimeout time.Duration
	// MaxPayload bounds the payload of a req or pub, in bytes (4 KiB).
	MaxPayload int
	// Logger logs every command run and refused (nil: discard).
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxPayload     = 4 << 10
)

func (c Config) withDefaults() Config {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// allowed reports whether account is on the allow-list.
func (c *Config) allowed(account string) bool {
	if account == "" || account == "*" {
		return false
	}
	for _, a := range c.Accounts {
		if strings.EqualFold(a, account) {
			return true
		}
	}
	return false
}

package envelope

import (
	"fmt"
	"strings"
)

// Sender binding (docs/PROTOCOL.md §4.4). The IRC server says who sent each
// line: its nick, and with accounts (SASL) the account tag. A mesh nick is
// "<service>-<instance>", so the server's word can be checked against the
// envelope's sender without any key: an envelope whose sender is not the
// nick that sent it is refused, in every trust mode, live or replayed
// (recorded lines keep their nick and tags).

// TagAccount is the IRCv3 account-tag: the account the sending client is
// logged in to, added by the server.
const TagAccount = "account"

// SenderNick is the nick that must send the envelopes of s:
// "<service>-<instance>".
func SenderNick(s Sender) string { return s.Service + "-" + s.Instance }

// NickMatches reports whether the line's source (a nick, or a full
// nick!user@host prefix) is the nick of s. IRC nicks compare without
// case; mesh names are lower case.
func NickMatches(source string, s Sender) bool {
	nick, _, _ := strings.Cut(source, "!")
	want := len(s.Service) + 1 + len(s.Instance)
	if len(nick) != want || s.Service == "" || s.Instance == "" {
		return false
	}
	return strings.EqualFold(nick[:len(s.Service)], s.Service) && nick[len(s.Service)] == '-' &&
		strings.EqualFold(nick[len(s.Service)+1:], s.Instance)
}

// AccountBinding binds services to the accounts their instances log in
// with (SASL). A bound service's lines must carry the account tag naming
// its account; services it does not bind are checked by nick alone. Read
// only once in use: build it, then hand it to a DecoderConfig.
type AccountBinding struct {
	// Accounts names the account of each bound service.
	Accounts map[string]string
	// SameName binds every service not in Accounts to the account named
	// like the service.
	SameName bool
}

// Account returns the account service is bound to, and false when it is
// not bound.
func (b *AccountBinding) Account(service string) (string, bool) {
	if b == nil {
		return "", false
	}
	if a, ok := b.Accounts[service]; ok {
		return a, true
	}
	if b.SameName {
		return service, true
	}
	return "", false
}

// checkSender checks env's sender against the line's source and, with an
// account binding, the line's account tag. tags nil means the source of
// the envelope kept no tags (a snapshot page): the account is not checked
// then, the nick still is.
func (d *Decoder) checkSender(source string, tags map[string]string, env *Envelope) error {
	if !d.cfg.BindSender {
		return nil
	}
	if !NickMatches(source, env.Sender) {
		nick, _, _ := strings.Cut(source, "!")
		return fmt.Errorf("%w: %s claims to be %s/%s", ErrWrongSender, clipName(nick), clipName(env.Sender.Service), clipName(env.Sender.Instance))
	}
	want, bound := d.cfg.Accounts.Account(env.Sender.Service)
	if !bound || tags == nil {
		return nil
	}
	got, ok := tags[TagAccount]
	switch {
	case !ok || got == "" || got == "*":
		return fmt.Errorf("%w: %s is not logged in (service %s is bound to account %s)", ErrWrongSender, clipName(source), clipName(env.Sender.Service), clipName(want))
	case !strings.EqualFold(got, want):
		return fmt.Errorf("%w: %s is logged in as %s; service %s is bound to account %s", ErrWrongSender, clipName(source), clipName(got), clipName(env.Sender.Service), clipName(want))
	}
	return nil
}

// clipName makes a name from the network safe for an error message.
func clipName(s string) string { return legibleTopic(s) }

package mesh

import (
	"fmt"
	"strings"

	"github.com/meshbot/meshbot/envelope"
)

// A closed mesh (docs/PROTOCOL.md §4.4–4.7). On an IRC server anyone can
// connect, so the node takes, by default, what the server vouches for:
//
//   - Senders are who the server says they are. Every envelope a node acts
//     on — live, from history, from a snapshot — was sent by the nick of its
//     sender (service-instance), in every trust mode; with Config.Accounts,
//     by a client logged in to the service's account.
//   - Channels only the mesh can enter: Config.ChannelKey keys every
//     channel of the namespace (+k), Config.InviteOnly makes them
//     invite-only (+i) with the mesh's accounts excepted (+I); the first
//     member sets them up, the others check and keep them (chanmodes.go).
//   - Payloads can be encrypted (Config.Crypter, crypt.go).
//   - A node that signs requires signatures; accepting unsigned
//     envelopes is a visible choice (Config.AllowUnsigned), else a
//     warning at start.

// decoderConfig is the trust every decoder of the node applies: live
// lines and every path that reads history or snapshots (NewDecoder).
func (n *Node) decoderConfig() envelope.DecoderConfig {
	return envelope.DecoderConfig{
		Limits:           envelope.ReassemblyLimits{MaxEnvelope: n.cfg.MaxEnvelope},
		Verifier:         &envelope.Verifier{Keys: n.cfg.Keys, RequireSigned: n.cfg.RequireSigned},
		BindSender:       true,
		Accounts:         n.cfg.Accounts,
		Crypter:          n.cfg.Crypter,
		MustOpen:         true,
		RequireEncrypted: n.cfg.RequireEncrypted,
	}
}

// validateClosed checks the closed-mesh settings of c.
func (c *Config) validateClosed() error {
	if err := c.validateSASL(); err != nil {
		return err
	}
	if c.Accounts != nil && c.SASLUser != "" {
		if want, bound := c.Accounts.Account(c.Service); bound && !strings.EqualFold(want, c.SASLUser) {
			return fmt.Errorf("%w: service %s is bound to account %s, but the node logs in as %s: every other node would reject its lines", ErrInvalidConfig, c.Service, want, c.SASLUser)
		}
	}
	if c.InviteOnly {
		if c.Accounts == nil || len(c.Accounts.Accounts) == 0 {
			return fmt.Errorf("%w: InviteOnly needs the mesh's accounts (Accounts.Accounts): they are the only ones let in", ErrInvalidConfig)
		}
		if _, ok := c.Accounts.Accounts[c.Service]; !ok {
			return fmt.Errorf("%w: InviteOnly: service %s has no account in Accounts.Accounts, so it could not join", ErrInvalidConfig, c.Service)
		}
	}
	if strings.ContainsAny(c.ChannelKey, " ,\r\n\x00") || c.ChannelKey != "" && c.ChannelKey[0] == ':' {
		return fmt.Errorf("%w: ChannelKey may not hold spaces, commas or line breaks, nor start with ':'", ErrInvalidConfig)
	}
	if c.Signer != nil && c.Keys == nil {
		return fmt.Errorf("%w: a node that signs needs Keys holding its key: it checks its own echoes (what confirms a publish) and the others' signatures with them", ErrInvalidConfig)
	}
	if c.RequireEncrypted && c.Crypter == nil {
		return fmt.Errorf("%w: RequireEncrypted without a Crypter would reject every event", ErrInvalidConfig)
	}
	if c.Crypter != nil && c.Crypter.Keys() != c.Keys && c.Keys != nil {
		return fmt.Errorf("%w: the Crypter reads another keyring than Keys: make it with envelope.NewCrypter(service, cfg.Keys)", ErrInvalidConfig)
	}
	return nil
}

// warnOpen says, once at start, what an outsider on the server can do to
// a mesh configured like this node, unless the user said it is intended.
func (n *Node) warnOpen() {
	c := &n.cfg
	// A node with a Signer has Keys (validateClosed) and so requires
	// signatures unless AllowUnsigned.
	if c.AllowUnsigned || c.RequireSigned {
		return
	}
	n.log.Warn("this mesh node runs unsigned: anyone on the IRC server who takes the nick of a service instance can speak for it",
		"hint", "give the mesh keys (Signer and Keys; meshbot: --hmac-key-file or --ed25519-key-file, with --keyring), or set AllowUnsigned (--allow-unsigned) to say it is intended")
}

// closedLine takes every line from the server but PRIVMSGs, on the
// reader, for the closed mesh: nick checks, channel operators and modes,
// join refusals. It reports whether the line was a join refusal it
// handled (nothing else needs it then).
func (n *Node) closedLine(l *line) bool {
	switch l.cmd {
	case "001":
		n.checkWelcome(l.param(0))
	case "432":
		n.onErroneousNick(l)
	case "900": // RPL_LOGGEDIN: <nick> <nick!user@host> <account> :text
		n.closed.mu.Lock()
		n.closed.account = l.param(2)
		n.closed.mu.Unlock()
	case "376", "422": // registered: the capabilities and the login are known
		n.checkLogin() // sasl.go
		n.checkAccountTags()
		n.checkInviteOnly()
	case "353":
		n.onNames(l)
	case "324":
		n.onChannelModes(l)
	case "346", "347":
		n.onInviteList(l)
	case "MODE":
		n.onMode(l)
	case "JOIN":
		if !strings.EqualFold(l.nick, n.ownNick()) {
			n.onJoinClosed(l.param(0), l.nick)
		}
	case "PART":
		n.onLeaveClosed(l.param(0), l.nick)
	case "KICK":
		n.onLeaveClosed(l.param(0), l.param(1))
	case "QUIT":
		n.onQuitClosed(l.nick)
	case "NICK":
		if strings.EqualFold(l.nick, n.ownNick()) {
			n.checkOwnNick(l.last())
		} else {
			n.onNickClosed(l.nick, l.last())
		}
	default:
		return n.isJoinRefusal(l)
	}
	return false
}

// joinFatal handles a channel the node could not join on a new
// connection: without the heartbeat channel the node is no member, so the
// connection is refused (Connect fails with err; a reconnect tries again
// later); another channel is logged (joinFailed did) and left out.
func (n *Node) joinFatal(ch string, err error) bool {
	if !strings.EqualFold(ch, HeartbeatChannel(n.cfg.Namespace)) {
		return false
	}
	n.refuseConnection(err)
	return true
}

// checkAccountTags refuses a connection on which account bindings cannot
// be checked: the server sends no account tags.
func (n *Node) checkAccountTags() {
	if n.cfg.Accounts == nil {
		return
	}
	n.mu.Lock()
	ok := n.caps["account-tag"]
	n.mu.Unlock()
	if !ok {
		n.refuseConnection(fmt.Errorf("%w: Config.Accounts binds services to accounts, but the server sends no account tags (account-tag): no line could be checked", ErrInvalidConfig))
		return
	}
	want, bound := n.cfg.Accounts.Account(n.cfg.Service)
	n.closed.mu.Lock()
	got := n.closed.account
	n.closed.mu.Unlock()
	if bound && !strings.EqualFold(got, want) {
		why := "it is not logged in"
		if got != "" {
			why = "it is logged in as " + got
		}
		n.refuseConnection(fmt.Errorf("%w: service %s is bound to account %s, but %s (SASL): every other node would refuse its lines", ErrInvalidConfig, n.cfg.Service, want, why))
	}
}

// checkInviteOnly refuses a connection on which the mesh's channels could
// be made invite-only but not opened to the mesh's accounts: the server
// (ISUPPORT, known once registered) has no invite exceptions naming an
// account (ergo). Setting +i there would lock every other member out.
func (n *Node) checkInviteOnly() {
	if !n.cfg.InviteOnly {
		return
	}
	if _, err := n.inviteMasks(); err != nil {
		n.refuseConnection(fmt.Errorf("%w: InviteOnly: %v, so an invite-only channel would keep the mesh's own members out; keep outsiders out with ChannelKey (and Accounts) on this server", ErrInvalidConfig, err))
	}
}

package mesh

import (
	"fmt"
	"strings"

	"github.com/lrstanley/girc"
)

// SASL (docs/ACCOUNTS.md). A node logs in to an account while it
// registers, so that its first line already carries the account's tag:
//
//   - PLAIN: Config.SASLUser and SASLPassword;
//   - EXTERNAL: Config.SASLExternal, over TLS with a client certificate
//     (Config.TLS.Certificates) whose fingerprint the server's services
//     hold for the account; SASLUser, when set, is the account the node
//     must be logged in to.
//
// A login the server refuses ends Connect at once with ErrAuthFailed and
// the server's reason (connerr.go), whatever the mechanism.

// wantsSASL reports whether the node logs in with SASL.
func (c *Config) wantsSASL() bool { return c.SASLUser != "" || c.SASLExternal }

// saslMech is the mechanism girc runs while registering, or nil.
func (c *Config) saslMech() girc.SASLMech {
	switch {
	case c.SASLExternal:
		// No authorization identity: the certificate names the account
		// (and girc would send an identity unencoded).
		return &girc.SASLExternal{}
	case c.SASLUser != "":
		return &girc.SASLPlain{User: c.SASLUser, Pass: c.SASLPassword}
	}
	return nil
}

// validateSASL checks the SASL settings of c.
func (c *Config) validateSASL() error {
	if !c.SASLExternal {
		return nil
	}
	if c.SASLPassword != "" {
		return fmt.Errorf("%w: SASLExternal logs in with the client certificate: leave SASLPassword empty (PLAIN and EXTERNAL exclude each other)", ErrInvalidConfig)
	}
	if c.TLS == nil || len(c.TLS.Certificates) == 0 && c.TLS.GetClientCertificate == nil {
		return fmt.Errorf("%w: SASLExternal needs TLS with a client certificate (TLS.Certificates): the server logs the node in by its fingerprint", ErrInvalidConfig)
	}
	return nil
}

// checkLogin refuses a registered connection logged in with EXTERNAL to
// another account than Config.SASLUser names (the certificate is
// registered to another one), or to none.
func (n *Node) checkLogin() {
	c := &n.cfg
	if !c.SASLExternal || c.SASLUser == "" {
		return
	}
	n.closed.mu.Lock()
	got := n.closed.account
	n.closed.mu.Unlock()
	if strings.EqualFold(got, c.SASLUser) {
		return
	}
	why := "no account"
	if got != "" {
		why = "account " + got
	}
	n.refuseConnection(fmt.Errorf("%w: the client certificate logs in to %s, not %s (SASLUser)", ErrAuthFailed, why, c.SASLUser))
}

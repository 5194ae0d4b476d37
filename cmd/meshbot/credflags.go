package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/meshbot/meshbot/mesh"
)

// credFlags are how a node proves who it is to the server, besides
// --sasl-user and --sasl-pass: a password file, a TLS client certificate
// and SASL EXTERNAL, and the CA that signed the server's certificate
// (docs/ACCOUNTS.md).
type credFlags struct {
	saslPassFile    string
	saslExternal    bool
	tlsCert, tlsKey string
	tlsCA           string
}

func (c *credFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&c.saslPassFile, "sasl-pass-file", "", "read the SASL PLAIN password from this file (its first line)")
	bindEnv(fs, "sasl-pass-file", "MESHBOT_SASL_PASS_FILE")
	fs.BoolVar(&c.saslExternal, "sasl-external", false, "log in with SASL EXTERNAL: the server knows the account by the client certificate (--tls-cert); --sasl-user, if given, is the account expected")
	bindEnv(fs, "sasl-external", "MESHBOT_SASL_EXTERNAL")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "present this TLS client certificate (PEM; implies --tls); the key is in the same file unless --tls-key")
	bindEnv(fs, "tls-cert", "MESHBOT_TLS_CERT")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	bindEnv(fs, "tls-key", "MESHBOT_TLS_KEY")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "trust the server's certificate if this CA (PEM) signed it, in place of the system's (implies --tls)")
	bindEnv(fs, "tls-ca", "MESHBOT_TLS_CA")
}

// apply sets cfg's credentials from the SASL flags (user and pass given
// by connFlags) and these; host names the server for a TLS config it
// makes.
func (c *credFlags) apply(cfg *mesh.Config, host, user, pass string) error {
	if c.saslPassFile != "" {
		if pass != "" {
			return usagef("--sasl-pass and --sasl-pass-file exclude each other")
		}
		b, err := os.ReadFile(c.saslPassFile)
		if err != nil {
			return fmt.Errorf("--sasl-pass-file: %w", err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if pass = strings.TrimRight(first, "\r"); pass == "" {
			return fmt.Errorf("--sasl-pass-file %s: the first line is empty", c.saslPassFile)
		}
	}
	switch {
	case c.saslExternal:
		if pass != "" {
			return usagef("--sasl-external logs in with the client certificate: give no SASL password")
		}
		if c.tlsCert == "" {
			return usagef("--sasl-external needs a client certificate (--tls-cert)")
		}
	case (user == "") != (pass == ""):
		return usagef("SASL needs both --sasl-user and --sasl-pass (or --sasl-pass-file; or MESHBOT_SASL_USER and MESHBOT_SASL_PASS)")
	}
	if c.tlsKey != "" && c.tlsCert == "" {
		return usagef("--tls-key needs --tls-cert")
	}
	cfg.SASLUser, cfg.SASLPassword, cfg.SASLExternal = user, pass, c.saslExternal
	if c.tlsCert == "" && c.tlsCA == "" {
		return nil
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	if c.tlsCert != "" {
		key := c.tlsKey
		if key == "" {
			key = c.tlsCert
		}
		cert, err := tls.LoadX509KeyPair(c.tlsCert, key)
		if err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
		cfg.TLS.Certificates = []tls.Certificate{cert}
	}
	if c.tlsCA != "" {
		b, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("--tls-ca %s: no PEM certificate in it", c.tlsCA)
		}
		cfg.TLS.RootCAs = pool
	}
	return nil
}

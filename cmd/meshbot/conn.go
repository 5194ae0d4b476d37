package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// connFlags are the flags of every command that connects to a server.
type connFlags struct {
	server, namespace  string
	tls, tlsInsecure   bool
	saslUser, saslPass string
	cred               credFlags // credflags.go
	connectTimeout     time.Duration
	drain              time.Duration
	serverEnv          bool // --server falls back to MESHBOT_SERVER
}

// add registers the flags; serverEnv says whether --server falls back to
// MESHBOT_SERVER (demo does not, so it never runs against a real mesh by
// accident).
func (c *connFlags) add(fs *pflag.FlagSet, serverEnv bool) {
	c.serverEnv = serverEnv
	if serverEnv {
		fs.StringVar(&c.server, "server", "127.0.0.1:6667", "IRC server as host:port; several, comma-separated, are servers of one network the node moves between when its server dies or splits away")
		bindEnv(fs, "server", "MESHBOT_SERVER")
	} else {
		fs.StringVar(&c.server, "server", "", "use this running IRC server (host:port) instead of starting one")
	}
	fs.StringVar(&c.namespace, "namespace", "mesh", "mesh namespace: topic T is channel #NAMESPACE.T")
	bindEnv(fs, "namespace", "MESHBOT_NAMESPACE")
	fs.BoolVar(&c.tls, "tls", false, "connect with TLS (the port is usually 6697)")
	bindEnv(fs, "tls", "MESHBOT_TLS")
	fs.BoolVar(&c.tlsInsecure, "tls-insecure", false, "connect with TLS without checking the server's certificate (implies --tls)")
	bindEnv(fs, "tls-insecure", "MESHBOT_TLS_INSECURE")
	fs.StringVar(&c.saslUser, "sasl-user", "", "SASL account name (PLAIN; with --sasl-external, the account expected)")
	bindEnv(fs, "sasl-user", "MESHBOT_SASL_USER")
	fs.StringVar(&c.saslPass, "sasl-pass", "", "SASL PLAIN password (prefer the environment variable: arguments are visible to other local users)")
	bindEnv(fs, "sasl-pass", "MESHBOT_SASL_PASS")
	c.cred.add(fs)
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "how long to wait for the connection and registration")
	fs.DurationVar(&c.drain, "drain-timeout", 5*time.Second, "on exit, how long to let handlers and unconfirmed lines finish")
}

// config returns the node config for service (and instance, random when
// empty).
func (c *connFlags) config(st *state, service, instance string) (mesh.Config, error) {
	cfg := mesh.DefaultConfig()
	servers := strings.Split(c.server, ",")
	for i := range servers {
		servers[i] = strings.TrimSpace(servers[i])
		if _, _, err := net.SplitHostPort(servers[i]); err != nil {
			return cfg, usagef("--server %q: want host:port, e.g. 127.0.0.1:6667 (several: comma-separated)", c.server)
		}
	}
	host, _, _ := net.SplitHostPort(servers[0])
	if len(servers) > 1 {
		host = "" // each server's own name, when dialled
	}
	cfg.Server, cfg.Servers = servers[0], servers[1:]
	cfg.Namespace = c.namespace
	cfg.Service = service
	cfg.Instance = instance
	cfg.Logger = st.log
	if c.tls || c.tlsInsecure {
		cfg.TLS = &tls.Config{ServerName: host, InsecureSkipVerify: c.tlsInsecure, MinVersion: tls.VersionTLS12}
	}
	if err := c.cred.apply(&cfg, host, c.saslUser, c.saslPass); err != nil {
		return cfg, err
	}
	if c.connectTimeout > 0 {
		cfg.ConnectTimeout = c.connectTimeout
	}
	return cfg, nil
}

// connect checks that the server is reachable (to fail fast with the
// network's own error) and connects a node.
func (c *connFlags) connect(ctx context.Context, cfg mesh.Config) (*mesh.Node, error) {
	d := net.Dialer{Timeout: min(cfg.ConnectTimeout, 5*time.Second)}
	var conn net.Conn
	var err error
	for _, addr := range append([]string{cfg.Server}, cfg.Servers...) {
		if conn, err = d.DialContext(ctx, "tcp", addr); err == nil {
			break
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, errors.New("interrupted")
		}
		hint := "is it running? set --server"
		if c.serverEnv {
			hint += " or MESHBOT_SERVER"
		}
		return nil, fmt.Errorf("cannot reach the IRC server at %s: %v (%s)", cfg.Server, unwrapNet(err), hint)
	}
	_ = conn.Close()
	n, err := mesh.Connect(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errors.New("interrupted")
		}
		if errors.Is(err, mesh.ErrInvalidConfig) {
			return nil, err
		}
		if why := connFailure(err); why != "" {
			return nil, fmt.Errorf("%s: %s", cfg.Server, why)
		}
		return nil, fmt.Errorf("connecting to %s as %s: %w", cfg.Server, cfg.Service, err)
	}
	return n, nil
}

// connFailure says what a failed connection was, when the node could
// tell ("not an IRC server: it answered ..."), or "".
func connFailure(err error) string {
	for _, sentinel := range []error{mesh.ErrAuthFailed, mesh.ErrNotIRC, mesh.ErrNoAnswer, mesh.ErrServerClosed} {
		if !errors.Is(err, sentinel) {
			continue
		}
		msg := err.Error()
		if i := strings.Index(msg, sentinel.Error()); i >= 0 {
			return strings.TrimPrefix(msg[i:], "mesh: ")
		}
		return strings.TrimPrefix(sentinel.Error(), "mesh: ")
	}
	return ""
}

// closeNode closes n, letting handlers and unconfirmed lines finish within
// the drain timeout.
func (c *connFlags) closeNode(st *state, n *mesh.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), c.drain)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		st.log.Warn("closing", "nick", n.Nick(), "err", err)
	}
}

// unwrapNet shortens "dial tcp 127.0.0.1:1: connect: connection refused" to
// its cause.
func unwrapNet(err error) error {
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		return sys.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// identityFlags name the node of a command.
type identityFlags struct {
	service, instance string
	fs                *pflag.FlagSet
}

func (i *identityFlags) add(fs *pflag.FlagSet, defService string) {
	i.fs = fs
	fs.StringVar(&i.service, "service", defService, "service name of this tool's node (a-z, 0-9, _ and -); its nick is SERVICE-INSTANCE")
	fs.StringVar(&i.instance, "instance", "", "instance id of this tool's node (a-z, 0-9; random when empty)")
}

// trustFlags sign what a node sends and choose what it accepts; they also
// close the mesh: payload encryption, channel keys and modes, accounts.
type trustFlags struct {
	hmacKeyFile, edKeyFile string
	keyrings               []string
	requireSigned          bool
	allowUnsigned          bool

	payloadKeyFile, x25519KeyFile string
	requireEncrypted              bool

	channelKey       string
	inviteOnly       bool
	accounts         []string // SERVICE=ACCOUNT
	accountsSameName bool
}

func (t *trustFlags) add(fs *pflag.FlagSet, signing bool) {
	if signing {
		fs.StringVar(&t.hmacKeyFile, "hmac-key-file", "", "sign with the mesh HMAC key in this key file (it is trusted too)")
		bindEnv(fs, "hmac-key-file", "MESHBOT_HMAC_KEY_FILE")
		fs.StringVar(&t.edKeyFile, "ed25519-key-file", "", "sign with the service's ed25519 private key in this key file (see 'meshbot keygen')")
		bindEnv(fs, "ed25519-key-file", "MESHBOT_ED25519_KEY_FILE")
		fs.BoolVar(&t.allowUnsigned, "allow-unsigned", false, "accepting unsigned envelopes is intended: an unsigned mesh (no warning at start), or a signing node in a mesh moving to signatures")
		bindEnv(fs, "allow-unsigned", "MESHBOT_ALLOW_UNSIGNED")
		fs.StringVar(&t.payloadKeyFile, "payload-key-file", "", "encrypt payloads with the mesh payload key in this key file (it opens them too; see 'meshbot keygen payload')")
		bindEnv(fs, "payload-key-file", "MESHBOT_PAYLOAD_KEY_FILE")
		fs.StringVar(&t.x25519KeyFile, "x25519-key-file", "", "the service's X25519 private key(s) for encrypted DMs: all open, the first encrypts (see 'meshbot keygen x25519', docs/KEYS.md)")
		bindEnv(fs, "x25519-key-file", "MESHBOT_X25519_KEY_FILE")
	}
	fs.StringArrayVar(&t.keyrings, "keyring", nil, "trust the keys in this key file (signature keys, payload keys, X25519 public keys); repeatable")
	bindEnv(fs, "keyring", "MESHBOT_KEYRING")
	fs.BoolVar(&t.requireSigned, "require-signed", false, "reject unsigned envelopes (implied by a signing key, unless --allow-unsigned)")
	bindEnv(fs, "require-signed", "MESHBOT_REQUIRE_SIGNED")
	fs.BoolVar(&t.requireEncrypted, "require-encrypted", false, "reject events, requests and responses whose payload is not encrypted")
	bindEnv(fs, "require-encrypted", "MESHBOT_REQUIRE_ENCRYPTED")
	fs.StringVar(&t.channelKey, "channel-key", "", "the mesh's channel key (+k): join with it, and set it on channels found open (prefer the environment variable)")
	bindEnv(fs, "channel-key", "MESHBOT_CHANNEL_KEY")
	fs.BoolVar(&t.inviteOnly, "invite-only", false, "keep the mesh's channels invite-only (+i), open to the accounts of --account")
	bindEnv(fs, "invite-only", "MESHBOT_INVITE_ONLY")
	fs.StringArrayVar(&t.accounts, "account", nil, "bind a service to the account its instances log in with, SERVICE=ACCOUNT: its lines must carry that account; repeatable")
	fs.BoolVar(&t.accountsSameName, "accounts-same-name", false, "bind every service to the account named like it")
	bindEnv(fs, "accounts-same-name", "MESHBOT_ACCOUNTS_SAME_NAME")
}

// load reads the key files. The service of an ed25519 signing key must be
// the node's service: it is returned so that the caller can default to it.
func (t *trustFlags) load() (signer envelope.Signer, keys *envelope.Keyring, keyService string, err error) {
	if t.hmacKeyFile != "" && t.edKeyFile != "" {
		return nil, nil, "", usagef("--hmac-key-file and --ed25519-key-file exclude each other: a node signs with one key")
	}
	if keys, err = loadKeyrings(t.keyrings); err != nil {
		return nil, nil, "", err
	}
	ensure := func() *envelope.Keyring {
		if keys == nil {
			keys = envelope.NewKeyring()
		}
		return keys
	}
	switch {
	case t.hmacKeyFile != "":
		k, err := loadHMACKey(t.hmacKeyFile)
		if err != nil {
			return nil, nil, "", err
		}
		signer = envelope.NewHMACSigner(k.id, k.key)
		ensure().AddHMAC(k.id, k.key)
	case t.edKeyFile != "":
		k, err := loadEd25519Key(t.edKeyFile)
		if err != nil {
			return nil, nil, "", err
		}
		signer = envelope.NewEd25519Signer(k.id, k.priv)
		ensure().AddEd25519(k.id, k.service, k.public())
		keyService = k.service
	}
	if t.requireSigned && keys == nil {
		return nil, nil, "", usagef("--require-signed needs keys to check signatures with: give --keyring (or a signing key file)")
	}
	return signer, keys, keyService, nil
}

// crypter makes the node's Crypter from --payload-key-file and
// --x25519-key-file over keys (made when nil), for service; nil when
// neither is given and the keyring holds no payload keys.
func (t *trustFlags) crypter(service string, keys *envelope.Keyring) (*envelope.Crypter, *envelope.Keyring, error) {
	if t.payloadKeyFile == "" && t.x25519KeyFile == "" && (keys == nil || !keys.HasPayloadKeys()) {
		if t.requireEncrypted {
			return nil, keys, usagef("--require-encrypted needs payload keys: give --payload-key-file (and --x25519-key-file), or a keyring with payload keys")
		}
		return nil, keys, nil
	}
	if keys == nil {
		keys = envelope.NewKeyring()
	}
	c := envelope.NewCrypter(service, keys)
	if t.payloadKeyFile != "" {
		k, err := loadPayloadKey(t.payloadKeyFile)
		if err != nil {
			return nil, nil, err
		}
		if err := keys.AddPayloadKey(k.id, k.key); err != nil {
			return nil, nil, fmt.Errorf("%s: %v", t.payloadKeyFile, err)
		}
		if err := c.UseMeshKey(k.id); err != nil {
			return nil, nil, err
		}
	}
	if t.x25519KeyFile != "" {
		ks, err := loadX25519Keys(t.x25519KeyFile)
		if err != nil {
			return nil, nil, err
		}
		for _, k := range ks {
			if k.service != service {
				return nil, nil, fmt.Errorf("the X25519 key %s in %s is of service %q, not %q", k.id, t.x25519KeyFile, k.service, service)
			}
			if err := c.AddX25519(k.id, k.priv); err != nil {
				return nil, nil, err
			}
			// Our own public key: DMs to our own service use it.
			if err := keys.AddX25519Public(k.id, k.service, k.priv.PublicKey().Bytes()); err != nil {
				return nil, nil, err
			}
		}
	}
	return c, keys, nil
}

// accountBinding reads --account and --accounts-same-name (nil: none).
func (t *trustFlags) accountBinding() (*envelope.AccountBinding, error) {
	if len(t.accounts) == 0 && !t.accountsSameName {
		return nil, nil
	}
	b := &envelope.AccountBinding{Accounts: map[string]string{}, SameName: t.accountsSameName}
	for _, a := range t.accounts {
		svc, acct, ok := strings.Cut(a, "=")
		if !ok || svc == "" || acct == "" {
			return nil, usagef("--account %q: want SERVICE=ACCOUNT", a)
		}
		b.Accounts[svc] = acct
	}
	return b, nil
}

// nodeConfig combines the connection, identity and trust flags.
func nodeConfig(st *state, c *connFlags, id *identityFlags, t *trustFlags) (mesh.Config, error) {
	signer, keys, keyService, err := t.load()
	if err != nil {
		return mesh.Config{}, err
	}
	service := id.service
	if keyService != "" && !id.fs.Changed("service") {
		service = keyService // the key says who we are
	}
	if keyService != "" && keyService != service {
		return mesh.Config{}, fmt.Errorf("the ed25519 key in %s signs for service %q, not %q: set --service %s", t.edKeyFile, keyService, service, keyService)
	}
	crypter, keys, err := t.crypter(service, keys)
	if err != nil {
		return mesh.Config{}, err
	}
	accounts, err := t.accountBinding()
	if err != nil {
		return mesh.Config{}, err
	}
	cfg, err := c.config(st, service, id.instance)
	if err != nil {
		return cfg, err
	}
	cfg.Signer, cfg.Keys, cfg.RequireSigned, cfg.AllowUnsigned = signer, keys, t.requireSigned, t.allowUnsigned
	cfg.Crypter, cfg.RequireEncrypted = crypter, t.requireEncrypted
	cfg.Accounts, cfg.ChannelKey, cfg.InviteOnly = accounts, t.channelKey, t.inviteOnly
	return cfg, nil
}

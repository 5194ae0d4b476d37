package mesh

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/state"
)

// Config configures a Node. Start from DefaultConfig and set at least
// Service; every zero field takes its default.
type Config struct {
	// Server is the IRC server as host:port.
	Server string
	// Servers are more servers of the same network (host:port each): the
	// node moves to the next one when its server dies, falls silent for
	// FailoverAfter, or splits away from most of the mesh, keeping its
	// instance, subscriptions and domains (failover.go).
	Servers []string
	// FailoverAfter is how long a server may say nothing before a node
	// with other Servers leaves it (1 s; it is pinged after a third of
	// that).
	FailoverAfter time.Duration
	// TLS, when set, connects with TLS using this configuration.
	TLS *tls.Config
	// SASLUser and SASLPassword, when set, authenticate with SASL PLAIN.
	SASLUser, SASLPassword string
	// SASLExternal authenticates with SASL EXTERNAL: the server logs the
	// node in to the account its TLS client certificate is registered to
	// (TLS.Certificates; docs/ACCOUNTS.md). SASLPassword stays empty;
	// SASLUser, when set, is the account the node must be logged in to.
	SASLExternal bool
	// ServerPassword is sent with PASS when set.
	ServerPassword string
	// Dial, when set, opens the connection to Server in place of a TCP
	// dial (TLS, when set, still runs over what it returns): a proxy, or
	// the in-memory server of a replay test (meshtest). The context bounds
	// the dial (ConnectTimeout). nil dials TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Namespace names the mesh: topic t is channel #<Namespace>.t.
	Namespace string
	// Service is this instance's service name (required): lower-case
	// letters, digits, '_'; it starts the nick.
	Service string
	// Instance tells instances of a service apart; random when empty.
	Instance string

	// Signer signs every envelope sent; nil sends them unsigned. A node
	// with a Signer needs Keys (holding its own key: its echoes confirm
	// its publishes).
	Signer envelope.Signer
	// RawLog, when set, receives every line read from the server, as
	// received (tags included), one per line: the recorded logs that tests
	// replay (history/rawlog). Writes happen on the connection's reader;
	// use a buffered writer.
	RawLog io.Writer
	// Keys are the trusted keys for verifying received envelopes.
	Keys *envelope.Keyring
	// RequireSigned drops (and counts) unsigned envelopes. A node with a
	// Signer and Keys requires signatures unless AllowUnsigned is set.
	RequireSigned bool
	// AllowUnsigned says that accepting unsigned envelopes is intended:
	// an unsigned mesh (no warning at start), or a signing node that
	// still accepts unsigned ones while a mesh moves to signatures.
	// Without it a node with a Signer requires signatures, and a node
	// without one warns at start that anyone on the server who takes a
	// service's nick can speak for it.
	AllowUnsigned bool
	// MaxEnvelope bounds one envelope, payload included (1 MiB).
	MaxEnvelope int

	// Closed mesh (mesh/closed.go, docs/PROTOCOL.md §4.4–4.7). Every
	// envelope must come from its sender's nick, always. Accounts also
	// binds services to the accounts their instances log in with (SASL):
	// a bound service's lines must carry its account's tag.
	Accounts *envelope.AccountBinding
	// Crypter, when set, encrypts the payload of every event, request and
	// response sent (channels with its mesh key, DMs with the key agreed
	// with the receiving service) and opens those received: make it with
	// envelope.NewCrypter(Service, Keys). RequireEncrypted rejects events,
	// requests and responses whose payload travels in clear.
	Crypter          *envelope.Crypter
	RequireEncrypted bool
	// ChannelKey, when set, keys every channel of the namespace (+k):
	// the node joins with it, and sets it on a channel it finds open
	// while it is a channel operator. InviteOnly makes them invite-only
	// (+i) with an invite exception (+I) for each account of Accounts
	// (needs a server with account extbans, and SASLUser). A node that
	// finds a channel open and cannot close it refuses it (a *JoinError).
	ChannelKey string
	InviteOnly bool

	// History, when set, is where the node reads what its channels
	// carried while it was away (history.NewSource): multicast
	// subscriptions are caught up after a reconnect, and anycast
	// subscriptions resume their group's record when they start. What it
	// reads is verified with Keys and RequireSigned, like live lines.
	History HistorySource

	// WindowLines and WindowBytes bound what is written between two
	// flow-control round trips to the server (100 lines, 32 KiB: InspIRCd
	// reads a client's burst 64 KiB at a time and stalls on more), and
	// MaxWindows how many such windows may be unconfirmed at once (2). An
	// envelope is never split across windows.
	WindowLines, WindowBytes, MaxWindows int
	// QueueLen is the default bound of a subscription's queue (8192
	// events); see Subscribe for the overflow policy.
	QueueLen int
	// RequestWorkers bounds concurrently running request handlers (16);
	// RequestQueue bounds requests waiting for a worker (1024). A request
	// that finds the queue full is answered with CodeOverloaded.
	RequestWorkers, RequestQueue int
	// WaitWhilePaused makes Publish to a paused topic (its channel +m)
	// wait until a channel operator resumes it (-m), or the publish's
	// context ends, instead of failing at once with ErrPaused.
	WaitWhilePaused bool
	// RequestTimeout is the deadline of a Request whose context has none
	// (10 s).
	RequestTimeout time.Duration

	// KeepAlive is how often the server is pinged when idle (2 s);
	// KeepAliveTimeout how long without any line from the server before
	// the connection is declared dead and re-established (6 s).
	KeepAlive, KeepAliveTimeout time.Duration
	// ConnectTimeout bounds dialling and registration (10 s).
	ConnectTimeout time.Duration
	// BackfillTimeout bounds catching up one subscription after a
	// reconnect, or one anycast resume (with History; 2 min).
	BackfillTimeout time.Duration
	// CommitInterval is how often an anycast member proposes its completed
	// prefix as the group's committed offset (5 s; docs/PROTOCOL.md §6.13).
	CommitInterval time.Duration
	// ResumeWindow is how much history an anycast subscription replays
	// when it starts, with History set, if the record holds no
	// committed offset of its group (10 min): events of the group
	// published within it and never completed are completed. With a
	// committed offset the replay starts there (docs/PROTOCOL.md §6.12).
	ResumeWindow time.Duration
	// RetryOnFailedConnect makes Connect keep trying (until its context
	// ends) when the first connection attempt fails; by default Connect
	// returns that error at once.
	RetryOnFailedConnect bool
	// ReconnectMin and ReconnectMax bound the exponential back-off
	// between reconnect attempts (100 ms, 5 s); each wait is jittered.
	ReconnectMin, ReconnectMax time.Duration

	// HeartbeatInterval is how often the node beats on the heartbeat
	// channel (1 s). A member is suspected after SuspectAfter of its
	// intervals without a beat (2) and dead after DeadAfter (3).
	HeartbeatInterval       time.Duration
	SuspectAfter, DeadAfter float64
	// Depends names the services this one depends on; they are announced
	// in heartbeats, and WaitForDependencies waits for them.
	Depends []string

	// Domain state (docs/PROTOCOL.md §8). Owns names the domains of state
	// this service owns (each "<service>" or "<service>.<name>", the
	// first segment this Service): the node loads them when it connects
	// and may write them. DomainDepends names domains this service
	// depends on: the node mirrors them, announces them in heartbeats,
	// and WaitForDomains waits for them. MirrorAllDomains mirrors every
	// domain any member announces. DomainWait, when set, makes Connect
	// wait that long for DomainDepends to be available and loaded, and
	// fail with ErrDomainUnavailable (closing the node) when they are not:
	// "exit if a dependency is not there".
	Owns, DomainDepends []string
	MirrorAllDomains    bool
	DomainWait          time.Duration

	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in, for a server
// on 127.0.0.1:6667 and the namespace "mesh".
func DefaultConfig() Config {
	return Config{
		Server:            "127.0.0.1:6667",
		Namespace:         "mesh",
		MaxEnvelope:       envelope.DefaultMaxEnvelope,
		WindowLines:       100,
		WindowBytes:       32 << 10,
		MaxWindows:        2,
		QueueLen:          8192,
		RequestWorkers:    16,
		RequestQueue:      1024,
		RequestTimeout:    10 * time.Second,
		KeepAlive:         2 * time.Second,
		KeepAliveTimeout:  6 * time.Second,
		ConnectTimeout:    10 * time.Second,
		BackfillTimeout:   2 * time.Minute,
		ResumeWindow:      10 * time.Minute,
		CommitInterval:    5 * time.Second,
		ReconnectMin:      100 * time.Millisecond,
		ReconnectMax:      5 * time.Second,
		HeartbeatInterval: time.Second,
		SuspectAfter:      2,
		DeadAfter:         3,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	if c.Server == "" {
		c.Server = d.Server
	}
	if c.Namespace == "" {
		c.Namespace = d.Namespace
	}
	set(&c.MaxEnvelope, d.MaxEnvelope)
	set(&c.WindowLines, d.WindowLines)
	set(&c.WindowBytes, d.WindowBytes)
	set(&c.MaxWindows, d.MaxWindows)
	set(&c.QueueLen, d.QueueLen)
	set(&c.RequestWorkers, d.RequestWorkers)
	set(&c.RequestQueue, d.RequestQueue)
	setD(&c.RequestTimeout, d.RequestTimeout)
	setD(&c.KeepAlive, d.KeepAlive)
	setD(&c.KeepAliveTimeout, d.KeepAliveTimeout)
	setD(&c.ConnectTimeout, d.ConnectTimeout)
	setD(&c.BackfillTimeout, d.BackfillTimeout)
	setD(&c.ResumeWindow, d.ResumeWindow)
	setD(&c.CommitInterval, d.CommitInterval)
	setD(&c.ReconnectMin, d.ReconnectMin)
	setD(&c.ReconnectMax, d.ReconnectMax)
	setD(&c.FailoverAfter, time.Second)
	setD(&c.HeartbeatInterval, d.HeartbeatInterval)
	if c.SuspectAfter <= 0 {
		c.SuspectAfter = d.SuspectAfter
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = d.DeadAfter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Signer != nil && c.Keys != nil && !c.AllowUnsigned {
		c.RequireSigned = true // a signed mesh hears only signatures (closed.go)
	}
	return c
}

// validate reports the first problem with c (defaults already applied).
func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return fmt.Errorf("%w: server %q: want host:port", ErrInvalidConfig, c.Server)
	}
	if err := validServers(c.Servers); err != nil {
		return err
	}
	if err := validName("namespace", c.Namespace, false); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if err := validName("service", c.Service, false); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if c.Instance != "" {
		if err := validName("instance", c.Instance, false); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	if c.KeepAliveTimeout <= c.KeepAlive {
		return fmt.Errorf("%w: KeepAliveTimeout (%s) must exceed KeepAlive (%s)", ErrInvalidConfig, c.KeepAliveTimeout, c.KeepAlive)
	}
	if c.ReconnectMax < c.ReconnectMin {
		return fmt.Errorf("%w: ReconnectMax (%s) is below ReconnectMin (%s)", ErrInvalidConfig, c.ReconnectMax, c.ReconnectMin)
	}
	if c.DeadAfter <= c.SuspectAfter {
		return fmt.Errorf("%w: DeadAfter (%g) must exceed SuspectAfter (%g)", ErrInvalidConfig, c.DeadAfter, c.SuspectAfter)
	}
	for _, d := range c.Depends {
		if err := validName("dependency", d, false); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	for _, d := range append(slices.Clone(c.Owns), c.DomainDepends...) {
		if err := state.ValidDomain(d); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	for _, d := range c.Owns {
		if state.Owner(d) != c.Service {
			return fmt.Errorf("%w: Owns %q: a domain is owned by the service its first segment names (%s), not %s", ErrInvalidConfig, d, state.Owner(d), c.Service)
		}
	}
	if err := c.validateClosed(); err != nil {
		return err
	}
	if c.RequireSigned && c.Keys == nil {
		return fmt.Errorf("%w: RequireSigned without Keys would reject every envelope", ErrInvalidConfig)
	}
	return nil
}

package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/mesh"
)

// node is what a console uses of its mesh node (a *mesh.Node): the public
// API only.
type node interface {
	Service() string
	Instance() string
	Nick() string
	Namespace() string
	Connected() bool
	OnText(func(mesh.Text)) (stop func())
	Notice(ctx context.Context, target string, lines ...string) error
	IsIRCOperator(ctx context.Context, nick string) (bool, error)
	AllMembers() []heartbeat.Member
	Methods() []string
	Subscriptions() []mesh.SubscriptionInfo
	Paused() []mesh.Pause
	Kicks() []mesh.Kick
	Stats() mesh.Stats
	Started() time.Time
	LastConnectionError() error
	Domains() []*mesh.Domain
	Request(ctx context.Context, service, method string, payload []byte, opts ...mesh.RequestOption) ([]byte, error)
	Publish(ctx context.Context, topic string, payload []byte, opts ...mesh.PublishOption) (mesh.PubAck, error)
	Observe(ctx context.Context, topic string, fn func(mesh.Observation), opts ...mesh.ObserveOption) (*mesh.Observer, error)
}

// Limits of a console's work.
const (
	// maxLines bounds the lines of one answer.
	maxLines = 12
	// maxSlow bounds the slow commands (req, pub, claims, state) running
	// at once; more are refused as busy.
	maxSlow = 4
	// noticeTimeout bounds the sending of one answer.
	noticeTimeout = 5 * time.Second
	// Rate limits: per asker 4 commands at once then one every 2 s; all
	// askers together 20 at once then 5 a second; 256 askers remembered.
	perBurst, perEvery = 4, 2 * time.Second
	allBurst, allEvery = 20, 200 * time.Millisecond
	maxAskers          = 256
)

// Console answers the people who talk to one node.
type Console struct {
	n      node
	cfg    Config
	log    *slog.Logger
	lim    *limiter
	slow   chan struct{} // a token per slow command running
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   func()
	once   sync.Once
	// now is the clock (tests set it).
	now func() time.Time
}

// Attach starts the console of n: from now on n answers, in a few legible
// lines, the commands people send it by private message, or with '!' in
// one of its mesh channels (see the package doc), until Stop is called or
// n closes. A node has one console: attaching another replaces it.
func Attach(n *mesh.Node, cfg Config) *Console { return attach(n, cfg) }

func attach(n node, cfg Config) *Console {
	cfg = cfg.withDefaults()
	c := &Console{n: n, cfg: cfg, lim: newLimiter(perBurst, perEvery, allBurst, allEvery, maxAskers),
		slow: make(chan struct{}, maxSlow), now: time.Now}
	c.log = cfg.Logger.With("console", n.Nick())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.stop = n.OnText(c.onText)
	return c
}

// Stop ends the console: nothing more is answered, and the commands
// running are cancelled and waited for. Safe to call more than once.
func (c *Console) Stop() {
	c.once.Do(func() {
		c.stop()
		c.cancel()
		c.wg.Wait()
	})
}

// onText takes one text addressed to the node (on the node's text
// goroutine: it never waits for a slow command).
func (c *Console) onText(tx mesh.Text) {
	line, brief := tx.Text, false
	if tx.Channel != "" {
		var forMe bool
		line, forMe, brief = Addressed(tx.Text, c.n.Nick(), c.n.Service())
		if !forMe {
			return
		}
	}
	ok, warn := c.lim.allow(tx.From, c.now())
	if !ok {
		if warn {
			c.answer(tx, false, fmt.Sprintf("slow down: %d commands at once, then one every %v; try again in a moment", perBurst, perEvery))
		}
		return
	}
	cmd, err := c.parse(line)
	if err != nil {
		if brief && errors.Is(err, ErrUnknown) {
			return
		}
		c.answer(tx, brief, err.Error()+" (help lists the commands)")
		return
	}
	switch cmd.Name {
	case "req", "pub", "claims", "state":
		// Slow: on a goroutine of its own (the trust check too: it may
		// ask the server), a few at a time.
		select {
		case c.slow <- struct{}{}:
		default:
			c.answer(tx, brief, "busy: other commands are running; try again in a moment")
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { <-c.slow }()
			c.exec(tx, brief, cmd)
		}()
	default:
		c.exec(tx, brief, cmd)
	}
}

// exec checks that the asker may run cmd, runs it and answers.
func (c *Console) exec(tx mesh.Text, brief bool, cmd Command) {
	sp, _ := lookup(cmd.Name)
	if sp.acts || c.cfg.Restricted {
		if who, ok := c.trusted(tx); !ok {
			c.log.Warn("console command refused", "from", tx.From, "account", tx.Account, "command", cmd.Name)
			c.answer(tx, brief, refusal(cmd.Name, sp.acts, who))
			return
		}
	}
	c.log.Info("console command", "from", tx.From, "account", tx.Account, "channel", tx.Channel, "command", cmd.Name, "args", cmd.Args)
	c.answer(tx, brief, c.run(cmd)...)
}

// parse reads a command line; a line starting with one of the node's own
// methods is a req to its own service ("quote coffee" is "req pricing
// quote coffee" on pricing).
func (c *Console) parse(line string) (Command, error) {
	cmd, err := Parse(line)
	if !errors.Is(err, ErrUnknown) {
		return cmd, err
	}
	first, rest := cutField(strings.TrimSpace(line))
	for _, m := range c.n.Methods() {
		if m == first {
			return Command{Name: "req", Args: []string{c.n.Service(), m}, Payload: strings.TrimSpace(rest)}, nil
		}
	}
	return cmd, err
}

// run runs cmd and returns the answer's lines.
func (c *Console) run(cmd Command) []string {
	switch cmd.Name {
	case "help":
		return c.help(cmd.Args)
	case "status":
		return c.status()
	case "members":
		return c.members(cmd.Args)
	case "methods":
		return c.methods(cmd.Args)
	case "req":
		return c.request(cmd)
	case "pub":
		return c.publish(cmd)
	case "claims":
		return c.claims(cmd.Args)
	case "state":
		return c.state(cmd.Args)
	}
	return []string{"unknown command " + cmd.Name}
}

// trusted reports whether the sender of tx may act, and how they were
// seen (for the refusal).
func (c *Console) trusted(tx mesh.Text) (who string, ok bool) {
	switch {
	case c.cfg.TrustEveryone:
		return "anyone (TrustEveryone)", true
	case c.cfg.allowed(tx.Account):
		return "account " + tx.Account, true
	case tx.ChannelOperator && !c.cfg.NoChannelOperators:
		return "channel operator", true
	}
	if !c.cfg.NoIRCOperators {
		ctx, cancel := context.WithTimeout(c.ctx, 3*time.Second)
		oper, err := c.n.IsIRCOperator(ctx, tx.From)
		cancel()
		if err == nil && oper {
			return "IRC operator", true
		}
	}
	if tx.Account != "" {
		return "logged in as " + tx.Account, false
	}
	return "not logged in", false
}

// refusal is the answer to an untrusted person.
func refusal(name string, acts bool, who string) string {
	what := "acts on the mesh"
	if !acts {
		what = "is restricted on this mesh"
	}
	return fmt.Sprintf("refused: %s %s; it is for IRC operators, channel operators of the mesh's channels and the mesh's allowed accounts (you: %s)", name, what, who)
}

// answer sends lines to the asker by NOTICE: at most maxLines, or the
// first one alone when brief (every bot of a channel answers).
func (c *Console) answer(tx mesh.Text, brief bool, lines ...string) {
	if len(lines) == 0 {
		return
	}
	if brief {
		lines = lines[:1]
	}
	if len(lines) > maxLines {
		more := len(lines) - maxLines + 1
		lines = append(lines[:maxLines-1:maxLines-1], fmt.Sprintf("… %d more lines", more))
	}
	ctx, cancel := context.WithTimeout(c.ctx, noticeTimeout)
	defer cancel()
	if err := c.n.Notice(ctx, tx.From, lines...); err != nil {
		c.log.Debug("console answer not sent", "to", tx.From, "err", err)
	}
}

// show makes text safe and short enough for a line.
func show(s string, max int) string { return envelope.Legible(s, max) }

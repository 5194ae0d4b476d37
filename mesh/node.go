package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lrstanley/girc"
	"github.com/meshbot/meshbot/envelope"
)

// Node is one instance of a service, connected to the IRC server as one bot.
// Its methods are safe for concurrent use. Create it with Connect; stop it
// with Close.
type Node struct {
	cfg    Config
	log    *slog.Logger
	client *girc.Client

	incarnation uint64
	writer      *writer
	hb          *membership
	splits      netsplits // netsplits and netjoins (netsplit.go)
	failover    failover  // the servers of Config.Servers (failover.go)
	domains     *domains  // domain state (state_mirror.go)
	closed      *closedState
	talk        *talk // people: channel operators and modes, kicks, text, CTCP (modes.go, text.go)
	stats       counters

	// Reader-owned (the tap runs onLine for one line at a time).
	dec   *envelope.Decoder
	lines sync.Mutex // held while a connection's lines are handled (tap.go)

	mu          sync.Mutex
	instance    string
	nick        string
	prefix      string            // our nick!~user@host as others see it, once known
	tap         *tapConn          // the current connection's tap
	caps        map[string]bool   // capabilities acknowledged on it
	isupport    map[string]string // its ISUPPORT tokens
	conn        *connState        // current connection; nil while down
	connGen     uint64
	connected   chan struct{}            // closed while a connection is ready
	chMu        sync.Mutex               // one ChatHistory request at a time
	chatHistory *chatHistory             // the one in flight, under mu
	lastRecv    atomic.Int64             // unix nanos of the last line from the server
	subs        map[string]*subscription // by channel, lower case
	pubChans    map[string]chan struct{} // channels joined to publish; closed once first joined
	observers   map[string][]*Observer   // by channel, lower case
	methods     map[string]RequestHandler
	pending     map[envelope.ID]*pendingRequest
	members     map[string]string          // heartbeat channel members: lower-case nick → nick
	presence    chan struct{}              // closed and replaced when members change
	joins       map[string][]chan struct{} // channel → waiters for our JOIN
	inChannel   map[string]bool            // channels we are in on this connection

	rejMu   sync.Mutex
	rawMu   sync.Mutex        // RawLog writes
	listMu  sync.Mutex        // one LIST at a time
	listing *listing          // guarded by mu
	rejBy   map[string]uint64 // rejected lines by reason

	reqQueue  chan *inbound
	reqStop   chan struct{} // closed when requests stop being taken
	reqCtx    context.Context
	reqCancel context.CancelFunc
	reqWG     sync.WaitGroup

	lastErr  atomic.Pointer[error] // why the last connection attempt ended
	firstErr chan error            // the first attempt's failure, for Connect
	outage   outage                // one report per outage (connerr.go)

	closing   atomic.Bool // no new incoming events or requests
	sealed    atomic.Bool // no new publishes or requests from this node
	closeOnce sync.Once
	done      chan struct{} // closed when Close starts
	wg        sync.WaitGroup
}

// connState is what a connection learned about the server.
type connState struct {
	tap     *tapConn
	nickLen int
	gen     uint64
	carrier envelope.Carrier
	echo    bool
	lineLen int
	chanLen int
	prefix  string // our nick!user@host as others see it (best knowledge)
}

// Connect validates cfg, connects to the server and returns once the node is
// registered and has joined the namespace's heartbeat channel, or an error
// when ctx ends first. The node then keeps itself connected until Close.
func Connect(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	fixedInstance := cfg.Instance != ""
	if cfg.Instance == "" {
		cfg.Instance = randomInstance()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	nick, err := Nick(cfg.Service, cfg.Instance, 0)
	if err != nil {
		return nil, err
	}
	host, portStr, _ := net.SplitHostPort(cfg.Server)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("%w: port %q", ErrInvalidConfig, portStr)
	}
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger.With("service", cfg.Service, "instance", cfg.Instance),
		incarnation: uint64(time.Now().UnixNano()),
		instance:    cfg.Instance,
		nick:        nick,
		connected:   make(chan struct{}),
		subs:        map[string]*subscription{},
		pubChans:    map[string]chan struct{}{},
		observers:   map[string][]*Observer{},
		methods:     map[string]RequestHandler{},
		pending:     map[envelope.ID]*pendingRequest{},
		members:     map[string]string{},
		presence:    make(chan struct{}),
		joins:       map[string][]chan struct{}{},
		inChannel:   map[string]bool{},
		caps:        map[string]bool{},
		isupport:    map[string]string{},
		reqQueue:    make(chan *inbound, cfg.RequestQueue),
		reqStop:     make(chan struct{}),
		rejBy:       map[string]uint64{},
		firstErr:    make(chan error, 1),
		done:        make(chan struct{}),
		closed:      newClosedState(),
		talk:        newTalk(),
	}
	n.closed.fixedInstance = fixedInstance
	dc := n.decoderConfig() // closed.go: the node's trust
	dc.Guard = envelope.NewGuard(0, 0)
	n.dec = envelope.NewDecoder(dc)
	n.warnOpen()
	gcfg := girc.Config{
		Server:     host,
		Port:       port,
		ServerPass: cfg.ServerPassword,
		Nick:       nick,
		User:       cfg.Service,
		Name:       "meshbot " + cfg.Service + " " + cfg.Instance,
		// TLS is done by the tap's dialer, below girc.
		AllowFlood: true, // the server is configured for bots; we pace with windows
		DisableSTS: true,
		// echo-message is the publish confirm; girc requests a cap only
		// when the server offers it, and only from its known list plus
		// these, so a server's poison caps are never requested.
		// draft/event-playback: CHATHISTORY answers carry joins and parts
		// as such, not as PRIVMSGs from a history bot.
		SupportedCaps:     map[string][]string{"echo-message": nil, "draft/event-playback": nil},
		PingDelay:         0,               // the node runs its own keep-alive
		HandleNickCollide: n.onNickCollide, // nick.go
	}
	gcfg.SASL = cfg.saslMech() // sasl.go: PLAIN, EXTERNAL or none
	n.reqCtx, n.reqCancel = context.WithCancel(context.Background())
	n.client = girc.New(gcfg)
	n.writer = newWriter(n)
	n.initMembership()
	n.domains = newDomains(n)

	n.initFailover()
	if len(n.failover.servers) > 1 {
		n.wg.Add(1)
		go n.watchServer()
	}
	n.wg.Add(4)
	go n.heartbeatLoop()
	go n.connLoop()
	go n.writer.run()
	go n.keepAlive()
	for range cfg.RequestWorkers {
		n.reqWG.Add(1)
		go n.requestWorker()
	}

	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	// Give up at once when an attempt fails for good (connerr.go).
	go n.watchFirstAttempts(cctx, cancel)
	if err := n.waitConnected(cctx); err != nil {
		n.closeFailed()
		if last := n.lastErr.Load(); last != nil {
			return nil, fmt.Errorf("mesh: connecting to %s: %w: %w", cfg.Server, ErrDisconnected, *last)
		}
		return nil, fmt.Errorf("mesh: connecting to %s: %w", cfg.Server, err)
	}
	if err := n.domains.start(ctx); err != nil {
		n.closeFailed()
		return nil, err
	}
	return n, nil
}

// failedCloseTimeout bounds the Close of a node whose Connect failed: what
// it had queued can only have gone out on a connection that is gone, and
// a caller waiting on Connect must not wait for confirms that never come.
const failedCloseTimeout = 2 * time.Second

// closeFailed closes a node whose Connect failed, within failedCloseTimeout.
func (n *Node) closeFailed() {
	ctx, cancel := context.WithTimeout(context.Background(), failedCloseTimeout)
	defer cancel()
	_ = n.Close(ctx)
}

// randomInstance returns a random [a-z0-9]{6}.
func randomInstance() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, instanceLen)
	for i := range b {
		v, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

// newNick picks a fresh instance id after a nick collision.
func (n *Node) newNick() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.instance = randomInstance()
	nick, err := Nick(n.cfg.Service, n.instance, 0)
	if err != nil {
		return ""
	}
	n.nick = nick
	n.log.Info("nick in use, picked another", "nick", nick)
	return nick
}

// Service returns the service name.
func (n *Node) Service() string { return n.cfg.Service }

// Instance returns the instance id (it changes if the nick collided).
func (n *Node) Instance() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.instance
}

// Nick returns the node's IRC nick.
func (n *Node) Nick() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nick
}

// Namespace returns the mesh namespace.
func (n *Node) Namespace() string { return n.cfg.Namespace }

func (n *Node) sender() envelope.Sender {
	return envelope.Sender{Service: n.cfg.Service, Instance: n.Instance(), Incarnation: n.incarnation}
}

// waitConnected blocks until a connection is ready.
func (n *Node) waitConnected(ctx context.Context) error {
	for {
		n.mu.Lock()
		ch, up := n.connected, n.conn != nil
		n.mu.Unlock()
		if up {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrDisconnected, context.Cause(ctx))
		case <-n.done:
			return ErrClosed
		}
	}
}

// Connected reports whether the node is connected, registered and in all
// its channels.
func (n *Node) Connected() bool { return n.current() != nil }

// current returns the ready connection, or nil.
func (n *Node) current() *connState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.conn
}

// connLoop keeps the node connected: connect, run until the connection
// drops, back off with jitter, repeat, until Close.
func (n *Node) connLoop() {
	defer n.wg.Done()
	backoff := n.cfg.ReconnectMin
	for !n.closing.Load() {
		started := time.Now()
		n.lastRecv.Store(started.UnixNano())
		err := n.client.DialerConnect(tapDialer{n: n})
		n.retireTap() // its reader may still be handling lines girc gave up on (tap.go)
		if err == nil {
			err = errors.New("connection closed")
		}
		err = n.explainAttempt(err, started) // what happened, in words (connerr.go)
		n.lastErr.Store(&err)
		if !n.untried() { // with servers of the list untried, not Connect's error yet
			select {
			case n.firstErr <- err: // only the first attempt's error fits
			default:
			}
		}
		n.onDisconnect(err)
		if n.closing.Load() {
			return
		}
		if time.Since(started) > n.cfg.ReconnectMax {
			backoff = n.cfg.ReconnectMin
		}
		wait := backoff/2 + mrand.N(backoff/2+1)
		if n.failoverNext() { // another server, not tried yet: at once
			wait = mrand.N(n.cfg.ReconnectMin / 4)
		} else if len(n.failover.servers) > 1 {
			wait = min(wait, n.cfg.FailoverAfter) // with several servers, one is soon back
		}
		if !n.attemptFailed(err, wait) { // reports it once per outage (connerr.go)
			<-n.done // nothing to retry: Connect fails and closes the node
			return
		}
		select {
		case <-time.After(wait):
		case <-n.done:
			return
		}
		backoff = min(backoff*2, n.cfg.ReconnectMax)
	}
}

func (n *Node) onDisconnect(err error) {
	n.mu.Lock()
	was := n.conn != nil
	n.conn = nil
	if was {
		// Callers waiting for a connection hold the open channel: it is
		// replaced only once closed (an attempt that never got ready
		// keeps it, else those callers would wait forever).
		n.connected = make(chan struct{})
	}
	clear(n.members)
	clear(n.inChannel)
	n.presenceChangedLocked()
	n.mu.Unlock()
	n.onQuitClosed("") // closed.go: channel operators are per connection
	if was {
		n.log.Info("connection closed", "err", err)
	}
	n.writer.disconnected()
	n.connectionChanged(false, time.Now())
	if n.gapDue() { // one gap per outage, not per failed attempt
		n.observeGaps(time.Now())
	}
	n.suspendMembership()
	n.failPendingTargets("")
}

// onConnected runs when registration is complete: learn the server, then
// join every channel and mark the connection ready once the joins are
// confirmed.
func (n *Node) onConnected() {
	n.failoverRegistered()
	st := &connState{carrier: envelope.CarrierBody, lineLen: 512, chanLen: defChanLen, nickLen: defNickLen}
	n.mu.Lock()
	if n.caps["message-tags"] {
		st.carrier = envelope.CarrierTag
	}
	st.echo = n.caps["echo-message"]
	atoi := func(k string) int { v, _ := strconv.Atoi(n.isupport[k]); return v }
	if v := atoi("LINELEN"); v >= 512 {
		st.lineLen = v
	}
	if v := atoi("CHANNELLEN"); v > 0 {
		st.chanLen = v
	}
	if v := atoi("NICKLEN"); v > 0 {
		st.nickLen = v
	}
	st.tap = n.tap
	nick := n.nick
	n.prefix = ""
	n.connGen++
	st.gen = n.connGen
	channels := []string{HeartbeatChannel(n.cfg.Namespace)}
	for ch := range n.subs {
		channels = append(channels, ch)
	}
	for ch := range n.pubChans {
		if n.subs[ch] == nil {
			channels = append(channels, ch)
		}
	}
	for ch := range n.observers {
		if n.subs[ch] == nil && n.pubChans[ch] == nil {
			channels = append(channels, ch)
		}
	}
	n.mu.Unlock()
	channels = n.notKicked(channels) // modes.go: topics an operator removed the node from
	st.prefix = nick + "!~" + n.cfg.Service + "@" + hostGuess
	n.log.Info("connected", "nick", nick, "carrier", st.carrier, "echo", st.echo, "linelen", st.lineLen)

	// Join everything, then wait for our own JOIN of each in a goroutine
	// (this runs on the event loop, which must keep reading).
	waits := make([]chan struct{}, 0, len(channels))
	for _, ch := range channels {
		waits = append(waits, n.expectJoin(ch))
	}
	n.sendJoin(channels...) // join.go: with the mesh's channel key
	n.wg.Add(1)             // connLoop holds the group open while this runs
	go func() {
		defer n.wg.Done()
		timeout := time.After(n.cfg.ConnectTimeout)
		for i, w := range waits {
			select {
			case <-w:
				if err := n.joinResult(channels[i]); err != nil && n.joinFatal(channels[i], err) {
					return
				}
			case <-timeout:
				n.log.Error("server did not confirm joins; reconnecting", "channel", channels[i])
				n.client.Close()
				return
			case <-n.done:
				return
			}
		}
		n.mu.Lock()
		// The connection may have ended while this waited (its JOINs came,
		// then it dropped): onDisconnect cleared inChannel.
		if n.connGen != st.gen || n.client == nil || !n.inChannel[strings.ToLower(channels[0])] {
			n.mu.Unlock()
			return
		}
		if n.prefix != "" {
			st.prefix = n.prefix
		}
		n.conn = st
		close(n.connected)
		n.mu.Unlock()
		n.resumeMembership()
		n.writer.connected(st)
		n.beatSoon()
		n.connectionChanged(true, time.Now())
	}()
}

// hostGuess stands for our host in the line budget until the server shows
// it (in our own JOIN): the longest a host can be on these servers.
var hostGuess = strings.Repeat("h", 63)

// expectJoin returns a channel closed once we are in ch (at once if we
// already are: the server ignores a JOIN of a channel one is in).
func (n *Node) expectJoin(ch string) chan struct{} {
	w := make(chan struct{})
	key := strings.ToLower(ch)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inChannel[key] {
		close(w)
		return w
	}
	n.joins[key] = append(n.joins[key], w)
	return w
}

// onLine sees every line from the server, in order, on the goroutine that
// reads the connection (the tap). It never blocks on user code. It reports
// whether girc needs the line too: girc gets everything but the mesh
// traffic.
func (n *Node) onLine(l *line) bool {
	n.lastRecv.Store(time.Now().UnixNano())
	n.stats.linesIn.Add(1)
	if n.onChatHistory(l) {
		return false
	}
	if l.cmd != "PRIVMSG" && n.closedLine(l) { // closed.go: a join refusal
		return true
	}
	if l.cmd != "PRIVMSG" {
		n.talkLine(l) // modes.go: channel operators and modes, invites, WHOIS
	}
	switch l.cmd {
	case "PRIVMSG":
		n.onPrivmsg(l)
		return false
	case "PONG":
		if tok := l.last(); len(tok) > 1 && tok[0] == 'w' {
			n.writer.pong(tok)
			return false
		}
		return true
	case "001":
		n.onWelcome(l)
	case "005":
		n.onISupport(l)
	case "CAP":
		n.onCap(l)
	case "376", "422": // end of MOTD, or none: registration is complete
		n.onConnected()
	case "JOIN":
		if strings.EqualFold(l.nick, n.ownNick()) {
			n.learnPrefix(l)
		} else {
			n.memberJoined(l) // back from a split (netsplit.go)
		}
	case "366": // end of NAMES after our JOIN: joined (closed channels: once their modes are checked), members known
		n.onEndOfNames(l.param(1))
	case "322", "323": // LIST entry, end of LIST
		n.onList(l)
	case "401", "403", "404", "417", "442", "482":
		// An error about a target we wrote to: refuse the line it was for.
		if len(l.params) > 1 {
			n.writer.refused(refusal{target: l.params[1], text: l.cmd + " " + strings.Join(l.params[1:], " ")})
			if l.cmd == "401" {
				n.failPendingTargets(l.params[1])
			}
		}
	case "PART", "KICK":
		n.onLeave(l)
	case "QUIT":
		n.dec.Forget(l.nick)
		n.failPendingTargets(l.nick)
		n.memberQuit(l.nick, l.last()) // a split's QUIT: unreachable (netsplit.go)
	case "NICK":
		if strings.EqualFold(l.nick, n.ownNick()) {
			n.mu.Lock()
			n.nick = l.last()
			n.mu.Unlock()
		} else {
			n.dec.Forget(l.nick)
			n.failPendingTargets(l.nick)
			n.hb.mu.Lock()
			n.hb.view.Renamed(l.nick, l.last())
			n.hb.mu.Unlock()
		}
	}
	n.trackPresence(l)
	return true
}

// ownNick is our nick on the current connection.
func (n *Node) ownNick() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nick
}

// onWelcome: registered; the first parameter is our nick.
func (n *Node) onWelcome(l *line) {
	n.mu.Lock()
	n.nick = l.param(0)
	n.mu.Unlock()
}

// onISupport reads the server's limits (005 tokens).
func (n *Node) onISupport(l *line) {
	if len(l.params) < 2 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, tok := range l.params[1 : len(l.params)-1] {
		k, v, _ := strings.Cut(tok, "=")
		n.isupport[strings.ToUpper(k)] = v
	}
}

// onCap tracks the capabilities the server acknowledged (girc negotiates
// them; the node needs to know the outcome in line order).
func (n *Node) onCap(l *line) {
	sub := strings.ToUpper(l.param(1))
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range strings.Fields(l.last()) {
		switch sub {
		case "ACK", "NEW":
			if sub == "ACK" {
				if strings.HasPrefix(c, "-") {
					delete(n.caps, c[1:])
				} else {
					n.caps[c] = true
				}
			}
		case "DEL":
			delete(n.caps, c)
		}
	}
}

// learnPrefix records how others see us (from our own JOIN), to size lines
// from it. The "~" is always counted: some servers add it for receivers.
func (n *Node) learnPrefix(l *line) {
	if l.host == "" {
		return
	}
	n.mu.Lock()
	n.prefix = l.nick + "!~" + strings.TrimPrefix(l.user, "~") + "@" + l.host
	n.mu.Unlock()
}

func (n *Node) joined(channel string) {
	key := strings.ToLower(channel)
	n.mu.Lock()
	n.inChannel[key] = true
	ws := n.joins[key]
	delete(n.joins, key)
	n.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

func (n *Node) onLeave(l *line) {
	if len(l.params) == 0 {
		return
	}
	who := l.nick
	if l.cmd == "KICK" && len(l.params) > 1 {
		who = l.params[1]
	}
	if strings.EqualFold(who, n.ownNick()) {
		if l.cmd == "KICK" && n.kickedOut(l.params[0], l.nick, l.last()) {
			return // an operator removed the node from a topic: it stays out (modes.go)
		}
		// We left, were kicked or parted by the server: rejoin if still
		// subscribed.
		key := strings.ToLower(l.params[0])
		n.mu.Lock()
		delete(n.inChannel, key)
		_, sub := n.subs[key]
		_, pub := n.pubChans[key]
		_, obs := n.observers[key]
		keep := sub || pub || obs || strings.EqualFold(l.params[0], HeartbeatChannel(n.cfg.Namespace))
		n.mu.Unlock()
		if keep {
			n.sendJoin(l.params[0])
		}
		return
	}
	if strings.EqualFold(l.params[0], HeartbeatChannel(n.cfg.Namespace)) {
		n.failPendingTargets(who)
		n.memberGone(who, strings.ToLower(l.cmd)+": "+l.last())
	}
}

// countReject counts a rejected line by reason.
func (n *Node) countReject(reason string) {
	n.rejMu.Lock()
	n.rejBy[reason]++
	n.rejMu.Unlock()
}

// onPrivmsg decodes a mesh line and routes the envelope.
func (n *Node) onPrivmsg(l *line) {
	if l.nick == "" || len(l.params) < 2 {
		return
	}
	now := time.Now()
	target, text := l.params[0], l.last()
	echo := strings.EqualFold(l.nick, n.ownNick())
	if echo && !strings.HasPrefix(target, "#") {
		return // the echo of our own request or response: nothing waits for it (routeDirect drops it)
	}
	observed := strings.HasPrefix(target, "#") && n.hasObservers()
	dl, envs, sealed, mesh, err := n.decodeLine(target, l.nick, l.tags, text, now, observed)
	var serverTime time.Time
	if ts, ok := l.tags["time"]; ok {
		serverTime, _ = time.Parse(time.RFC3339Nano, ts)
	}
	if observed {
		ob := Observation{Time: now, Channel: target, From: l.nick, Tags: maps.Clone(l.tags), Body: text,
			MsgID: l.tags["msgid"], Mesh: mesh, Err: err,
			Carrier: dl.Carrier, Fragment: dl.Fragment, Fragments: dl.Fragments}
		if !serverTime.IsZero() {
			ob.Time = serverTime
		}
		if len(envs) == 0 {
			n.observe(ob)
		}
		for _, de := range dl.Envelopes { // one observation per accepted envelope of a batch
			if de.Err != nil {
				continue
			}
			ob.Envelope, ob.Signature = de.Envelope, de.Signature
			n.observe(ob)
			ob.Part++
			ob.Err = nil
		}
	}
	if !mesh {
		n.stats.notMesh.Add(1)
		n.onHumanText(l, target, text) // text.go: CTCP, and text for the console
		return
	}
	for _, e := range envelope.Errors(err) {
		if echo && errors.Is(e, envelope.ErrDuplicate) {
			continue // our own retransmission, already seen
		}
		n.stats.rejected.Add(1)
		reason := envelope.Reason(e)
		n.countReject(reason)
		n.log.Debug("rejected line", "from", l.nick, "reason", reason, "err", e)
		if !echo && !strings.HasPrefix(target, "#") {
			n.answerRefused(l.nick, e)
		}
	}
	for i, env := range envs {
		in := &inbound{env: env, from: l.nick, target: target, msgid: l.tags["msgid"], echo: echo, serverTime: serverTime}
		if sealed != nil {
			in.sealed = sealed[i]
		}
		if echo {
			n.writer.echoed(env.ID, in.msgid)
		}
		n.route(in)
	}
}

// inbound is a received, verified envelope with its IRC context.
type inbound struct {
	env        *envelope.Envelope
	from       string // sender nick
	target     string // channel or our nick
	msgid      string
	serverTime time.Time
	echo       bool
	sealed     []byte // the envelope as received, where kept (state channels: state_wire.go)
}

// keepAlive pings an idle server and drops a connection that went silent.
func (n *Node) keepAlive() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.KeepAlive / 2)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		if !n.client.IsConnected() {
			continue
		}
		idle := time.Since(time.Unix(0, n.lastRecv.Load()))
		switch {
		case idle > n.cfg.KeepAliveTimeout:
			n.log.Warn("server silent; dropping the connection", "idle", idle)
			n.stats.timeouts.Add(1)
			n.dropConnection()
		case idle > n.cfg.KeepAlive:
			n.client.Cmd.Ping("ka")
		}
	}
}

// Close stops the node gracefully: it stops taking incoming events and
// requests, lets running and queued handlers finish until ctx ends (then
// cancels their contexts), waits for the server to confirm what was
// published (until ctx ends, and at least closeFlush, 1 s, for what is
// queued: the releases of its claims), QUITs and waits for every goroutine. No
// handler runs after Close returns. Safe to call more than once; later calls
// return at once.
func (n *Node) Close(ctx context.Context) error {
	var err error
	n.closeOnce.Do(func() {
		n.closing.Store(true)
		n.mu.Lock()
		subs := make([]*subscription, 0, len(n.subs))
		for _, s := range n.subs {
			subs = append(subs, s)
		}
		n.mu.Unlock()
		for _, s := range subs {
			if e := s.drain(ctx); e != nil && err == nil {
				err = e
			}
		}
		n.drainRequests(ctx)
		n.mu.Lock()
		var obs []*Observer
		for _, list := range n.observers {
			obs = append(obs, list...)
		}
		n.mu.Unlock()
		for _, o := range obs {
			o.Stop()
		}
		n.sealed.Store(true)
		// What is queued goes out before the QUIT even when ctx has ended
		// (it bounded the wait for handlers): the releases of the claims
		// the node held, which others then take over at once with no
		// attempt counted, and the last acks.
		fctx := ctx
		if d, ok := ctx.Deadline(); ctx.Err() != nil || ok && time.Until(d) < closeFlush {
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), closeFlush)
			defer cancel()
		}
		n.writer.flush(fctx)
		close(n.done)
		if n.client.IsConnected() {
			n.client.Quit("meshbot: closing")
		}
		// girc closes the socket once QUIT is written, which ends connLoop;
		// close it ourselves if that does not happen promptly.
		stopped := make(chan struct{})
		go func() { n.wg.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			n.client.Close()
			<-stopped
		}
		n.failPendingTargets("") // waiting requests see the node closed
	})
	return err
}

// closeFlush is how long Close waits at least for the lines queued
// before it to be written.
const closeFlush = time.Second

// setTap installs the tap of a new connection and forgets what the last one
// learned.
func (n *Node) setTap(t *tapConn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tap = t
	clear(n.caps)
	clear(n.isupport)
}

// hasObservers reports whether any channel is observed.
func (n *Node) hasObservers() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.observers) > 0
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/internal/exechandler"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/mesh/meshprom"
)

// servePublishTimeout bounds one periodic publish (the node waits for the
// server through an outage until then).
const servePublishTimeout = 10 * time.Second

func newServeCmd(st *state) *cobra.Command {
	var (
		conn        connFlags
		id          identityFlags
		trust       trustFlags
		subscribe   []string
		handle      []string
		publish     string
		every       time.Duration
		eventsFile  string
		eventsSync  bool
		metricsAddr string
		anycast     bool
		group       string
		lease       time.Duration
		maxAttempts int
		retryDelay  time.Duration
		postURL     string
		catchUp     bool
		owns, needs []string
		needsWait   time.Duration
		execF       execFlags
		consoleF    consoleFlags
	)
	cmd := &cobra.Command{
		Use:   "serve --service SERVICE [--subscribe TOPIC [--anycast]]... [--handle METHOD]...",
		Short: "Run a generic service instance: subscribe, answer requests, publish",
		Long: `Run one instance of SERVICE until interrupted: a generic worker for trying
a mesh out and for tests that run real processes.

  --subscribe TOPIC   receive every event of TOPIC (multicast: every instance
                      of every subscribing service gets each event)
  --handle METHOD     answer requests for METHOD with their payload, prefixed
                      by this instance's nick: "NICK: PAYLOAD"
  --publish TOPIC     publish an event on TOPIC every --every (1s), once the
                      server confirmed the previous one; the payload is
                      {"from":"NICK","seq":N}

With --anycast, the --subscribe topics are anycast instead: each event is
handled by exactly one live instance of the group (the service's name, or
--group NAME, which implies --anycast), which claims it, handles it and
acks it. When the handler fails (see --post), the event is nacked and
retried after --retry-delay (1s), by another instance when there is one;
after --max-attempts (5) failed attempts it goes to the dead-letter topic
TOPIC._dead. A claim holds for --lease (30s) and is renewed while the
handler runs; an instance that dies is taken over from at once (when the
server reports it gone) or within a few heartbeats. Watch it work with
'meshbot claims TOPIC'.

With --owns DOMAIN, the instance holds a domain of state its service owns:
it loads it (from members, else the history service) and keeps it
available while it lives; writes come from 'meshbot state put' (an
instance of the same service) or other instances. With --needs DOMAIN it
waits at start until the domain is available (--needs-wait, 30s) and then
mirrors it; see 'meshbot state'.

With --post URL, every event handled (anycast or not) is POSTed to URL as
JSON, with a 5s timeout:

  {"topic":"T","group":"G","id":"ID","epoch":E,"attempt":A,"token":K,
   "payload":"...","service":"S","instance":"S/I","from":"NICK"}

("payload_base64" instead of "payload" when it is not UTF-8; group, epoch,
attempt and token are those of the anycast claim, 0 and "" for multicast.)
An answer other than 2xx, or no answer in time, fails the handler: the
event is nacked and retried (a 429 or 503 with Retry-After in seconds sets
the retry delay). This is how a worker writes to an external store: the
store should keep the highest token it has seen per id and refuse a lower
one (with 409, say), which fences off an instance that lost its claim
without knowing it.

With --exec COMMAND, a program in any language is the handler of every
event and request (instead of --post, and of the "NICK: PAYLOAD" answer).
By default (--exec-mode each) COMMAND runs with sh -c once per event or
request: the payload on its stdin, its stdout the answer to a request, a
non-zero exit a failed attempt (retried and dead-lettered like any handler
error; the error quotes the end of its stderr), --exec-timeout (30s) the
most it may take. Its environment has MESHBOT_KIND (event or request),
MESHBOT_ID, MESHBOT_TOPIC, MESHBOT_METHOD, MESHBOT_FROM and, for anycast,
MESHBOT_GROUP, MESHBOT_EPOCH, MESHBOT_ATTEMPT and MESHBOT_TOKEN (the claim's
fencing token). With --exec-mode lines COMMAND runs once and reads one JSON
object per line, {"id":"7","kind":"event","envelope_id":"…","topic":"jobs",
"token":N,…,"payload":"…"} ("payload_base64" when not UTF-8), and answers
each with one line, {"id":"7","result":"…"} or {"id":"7","error":"…"}, in
any order: a program that keeps its state and its connections.

Once connected, subscribed and answering, one line is printed on stdout:

  ready NICK

and nothing else is ever printed there: a script or test waits for that
line. Logs go to stderr (see --log-level).

With --events FILE, every received event and request, and every confirmed
publish, is appended to FILE as one JSON object per line:

  {"kind":"event","topic":"T","id":"ID","payload":"...","from":"NICK","at":"TIME"}
  {"kind":"request","method":"M","id":"ID","payload":"...","from":"NICK","at":"TIME"}
  {"kind":"published","topic":"T","id":"ID","payload":"...","from":"NICK","at":"TIME"}

"from" is the sender's nick (this instance's for "published"), "at" when it
was received or confirmed (RFC 3339). A payload that is not UTF-8 is given
as "payload_base64" instead. An anycast event also has "group", "epoch",
"attempt" and "token" (its claim's); with --post, it is recorded once the
POST succeeded, so a failed attempt is not recorded. Each line is written
with one write(2) before the handler returns (and before a request is
answered), so a process killed with SIGKILL has recorded everything it
handled; --events-fsync also flushes each line to the disk. Several
processes may append to one file.

With a fixed --instance, the nick is SERVICE-INSTANCE and a restarted
process is the same instance. SIGINT or SIGTERM stops it gracefully: no new
events are taken, running handlers and unconfirmed publishes get
--drain-timeout to finish, then the bot quits and the exit code is 0.`,
		Example: `  # A worker answering "echo" requests and recording what it gets:
  meshbot serve --service echo --instance 1 --handle echo --events echo.jsonl
  meshbot req echo echo hello                   # prints "echo-1: hello"

  # Two instances of an audit service, each getting every order:
  meshbot serve --service audit --instance 1 --subscribe orders.created &
  meshbot serve --service audit --instance 2 --subscribe orders.created &

  # A publisher, ticking every 200 ms:
  meshbot serve --service clock --publish clock.ticks --every 200ms

  # Two workers sharing the events of jobs (each event handled once), which
  # write each one to a store that checks fencing tokens:
  meshbot serve --service worker --instance 1 --subscribe jobs --anycast --post http://127.0.0.1:8080/jobs &
  meshbot serve --service worker --instance 2 --subscribe jobs --anycast --post http://127.0.0.1:8080/jobs &
  meshbot pub jobs '{"job":1}'; meshbot claims jobs

  # A handler in any language: a shell one-liner per request...
  meshbot serve --service upper --handle upper --exec 'tr a-z A-Z'
  meshbot req upper upper hello                  # prints HELLO
  # ...or a worker per event, with its fencing token:
  meshbot serve --service worker --subscribe jobs --anycast --exec 'echo "job $MESHBOT_ID token $MESHBOT_TOKEN" >> jobs.log'

  # In a script: start it and wait until it is ready.
  meshbot serve --service w --subscribe jobs > w.out & until grep -q ^ready w.out; do sleep 0.1; done`,
		Args: nargs(0, 0, "no arguments (topics and methods are flags)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := &server{st: st, conn: &conn, eventsSync: eventsSync}
			var err error
			if s.topics, err = topicArgs(conn.namespace, subscribe); err != nil {
				return err
			}
			if publish != "" {
				pub, err := topicArgs(conn.namespace, []string{publish})
				if err != nil {
					return err
				}
				s.publish = pub[0]
			}
			if cmd.Flags().Changed("every") && publish == "" {
				return usagef("serve: --every needs --publish TOPIC")
			}
			if every <= 0 {
				return usagef("serve: --every must be positive")
			}
			s.every = every
			s.methods = handle
			if err := s.anycastFlags(cmd.Flags(), anycast, group, lease, maxAttempts, retryDelay); err != nil {
				return err
			}
			if postURL != "" {
				if len(s.topics) == 0 {
					return usagef("serve: --post needs --subscribe TOPIC")
				}
				u, err := url.Parse(postURL)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return usagef("serve: --post %q: want an http:// or https:// URL", postURL)
				}
				s.post = u
				s.client = &http.Client{Timeout: servePostTimeout}
			}
			if s.exec, err = execF.runner(cmd.Flags(), st, s); err != nil {
				return err
			}
			if s.exec != nil {
				defer s.exec.Close() // after the node drained its handlers
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			if cfg.Service == "" {
				return usagef("serve: --service is required")
			}
			if catchUp {
				cfg.History = history.NewSource()
			}
			cfg.Owns, cfg.DomainDepends = owns, needs
			if len(needs) > 0 {
				cfg.DomainWait = needsWait
			}
			if err := s.validate(cfg); err != nil {
				return err
			}
			if eventsFile != "" {
				f, err := os.OpenFile(eventsFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
				if err != nil {
					return fmt.Errorf("--events: %w", err)
				}
				defer func() {
					if err := f.Close(); err != nil {
						st.log.Error("closing the events file", "file", eventsFile, "err", err)
					}
				}()
				s.events = f
			}
			var metrics *metricsServer
			if metricsAddr != "" {
				if metrics, err = listenMetrics(metricsAddr); err != nil {
					return err
				}
				defer metrics.stop()
			}
			ctx := cmd.Context()
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				if ctx.Err() != nil {
					return nil // stopped while starting: a clean stop
				}
				return err
			}
			defer conn.closeNode(st, n) // after the publisher stopped: defers run last first
			defer consoleF.attach(st, n)()
			s.node = n
			s.service, s.instance = n.Service(), n.Instance()
			if metrics != nil {
				if err := metrics.register(meshprom.NewCollector(n)); err != nil {
					return err
				}
				metrics.serve(st)
			}
			if err := s.setup(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			fmt.Fprintf(st.env.stdout, "ready %s\n", n.Nick())
			st.log.Info("serving", "nick", n.Nick(), "server", cfg.Server, "namespace", cfg.Namespace,
				"subscribe", s.topics, "anycast", s.anycast, "group", s.group, "handle", s.methods, "publish", s.publish)
			if s.publish != "" {
				done := make(chan struct{})
				pctx, cancel := context.WithCancel(ctx)
				go func() {
					defer close(done)
					s.publishLoop(pctx)
				}()
				defer func() {
					cancel()
					<-done
				}()
			}
			select {
			case <-ctx.Done():
			case <-n.Stopped(): // another process serves this instance (mesh.ErrDuplicateInstance)
				return n.Err()
			}
			st.log.Info("stopping", "nick", n.Nick(), "drain_timeout", conn.drain)
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "")
	f.Lookup("service").Usage = "service name of this instance (a-z, 0-9, _ and -; required unless an ed25519 key file names it); its nick is SERVICE-INSTANCE"
	f.Lookup("instance").Usage = "instance id (a-z, 0-9): fix it so that a restarted process is the same instance (random when empty)"
	trust.add(f, true)
	consoleF.add(f)
	f.StringArrayVar(&subscribe, "subscribe", nil, "receive the events of `TOPIC` (repeatable)")
	f.BoolVar(&anycast, "anycast", false, "subscribe anycast: each event of the --subscribe topics is handled by one instance of the group")
	f.StringVar(&group, "group", "", "the anycast group `NAME` (default: the service name); implies --anycast")
	f.DurationVar(&lease, "lease", 30*time.Second, "anycast: how long a claim holds without renewal")
	f.IntVar(&maxAttempts, "max-attempts", 5, "anycast: failed attempts before an event goes to the dead-letter topic TOPIC._dead")
	f.DurationVar(&retryDelay, "retry-delay", time.Second, "anycast: how long a failed event waits before its next attempt")
	f.BoolVar(&catchUp, "catch-up", false, "with a history recorder running: after a reconnect receive what was missed, and (anycast) resume what the group left undone")
	f.StringVar(&postURL, "post", "", "POST every handled event as JSON to `URL`; a non-2xx answer fails the handler (see above)")
	f.StringArrayVar(&handle, "handle", nil, "answer requests for `METHOD` with \"NICK: PAYLOAD\" (repeatable)")
	f.StringArrayVar(&owns, "owns", nil, "hold the domain of state `DOMAIN` as its owner (named SERVICE or SERVICE.NAME): load it from the members or the history service, keep it available while this instance lives; write it with 'meshbot state put' (repeatable)")
	f.StringArrayVar(&needs, "needs", nil, "depend on the domain of state `DOMAIN`: mirror it, and wait for it at start (repeatable)")
	f.DurationVar(&needsWait, "needs-wait", 30*time.Second, "how long to wait at start for the --needs domains to be available; then exit with an error naming them")
	f.StringVar(&publish, "publish", "", "publish an event on `TOPIC` every --every")
	f.DurationVar(&every, "every", time.Second, "time between two events of --publish")
	f.StringVar(&eventsFile, "events", "", "append one JSON line per received event, received request and confirmed publish to `FILE`")
	f.BoolVar(&eventsSync, "events-fsync", false, "fsync the events file after each line (survives a machine crash, not just a killed process)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics of this node at http://ADDR/metrics (host:port)")
	execF.add(f)
	return cmd
}

// server is one run of meshbot serve.
type server struct {
	st         *state
	conn       *connFlags
	node       *mesh.Node
	topics     []string
	methods    []string
	publish    string
	every      time.Duration
	eventsSync bool
	// anycast subscribes the topics anycast, in group ("" = the service's)
	// with these options.
	anycast     bool
	group       string
	lease       time.Duration
	maxAttempts int
	retryDelay  time.Duration
	// post is the URL of --post, nil without; client sends to it.
	post   *url.URL
	client *http.Client
	// exec is the handler program of --exec, nil without (serve_exec.go).
	exec *exechandler.Runner
	// service and instance name this instance (in POSTs).
	service, instance string

	mu     sync.Mutex // serializes writes to events
	events *os.File   // nil without --events
}

// validate checks names before connecting, so that a typo fails at once.
func (s *server) validate(cfg mesh.Config) error {
	if _, err := mesh.Nick(cfg.Service, cfg.Instance, 0); err != nil {
		return usageError{err}
	}
	if _, _, ok := mesh.ParseNick(cfg.Service + "-x"); !ok || strings.ContainsAny(cfg.Service, ".ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return usagef("serve: --service %q: want a-z, 0-9, _ and -, starting with a letter or digit", cfg.Service)
	}
	if strings.Trim(cfg.Instance, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return usagef("serve: --instance %q: want a-z and 0-9 only", cfg.Instance)
	}
	seen := map[string]bool{}
	for _, t := range s.topics {
		if seen[t] {
			return usagef("serve: --subscribe %s given twice", t)
		}
		seen[t] = true
	}
	for _, t := range append(append([]string(nil), s.topics...), s.publish) {
		if t == "" {
			continue
		}
		if err := mesh.ValidateTopic(cfg.Namespace, t, 0); err != nil {
			return usageError{err}
		}
	}
	clear(seen)
	for _, m := range s.methods {
		if seen[m] {
			return usagef("serve: --handle %s given twice", m)
		}
		seen[m] = true
	}
	return nil
}

// setup installs the request handlers and subscribes; it returns once every
// subscription's join is confirmed.
func (s *server) setup(ctx context.Context) error {
	nick := s.node.Nick()
	for _, m := range s.methods {
		err := s.node.Handle(m, func(ctx context.Context, r *mesh.Request) ([]byte, error) {
			rec := serveRecord{Kind: "request", Method: r.Method, ID: r.ID.String(), From: r.From}
			if err := s.record(rec, r.Payload); err != nil {
				return nil, mesh.Errorf(mesh.CodeInternal, "recording the request: %v", err)
			}
			s.st.log.Debug("request", "method", r.Method, "id", r.ID.Short(), "from", r.From)
			if s.exec != nil {
				return s.execRequest(ctx, r)
			}
			return append([]byte(s.node.Nick()+": "), r.Payload...), nil
		})
		if err != nil {
			return usageError{fmt.Errorf("--handle %s: %w", m, err)}
		}
	}
	for _, t := range s.topics {
		var err error
		if s.anycast {
			opts := []mesh.SubOption{mesh.ClaimLease(s.lease), mesh.MaxAttempts(s.maxAttempts), mesh.RetryDelay(s.retryDelay)}
			if s.group != "" {
				opts = append(opts, mesh.Group(s.group))
			}
			_, err = s.node.SubscribeAnycast(ctx, t, s.handleEvent, opts...)
		} else {
			_, err = s.node.Subscribe(ctx, t, s.handleEvent)
		}
		if err != nil {
			return fmt.Errorf("%s: subscribing to %s: %w", nick, t, err)
		}
	}
	return nil
}

// handleEvent handles one event: POSTs it (--post), then records it
// (--events).
func (s *server) handleEvent(ctx context.Context, m *mesh.Message) error {
	rec := serveRecord{Kind: "event", Topic: m.Topic, ID: m.ID.String(), From: m.From}
	if c := m.Claim; c != nil {
		rec.Group, rec.Epoch, rec.Attempt, rec.Token = c.Group, c.Epoch, c.Attempt, c.Token
	}
	if s.exec != nil {
		if err := s.execEvent(ctx, m); err != nil {
			s.st.log.Warn("event handler failed", "topic", m.Topic, "id", m.ID.Short(), "epoch", rec.Epoch, "attempt", rec.Attempt, "err", err)
			return err
		}
	}
	if s.post != nil {
		if err := s.postEvent(ctx, m); err != nil {
			s.st.log.Warn("event not posted", "topic", m.Topic, "id", m.ID.Short(), "epoch", rec.Epoch, "attempt", rec.Attempt, "err", err)
			return err
		}
	}
	if err := s.record(rec, m.Payload); err != nil {
		return fmt.Errorf("recording the event: %w", err)
	}
	s.st.log.Debug("event", "topic", m.Topic, "id", m.ID.Short(), "from", m.From, "epoch", rec.Epoch, "attempt", rec.Attempt)
	return nil
}

// anycastFlags checks the anycast flags and keeps them.
func (s *server) anycastFlags(fs *pflag.FlagSet, anycast bool, group string, lease time.Duration, maxAttempts int, retryDelay time.Duration) error {
	if fs.Changed("group") {
		if err := mesh.ValidateGroup(group); err != nil {
			return usagef("serve: --group: %v", err)
		}
		anycast = true
	}
	if !anycast {
		for _, name := range []string{"lease", "max-attempts", "retry-delay"} {
			if fs.Changed(name) {
				return usagef("serve: --%s needs --anycast (or --group)", name)
			}
		}
		return nil
	}
	switch {
	case len(s.topics) == 0:
		return usagef("serve: --anycast needs --subscribe TOPIC")
	case lease <= 0:
		return usagef("serve: --lease must be positive")
	case maxAttempts <= 0:
		return usagef("serve: --max-attempts must be at least 1")
	case retryDelay <= 0:
		return usagef("serve: --retry-delay must be positive")
	}
	s.anycast, s.group, s.lease, s.maxAttempts, s.retryDelay = true, group, lease, maxAttempts, retryDelay
	return nil
}

// postBody is what --post sends for one event.
type postBody struct {
	Topic         string  `json:"topic"`
	Group         string  `json:"group"`
	ID            string  `json:"id"`
	Epoch         uint64  `json:"epoch"`
	Attempt       uint32  `json:"attempt"`
	Token         uint64  `json:"token"`
	Payload       *string `json:"payload,omitempty"`        // when valid UTF-8
	PayloadBase64 string  `json:"payload_base64,omitempty"` // otherwise
	Service       string  `json:"service"`
	Instance      string  `json:"instance"` // service/instance
	From          string  `json:"from"`     // the publisher's nick
}

// servePostTimeout bounds one POST of --post.
const servePostTimeout = 5 * time.Second

// maxRetryAfter bounds the retry delay a Retry-After header asks for.
const maxRetryAfter = time.Hour

// postEvent POSTs the event to s.post; an error unless the answer is 2xx.
func (s *server) postEvent(ctx context.Context, m *mesh.Message) error {
	body := postBody{Topic: m.Topic, ID: m.ID.String(), Service: s.service, Instance: s.service + "/" + s.instance, From: m.From}
	if c := m.Claim; c != nil {
		body.Group, body.Epoch, body.Attempt, body.Token = c.Group, c.Epoch, c.Attempt, c.Token
	}
	body.Payload, body.PayloadBase64 = splitPayload(m.Payload)
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, servePostTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.post.String(), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, with any password in it
		}
		return fmt.Errorf("POST %s: %w", s.post.Redacted(), err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so that the connection is reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("POST %s: %s", s.post.Redacted(), resp.Status)
	if msg := strings.TrimSpace(clean(string(text))); msg != "" {
		err = fmt.Errorf("%w: %s", err, clip(msg, 120))
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if secs, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && secs >= 0 {
			return mesh.RetryAfter(min(time.Duration(secs)*time.Second, maxRetryAfter), err)
		}
	}
	return err
}

// publishLoop publishes on s.publish every s.every until ctx ends.
func (s *server) publishLoop(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nick := s.node.Nick()
		payload, _ := json.Marshal(struct {
			From string `json:"from"`
			Seq  int    `json:"seq"`
		}{nick, seq})
		pctx, cancel := context.WithTimeout(ctx, servePublishTimeout)
		ack, err := s.node.Publish(pctx, s.publish, payload, mesh.WithContentType("application/json"))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.st.log.Warn("publish failed", "topic", s.publish, "seq", seq, "err", err)
			}
			continue
		}
		s.st.log.Debug("published", "topic", s.publish, "seq", seq, "id", ack.ID.Short())
		if err := s.record(serveRecord{Kind: "published", Topic: s.publish, ID: ack.ID.String(), From: nick}, payload); err != nil {
			s.st.log.Error("recording a publish", "err", err)
		}
	}
}

// serveRecord is one line of the events file.
type serveRecord struct {
	Kind          string    `json:"kind"` // event, request, published
	Topic         string    `json:"topic,omitempty"`
	Method        string    `json:"method,omitempty"`
	ID            string    `json:"id"`
	Payload       *string   `json:"payload,omitempty"`        // when valid UTF-8
	PayloadBase64 string    `json:"payload_base64,omitempty"` // otherwise
	From          string    `json:"from"`
	At            time.Time `json:"at"`
	// The claim of an anycast event.
	Group   string `json:"group,omitempty"`
	Epoch   uint64 `json:"epoch,omitempty"`
	Attempt uint32 `json:"attempt,omitempty"`
	Token   uint64 `json:"token,omitempty"`
}

// record appends one line to the events file (when there is one) with a
// single write, so that lines of concurrent handlers, or of several
// processes sharing the file, never interleave.
func (s *server) record(rec serveRecord, payload []byte) error {
	if s.events == nil {
		return nil
	}
	rec.Payload, rec.PayloadBase64 = splitPayload(payload)
	rec.At = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.events.Write(b); err != nil {
		return err
	}
	if s.eventsSync {
		return s.events.Sync()
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/mesh/meshprom"
)

func newTailCmd(st *state) *cobra.Command {
	var (
		conn                 connFlags
		id                   identityFlags
		trust                trustFlags
		raw, asJSON, payload bool
		all                  bool
		rescan               time.Duration
		metricsAddr          string
	)
	cmd := &cobra.Command{
		Use:   "tail TOPIC|PATTERN...",
		Short: "Watch topics and print every line, decoded",
		Long: `Join the channels of the given topics and print every line seen there, one
per line, until interrupted:

  TIME  TOPIC  FROM  KIND  SHORT-ID  PAYLOAD  [fields]

A topic may be a pattern, as in NATS: "*" stands for one segment
(orders.* is orders.created and orders.paid, not orders.eu.paid), ">" at
the end for one or more (orders.> is all of them); --all (the pattern ">")
watches every topic of the namespace. Patterns are matched against the
topics the server lists (LIST) and those members announce in their
heartbeats, looked up again every --rescan (2s): a topic that appears is
watched from then on (stderr says so). Wildcards do not match system
segments such as _hb and _dead; name those (jobs._dead, *._dead). Quote
patterns in the shell.

The payload is shown as text when it is printable UTF-8, else as hex with its
length. Responses show their fields (corr=, error=), signed envelopes their
key (signed=alg:key-id).

The lines of anycast delivery are decoded: a claim or ack lists its events
as SHORT-ID@EPOCH, "(attempt N)" from the second attempt on, at most 6 then
"+N more", with the claim's lease and "takeover" when an event is claimed
at an epoch above 1 (its previous holder failed); a nack shows its event,
retry-in= and reason=; a dead marker its event, attempts= and reasons=. An
event on a dead-letter topic (TOPIC._dead) shows the event given up on and
why. A payload that does not decode is shown as MALFORMED:

  claim  5d1c02aa  group=workers events=2 4776bf3e@1 7c7828ce@2(attempt 2)  lease=30s  takeovers=1
  ack    9f00aa11  group=workers events=1 4776bf3e@1
  nack   0b1c2d3e  group=workers event=7c7828ce@2  retry-in=1s  reason="store busy"
  dead   1c2d3e4f  group=workers event=7c7828ce@6 attempts=5  reasons="wk/1: boom; wk/2: boom"
  event  2d3e4f50  DEAD LETTER event=7c7828ce topic=jobs group=workers attempts=5 reasons="…" payload={"job":1}

Fragments of a large envelope are shown as they arrive, the envelope itself
with its last fragment. Lines the decoder refuses are shown as REJECTED with
the reason; lines that are not mesh lines as "<nick> text".

Output modes: --json (one JSON object per line), --raw (each IRC line as
received, for recording and 'meshbot decode'), --payload (only the payload
of each event, one per line, nothing else: for pipes, like mosquitto_sub
or nats sub --raw).

System topics such as _hb (heartbeats) can be watched like any other. A
topic may also be given as its channel (#mesh.orders.created). Signed
envelopes are only accepted with the keys to check them (--keyring).`,
		Example: `  meshbot tail orders.created
  meshbot tail 'orders.*'                          # orders.created, orders.paid, ... as they appear
  meshbot tail --all                               # every topic of the namespace
  meshbot tail orders.created --payload | jq .total
  meshbot tail orders.created orders.cancelled _hb --namespace shop
  meshbot tail orders.created --json | jq .envelope.payload_text
  meshbot tail jobs jobs._dead                     # an anycast topic and its dead letters
  meshbot tail orders.created --raw > orders.log   # decode later: meshbot decode - < orders.log
  meshbot tail orders.created --keyring mesh.keyring --metrics-addr 127.0.0.1:9464`,
		Args: func(cmd *cobra.Command, a []string) error {
			if all {
				return nil
			}
			return nargs(1, -1, "TOPIC (or --all)")(cmd, a)
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			modes := 0
			for _, m := range []bool{raw, asJSON, payload} {
				if m {
					modes++
				}
			}
			if modes > 1 {
				return usagef("tail: --raw, --json and --payload exclude each other")
			}
			if rescan <= 0 {
				return usagef("tail: --rescan must be positive")
			}
			var exact, patterns []string
			for _, t := range a {
				if isPattern(t) {
					if err := checkPattern(t); err != nil {
						return err
					}
					patterns = append(patterns, t)
				} else {
					exact = append(exact, t)
				}
			}
			if all {
				patterns = append(patterns, ">")
			}
			topics, err := topicArgs(conn.namespace, exact)
			if err != nil {
				return err
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			p := &printer{w: st.env.stdout, mode: modeText}
			switch {
			case raw:
				p.mode = modeRaw
			case asJSON:
				p.mode = modeJSON
			case payload:
				p.mode = modePayload
			}
			var rawOut *rawLines
			if raw {
				// The lines themselves, from the node's raw log: a line is
				// written once, as received, however many envelopes it holds.
				rawOut = newRawLines(p)
				defer rawOut.stop()
				cfg.RawLog = rawOut
			}
			ctx := cmd.Context()
			var metrics *metricsServer
			if metricsAddr != "" {
				if metrics, err = listenMetrics(metricsAddr); err != nil {
					return err
				}
				defer metrics.stop()
			}
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.closeNode(st, n)
			if metrics != nil {
				if err := metrics.register(meshprom.NewCollector(n)); err != nil {
					return err
				}
				metrics.serve(st)
			}
			var (
				obsMu     sync.Mutex
				observers []*observation
			)
			defer func() {
				for _, o := range observers {
					o.stop()
				}
			}()
			watch := func(ctx context.Context, t string) error {
				ch := mesh.Channel(cfg.Namespace, t)
				if rawOut != nil {
					rawOut.add(ch)
				}
				o, err := observe(ctx, n, t, p.observation, mesh.ObserveGaps())
				if err != nil {
					return interrupted(ctx, fmt.Errorf("watching %s: %w", t, err))
				}
				obsMu.Lock()
				observers = append(observers, o)
				obsMu.Unlock()
				return nil
			}
			var chans []string
			for _, t := range topics {
				if err := watch(ctx, t); err != nil {
					return err
				}
				chans = append(chans, mesh.Channel(cfg.Namespace, t))
			}
			what := strings.Join(chans, " ")
			if len(patterns) > 0 {
				f := &follower{n: n, patterns: patterns, watch: watch, watched: map[string]bool{}}
				for _, t := range topics {
					f.watched[t] = true
				}
				if err := f.scan(ctx); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					st.log.Warn("looking for topics", "err", err)
				}
				f.mu.Lock()
				found := len(f.watched) - len(topics)
				f.mu.Unlock()
				f.announce = func(t string) {
					fmt.Fprintf(st.env.stderr, "meshbot: now watching %s too\n", mesh.Channel(cfg.Namespace, t))
				}
				go f.run(ctx, rescan, func(err error) { st.log.Warn("tail", "err", err) })
				if what != "" {
					what += " and "
				}
				what += fmt.Sprintf("the topics matching %s (%d found so far)", strings.Join(patterns, " "), found)
			}
			fmt.Fprintf(st.env.stderr, "meshbot: watching %s on %s as %s; Ctrl-C to stop\n", what, cfg.Server, n.Nick())
			<-ctx.Done()
			obsMu.Lock()
			var dropped uint64
			for _, o := range observers {
				dropped += o.stop()
			}
			obsMu.Unlock()
			if rawOut != nil {
				dropped = rawOut.stop() // what the raw output missed
			}
			fmt.Fprintf(st.env.stderr, "meshbot: %s\n", p.summary(dropped))
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, false)
	f.BoolVar(&raw, "raw", false, "print each line as received (tags and text), for recording and 'meshbot decode'")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	f.BoolVar(&payload, "payload", false, "print only the payload of each event, one per line (for pipes)")
	f.BoolVar(&all, "all", false, "watch every topic of the namespace (the pattern \">\"), as they appear")
	f.DurationVar(&rescan, "rescan", 2*time.Second, "how often patterns look for new topics")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics of this node at http://ADDR/metrics (host:port)")
	return cmd
}

// topicArgs turns arguments into topics: a channel (#ns.topic) of the
// namespace is accepted for its topic.
func topicArgs(namespace string, a []string) ([]string, error) {
	out := make([]string, 0, len(a))
	for _, t := range a {
		if strings.HasPrefix(t, "#") {
			topic, ok := mesh.TopicOf(namespace, t)
			if !ok {
				return nil, usagef("channel %s is not in namespace %q (its channels start with #%s.)", t, namespace, namespace)
			}
			t = topic
		}
		out = append(out, t)
	}
	return out, nil
}

// observation is one Node.Observe.
type observation struct{ o *mesh.Observer }

// observe calls n.Observe; it returns once the node is in the channel.
func observe(ctx context.Context, n *mesh.Node, topic string, fn func(mesh.Observation), opts ...mesh.ObserveOption) (*observation, error) {
	o, err := n.Observe(ctx, topic, fn, opts...)
	if err != nil {
		return nil, err
	}
	return &observation{o: o}, nil
}

// stop ends the observation and returns how many lines it dropped.
func (ob *observation) stop() uint64 {
	ob.o.Stop()
	return ob.o.Dropped()
}

type printMode int

const (
	modeText printMode = iota
	modeJSON
	modeRaw
	modePayload // only the payloads of events, one per line
)

// printer writes observed lines; its methods are safe for concurrent use
// (each Observer calls from its own goroutine). In raw mode the lines
// come from rawLines, and observations are only counted.
type printer struct {
	mu   sync.Mutex
	w    io.Writer
	mode printMode
	// lines counts received lines (a batch line once); counts counts
	// observations by line type (a batch line once per envelope).
	lines  int
	counts map[string]int
	gaps   map[time.Time]bool // connection drops, by time
}

func (p *printer) observation(ob mesh.Observation) {
	v := observationView(ob)
	var out string
	show := true
	switch p.mode {
	case modeText:
		out = v.text()
	case modeJSON:
		b, _ := json.Marshal(v)
		out = string(b)
	case modePayload:
		show = ob.Envelope != nil && ob.Envelope.Kind == envelope.KindEvent
		if show {
			out = string(ob.Envelope.Payload)
		}
	case modeRaw:
		show = false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counts == nil {
		p.counts = map[string]int{}
	}
	p.counts[v.Type]++
	if !ob.Gap && ob.Part == 0 {
		p.lines++
	}
	if ob.Gap {
		p.gapAt(ob.Time)
	}
	if show {
		fmt.Fprintln(p.w, out)
	}
}

// gapAt counts a connection drop once, however many topics report it
// (each observer gets its own Gap, at the same time).
func (p *printer) gapAt(t time.Time) {
	if p.gaps == nil {
		p.gaps = map[time.Time]bool{}
	}
	p.gaps[t] = true
}

// raw writes one received line as it is (it ends in a line feed).
func (p *printer) raw(line []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.w.Write(line)
}

func (p *printer) summary(dropped uint64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf("%d lines: %d envelopes, %d fragments, %d rejected, %d human",
		p.lines, p.counts[typeMesh], p.counts[typeFragment], p.counts[typeRejected], p.counts[typeHuman])
	if g := len(p.gaps); g > 0 {
		s += fmt.Sprintf("; the connection dropped %d time(s): lines may be missing", g)
	}
	if dropped > 0 {
		s += fmt.Sprintf("; %d lines not shown (the output was too slow)", dropped)
	}
	return s
}

// rawQueue bounds the raw lines waiting for the output; more are dropped
// and counted, as observers do (the connection's reader never waits on
// the output).
const rawQueue = 4096

// rawLines is the node's raw log (mesh.Config.RawLog) for `tail --raw`: it
// keeps the PRIVMSG lines of the watched channels and writes each exactly
// as the server sent it (its tags in their order and form), once, from
// its own goroutine. Write is called by the connection's reader.
type rawLines struct {
	p    *printer
	q    chan []byte
	done chan struct{}

	mu      sync.Mutex
	chans   map[string]bool // lower case
	stopped bool
	dropped uint64
}

func newRawLines(p *printer) *rawLines {
	r := &rawLines{p: p, chans: map[string]bool{}, q: make(chan []byte, rawQueue), done: make(chan struct{})}
	go r.run()
	return r
}

// add writes the lines of channel from now on.
func (r *rawLines) add(channel string) {
	r.mu.Lock()
	r.chans[strings.ToLower(channel)] = true
	r.mu.Unlock()
}

func (r *rawLines) run() {
	defer close(r.done)
	for line := range r.q {
		r.p.raw(line)
	}
}

// Write takes one line as received, with its line feed. It never blocks
// and never fails: a line the output cannot take is counted.
func (r *rawLines) Write(line []byte) (int, error) {
	if !r.watched(line) {
		return len(line), nil
	}
	keep := bytes.Clone(line)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return len(line), nil
	}
	select {
	case r.q <- keep:
	default:
		r.dropped++
	}
	return len(line), nil
}

// watched reports whether line is a PRIVMSG to a watched channel.
func (r *rawLines) watched(line []byte) bool {
	msg, err := ircmsg.ParseLine(string(bytes.TrimRight(line, "\r\n")))
	if err != nil || !strings.EqualFold(msg.Command, "PRIVMSG") || len(msg.Params) < 2 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.chans[strings.ToLower(msg.Params[0])]
}

// stop writes the lines queued, ignores later ones, and returns how many
// lines were dropped. It is safe to call twice.
func (r *rawLines) stop() uint64 {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		close(r.q)
	}
	r.mu.Unlock()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

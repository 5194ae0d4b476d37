package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// maxRequestsInFlight bounds the recorded requests replay-log has waiting
// for their answers at once.
const maxRequestsInFlight = 64

func newReplayLogCmd(st *state) *cobra.Command {
	var (
		conn     connFlags
		id       identityFlags
		trust    trustFlags
		speed    float64
		fast     bool
		repeat   int
		since    string
		until    string
		senders  []string
		requests bool
		wait     time.Duration
		watch    []string
	)
	cmd := &cobra.Command{
		Use:   "replay-log FILE [TOPIC...]",
		Short: "Publish the events of a recorded log onto a live mesh, for load and regression tests",
		Long: `Read a recorded log (meshbot record --raw, or mesh.Config.RawLog) and publish
its events again onto a live mesh — a staging server, a load-test mesh — at
the recorded pace (--speed 1), N times faster (--speed N), or as fast as
flow control allows (--max), then sum up what was sent and what came back.

What is sent: the events of the log's topics (or of the TOPICs given; the
heartbeat channel, dead letters and domain state are never re-published),
cut by --since/--until and --sender as 'meshbot record' cuts; with
--requests, also the requests the log's recording node received, sent
again to its service. Each event keeps its topic, payload and headers, and
gets a new id: this tool's node (--service, default "replay") publishes
it, signed with its key when given one.

What comes back, counted while the events are sent and for --wait after:
on each topic sent to, the acknowledgements of the events sent (anycast
groups completing them), its dead letters (TOPIC._dead), and events
published there by others; on each --watch topic, the events others
publish. The summary says, per topic, how many events were sent, confirmed
by the server (with the confirm latency), completed, dead-lettered, and
what the services published in reaction.`,
		Example: `  meshbot replay-log orders.log --server staging:6667                    # the recorded pace
  meshbot replay-log orders.log orders.created --sender orders --speed 10 --watch billing.charged
  meshbot replay-log orders.log --max --repeat 20                          # a load test
  meshbot replay-log pricing.log --requests --speed 5                      # replay requests too`,
		Args: nargs(1, -1, "FILE [TOPIC...]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			switch {
			case fast && cmd.Flags().Changed("speed"):
				return usagef("replay-log: --max and --speed exclude each other")
			case !fast && speed <= 0:
				return usagef("replay-log: --speed must be positive (or --max for as fast as flow control allows)")
			case repeat < 1:
				return usagef("replay-log: --repeat must be at least 1")
			}
			if fast {
				speed = 0
			}
			log, err := recording.Load(a[0])
			if err != nil {
				return err
			}
			topics, err := topicArgs(log.Namespace(), a[1:])
			if err != nil {
				return err
			}
			if since != "" || until != "" {
				from, err := logTime(log, "--since", since)
				if err != nil {
					return err
				}
				to, err := logTime(log, "--until", until)
				if err != nil {
					return err
				}
				log = log.Between(from, to)
			}
			if len(senders) > 0 {
				log = log.Senders(senders...)
			}
			items := replayPlan(log, topics, requests)
			if len(items) == 0 {
				return fmt.Errorf("replay-log: nothing to send: %s has no events%s", a[0], map[bool]string{true: " or requests"}[requests])
			}
			if conn.namespace == "" {
				conn.namespace = log.Namespace()
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.closeNode(st, n)
			r := newReplayRun(n, items)
			if err := r.observe(ctx, watch); err != nil {
				return interrupted(ctx, err)
			}
			fmt.Fprintf(st.env.stderr, "meshbot: replaying %d events and %d requests of %s onto %s (namespace %s) %s%s\n",
				r.events, r.requests, a[0], cfg.Server, cfg.Namespace, pace(speed), map[bool]string{true: fmt.Sprintf(", %d times", repeat)}[repeat > 1])
			r.send(ctx, speed, repeat)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			r.summary(st.env.stdout, a[0], speed)
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	f.Lookup("namespace").DefValue = ""
	f.Lookup("namespace").Usage = "mesh namespace to publish into (default: the log's) [$MESHBOT_NAMESPACE]"
	conn.namespace = ""
	id.add(f, "replay")
	trust.add(f, true)
	f.Float64Var(&speed, "speed", 1, "pace: 1 is the recorded pace, N is N times faster")
	f.BoolVar(&fast, "max", false, "send as fast as flow control allows (the server's confirms pace the publishes)")
	f.IntVar(&repeat, "repeat", 1, "send the log this many times, one pass after the other")
	f.StringVar(&since, "since", "", "send the lines from this `TIME` on (RFC 3339, or +DURATION from the log's start)")
	f.StringVar(&until, "until", "", "send the lines before this `TIME` (RFC 3339, or +DURATION from the log's start)")
	f.StringSliceVar(&senders, "sender", nil, "send only what these services or nicks published")
	f.BoolVar(&requests, "requests", false, "also send the requests the recording node received, to its service")
	f.DurationVar(&wait, "wait", 2*time.Second, "after the last send, how long to count what comes back")
	f.StringSliceVar(&watch, "watch", nil, "also count the events others publish on these `TOPICS`")
	return cmd
}

func pace(speed float64) string {
	switch {
	case speed == 0:
		return "as fast as flow control allows"
	case speed == 1:
		return "at the recorded pace"
	}
	return fmt.Sprintf("at %g× the recorded pace", speed)
}

// replayItem is one envelope to send again.
type replayItem struct {
	at      time.Time
	env     *envelope.Envelope
	service string // requests: the service to ask
}

// replayPlan picks what replay-log sends: the events of topics (all the
// log's when none; never the heartbeat channel, dead letters or domain
// state), and with requests the requests to the recording node.
func replayPlan(log *recording.Log, topics []string, requests bool) []replayItem {
	owner := log.Owner()
	ownerService, _, _ := mesh.ParseNick(owner)
	dec := envelope.NewDecoder(envelope.DecoderConfig{AcceptUnchecked: true})
	var out []replayItem
	at := log.Start()
	for _, l := range log.Lines() {
		if !l.Time.IsZero() {
			at = l.Time
		}
		if l.Command() != "PRIVMSG" || l.InBatch() {
			continue
		}
		envs, _, _ := dec.Decode(l.Nick, l.Tags(), l.Text(), l.Time)
		for _, env := range envs {
			switch {
			case env.Kind == envelope.KindEvent:
				t := l.Topic()
				if t == "" || strings.HasPrefix(t, "_") || strings.HasSuffix(t, claims.DeadTopic("")) || strings.HasSuffix(t, "._state") {
					continue
				}
				if len(topics) > 0 && !slices.Contains(topics, t) {
					continue
				}
				out = append(out, replayItem{at: at, env: env})
			case env.Kind == envelope.KindRequest && requests && ownerService != "" && strings.EqualFold(l.Param(0), owner):
				out = append(out, replayItem{at: at, env: env, service: ownerService})
			}
		}
	}
	return out
}

// replayRun is one replay-log: what it sends and what it counts.
type replayRun struct {
	n        *mesh.Node
	items    []replayItem
	events   int
	requests int
	topics   []string // topics sent to
	started  time.Time
	elapsed  time.Duration

	mu        sync.Mutex
	sent      map[string]*sentStats           // topic or service.method → what was sent
	ids       map[envelope.ID]string          // our events → topic
	acked     map[string]map[envelope.ID]bool // group@topic → events acknowledged
	givenUp   map[string]map[envelope.ID]bool // group@topic → events dead-lettered
	others    map[string]map[string]int       // topic → service → events others published
	dead      map[string]int                  // topic → dead letters of our events
	latencies map[string][]time.Duration      // topic or service.method → confirm or answer latency
}

// sentStats counts what was sent to one topic or method.
type sentStats struct {
	sent, confirmed, failed int
	codes                   map[uint32]int // error answers by code
	timeouts                int
	request                 bool
}

func newReplayRun(n *mesh.Node, items []replayItem) *replayRun {
	r := &replayRun{n: n, items: items, sent: map[string]*sentStats{}, ids: map[envelope.ID]string{},
		acked: map[string]map[envelope.ID]bool{}, givenUp: map[string]map[envelope.ID]bool{}, others: map[string]map[string]int{}, dead: map[string]int{},
		latencies: map[string][]time.Duration{}}
	for _, it := range items {
		if it.service != "" {
			r.requests++
			continue
		}
		r.events++
		if !slices.Contains(r.topics, it.env.Topic) {
			r.topics = append(r.topics, it.env.Topic)
		}
	}
	return r
}

// observe counts, on the topics sent to, their dead letters and the
// watched topics, what others send.
func (r *replayRun) observe(ctx context.Context, watch []string) error {
	me := r.n.Nick()
	var chans []string
	for _, t := range r.topics {
		chans = append(chans, t, claims.DeadTopic(t))
	}
	for _, t := range watch {
		if !slices.Contains(chans, t) {
			chans = append(chans, t)
		}
	}
	for _, topic := range chans {
		if _, err := r.n.Observe(ctx, topic, func(o mesh.Observation) {
			if o.Envelope == nil || strings.EqualFold(o.From, me) {
				return
			}
			r.seen(topic, o.Envelope)
		}); err != nil {
			return fmt.Errorf("joining %s: %w", topic, err)
		}
	}
	return nil
}

// seen counts one envelope another member sent on topic.
func (r *replayRun) seen(topic string, env *envelope.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch env.Kind {
	case envelope.KindAck:
		items, err := claims.DecodeItems(env.Payload)
		if err != nil {
			return
		}
		key := env.Topic + "@" + topic
		if r.acked[key] == nil {
			r.acked[key] = map[envelope.ID]bool{}
		}
		for _, it := range items {
			r.acked[key][it.Event] = true
		}
	case envelope.KindDeadLetter: // the marker of an event given up
		key := env.Topic + "@" + topic
		if r.givenUp[key] == nil {
			r.givenUp[key] = map[envelope.ID]bool{}
		}
		r.givenUp[key][env.Correlation] = true
	case envelope.KindEvent:
		if strings.HasSuffix(topic, claims.DeadTopic("")) {
			r.dead[strings.TrimSuffix(topic, claims.DeadTopic(""))]++
			return
		}
		if r.others[topic] == nil {
			r.others[topic] = map[string]int{}
		}
		r.others[topic][env.Sender.Service]++
	}
}

// send sends every item, repeat times, at speed (0: as fast as flow
// control allows), and waits for the confirms and answers.
func (r *replayRun) send(ctx context.Context, speed float64, repeat int) {
	first, last := r.items[0].at, r.items[len(r.items)-1].at
	span := last.Sub(first) + time.Millisecond // passes do not overlap
	var wg sync.WaitGroup
	reqs := make(chan struct{}, maxRequestsInFlight)
	r.started = time.Now()
	defer func() { wg.Wait(); r.elapsed = time.Since(r.started) }()
	for pass := range repeat {
		for _, it := range r.items {
			if speed > 0 {
				due := r.started.Add(time.Duration(float64(it.at.Sub(first)+time.Duration(pass)*span) / speed))
				if d := time.Until(due); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
			}
			if ctx.Err() != nil {
				return
			}
			if it.service != "" {
				select {
				case reqs <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Go(func() {
					defer func() { <-reqs }()
					r.request(ctx, it)
				})
				continue
			}
			r.publish(ctx, it, &wg)
		}
	}
}

// publish sends one event; a goroutine per event waits for its confirm
// (bounded by the node's flow control, which PublishAsync waits on).
func (r *replayRun) publish(ctx context.Context, it replayItem, wg *sync.WaitGroup) {
	topic := it.env.Topic
	var opts []mesh.PublishOption
	if h := it.env.Headers; h.ContentType != "" {
		opts = append(opts, mesh.WithContentType(h.ContentType))
	}
	if h := it.env.Headers; h.Traceparent != "" {
		opts = append(opts, mesh.WithTraceparent(h.Traceparent))
	}
	start := time.Now()
	fut, err := r.n.PublishAsync(ctx, topic, it.env.Payload, opts...)
	r.mu.Lock()
	s := r.stats(topic, false)
	s.sent++
	if err != nil {
		s.failed++
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	wg.Go(func() {
		ack, err := fut.Wait(ctx)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			s.failed++
			return
		}
		s.confirmed++
		r.ids[ack.ID] = topic
		r.latencies[topic] = append(r.latencies[topic], time.Since(start))
	})
}

// request sends one recorded request again and waits for its answer.
func (r *replayRun) request(ctx context.Context, it replayItem) {
	key := it.service + "." + it.env.Topic
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if it.env.Deadline != 0 && it.env.Time != 0 {
		rctx, cancel = context.WithTimeout(ctx, time.Duration(it.env.Deadline-it.env.Time))
	}
	defer cancel()
	start := time.Now()
	_, err := r.n.Request(rctx, it.service, it.env.Topic, it.env.Payload, mesh.WithRequestHeaders(it.env.Headers))
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats(key, true)
	s.sent++
	var re *mesh.RemoteError
	switch {
	case err == nil:
		s.confirmed++
		r.latencies[key] = append(r.latencies[key], time.Since(start))
	case errors.As(err, &re):
		s.codes[re.Code]++
		r.latencies[key] = append(r.latencies[key], time.Since(start))
	case errors.Is(err, context.DeadlineExceeded):
		s.timeouts++
	default:
		s.failed++
	}
}

func (r *replayRun) stats(key string, request bool) *sentStats {
	s := r.sent[key]
	if s == nil {
		s = &sentStats{codes: map[uint32]int{}, request: request}
		r.sent[key] = s
	}
	return s
}

// summary prints what was sent and what came back.
func (r *replayRun) summary(w io.Writer, file string, speed float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "meshbot: replayed %s %s in %s\n", file, pace(speed), r.elapsed.Round(time.Millisecond))
	keys := make([]string, 0, len(r.sent))
	for k := range r.sent {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	label := "sent"
	for _, k := range keys {
		s := r.sent[k]
		if s.request {
			var codes []string
			for c, n := range s.codes {
				codes = append(codes, fmt.Sprintf("%d ×%d", c, n))
			}
			sort.Strings(codes)
			errs := ""
			if len(codes) > 0 {
				errs = " (" + strings.Join(codes, ", ") + ")"
			}
			fmt.Fprintf(w, "  %-10s %-24s %d requests: %d answered, %d errors%s, %d timed out, %d failed%s\n",
				"requests", k, s.sent, s.confirmed, sum(s.codes), errs, s.timeouts, s.failed, latency("answer", r.latencies[k]))
			continue
		}
		fmt.Fprintf(w, "  %-10s %-24s %d events: %d confirmed, %d failed%s\n", label, k, s.sent, s.confirmed, s.failed, latency("confirm", r.latencies[k]))
		label = ""
	}
	var back []string
	for _, t := range r.topics {
		ours := 0
		for _, topic := range r.ids {
			if topic == t {
				ours++
			}
		}
		ourCount := func(evs map[envelope.ID]bool) int {
			n := 0
			for id := range evs {
				if r.ids[id] == t {
					n++
				}
			}
			return n
		}
		var groups []string
		keys := map[string]bool{}
		for key := range r.acked {
			keys[key] = true
		}
		for key := range r.givenUp {
			keys[key] = true
		}
		for key := range keys {
			group, topic, _ := strings.Cut(key, "@")
			if topic != t {
				continue
			}
			line := fmt.Sprintf("%-24s %d of %d events completed by group %s", t, ourCount(r.acked[key]), ours, group)
			if n := ourCount(r.givenUp[key]); n > 0 {
				line += fmt.Sprintf(", %d given up (dead letters)", n)
			}
			groups = append(groups, line)
		}
		sort.Strings(groups)
		back = append(back, groups...)
		if d := r.dead[t]; d > 0 {
			back = append(back, fmt.Sprintf("%-24s %d events", claims.DeadTopic(t), d))
		}
	}
	var other []string
	for topic, by := range r.others {
		var parts []string
		total := 0
		for svc, n := range by {
			parts = append(parts, svc)
			total += n
		}
		sort.Strings(parts)
		other = append(other, fmt.Sprintf("%-24s %d events from %s", topic, total, strings.Join(parts, ", ")))
	}
	sort.Strings(other)
	back = append(back, other...)
	if len(back) == 0 {
		back = []string{"nothing (no acknowledgements, dead letters or events of others on the topics sent to or watched)"}
	}
	for i, b := range back {
		label := ""
		if i == 0 {
			label = "came back"
		}
		fmt.Fprintf(w, "  %-10s %s\n", label, b)
	}
}

func sum(m map[uint32]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// latency is "; confirm p50 1.2ms, p99 4ms" for a list of latencies.
func latency(what string, ds []time.Duration) string {
	if len(ds) == 0 {
		return ""
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	round := func(d time.Duration) time.Duration {
		if d < time.Millisecond {
			return d.Round(time.Microsecond)
		}
		return d.Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("; %s p50 %s, p99 %s", what, round(p(0.5)), round(p(0.99)))
}

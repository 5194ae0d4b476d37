package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/mesh"
)

func newPubCmd(st *state) *cobra.Command {
	var (
		conn        connFlags
		id          identityFlags
		trust       trustFlags
		count       int
		contentType string
		traceparent string
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "pub TOPIC [PAYLOAD|-]",
		Short: "Publish an event on a topic",
		Long: `Publish PAYLOAD as an event on TOPIC (the channel #NAMESPACE.TOPIC) and wait
until the server has accepted it. With "-", or with no PAYLOAD and input
piped in, the payload is read from stdin.

For each event, one line is printed:

  published TOPIC id=ID msgid=MSGID lines=N [batch=K]

id is the envelope id (receivers drop copies by it), msgid the server's id
of the line ("-" when the server gives none), lines how many IRC lines the
envelope took (more than 1 when it was split into fragments). Small events
published together share lines: batch=K says the event went out in one
line with K-1 others (they all show that line's msgid).

With --count N, a summary on stderr says how many lines carried the N
events, and how long the server took to confirm them. Interrupted (Ctrl-C),
pub says how many events the server had confirmed; the exit code is 1.`,
		Example: `  meshbot pub orders.created '{"order":1,"item":"tea","qty":2,"total":"7.00"}' --content-type application/json
  date | meshbot pub clock.ticks
  meshbot pub load.test hello --count 1000
  meshbot pub orders.created hi --hmac-key-file mesh.hmac`,
		Args: nargs(1, 2, "TOPIC [PAYLOAD|-]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if count < 1 {
				return usagef("pub: --count must be at least 1")
			}
			topics, err := topicArgs(conn.namespace, a[:1])
			if err != nil {
				return err
			}
			topic := topics[0]
			arg := "-"
			if len(a) == 2 {
				arg = a[1]
			} else if isTerminal(st.env.stdin) {
				return usagef("pub: no PAYLOAD: give it as an argument, or pipe it in")
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			// The naming rules now; the channel's length once connected,
			// against the server's own CHANNELLEN (Publish checks it).
			if err := mesh.ValidateTopic(cfg.Namespace, topic, maxChanLen); err != nil {
				return err
			}
			payload, err := readInput(arg, st.env.stdin, int64(cfg.MaxEnvelope))
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.closeNode(st, n)
			var opts []mesh.PublishOption
			if contentType != "" {
				opts = append(opts, mesh.WithContentType(contentType))
			}
			if traceparent != "" {
				opts = append(opts, mesh.WithTraceparent(traceparent))
			}
			tally := &pubTally{topic: topic, count: count, start: time.Now()}
			err = publishAll(ctx, n, topic, payload, count, opts, func(ack mesh.PubAck) {
				tally.add(ack)
				printAck(st.env.stdout, topic, ack, asJSON)
			})
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted: %s", tally.progress())
				}
				if tally.events > 0 {
					return fmt.Errorf("publishing on %s: %w (%s)", topic, err, tally.progress())
				}
				return fmt.Errorf("publishing on %s: %w", topic, err)
			}
			if count > 1 || tally.batched > 0 {
				fmt.Fprintf(st.env.stderr, "meshbot: %s\n", tally.summary())
			}
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, true)
	f.IntVar(&count, "count", 1, "publish the payload this many times (each a new event)")
	f.StringVar(&contentType, "content-type", "", "content type header of the payload, e.g. application/json")
	f.StringVar(&traceparent, "traceparent", "", "W3C traceparent header")
	f.BoolVar(&asJSON, "json", false, "print each confirm as a JSON object")
	return cmd
}

func printAck(w io.Writer, topic string, ack mesh.PubAck, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(struct {
			Topic string `json:"topic"`
			ID    string `json:"id"`
			MsgID string `json:"msgid,omitempty"`
			Lines int    `json:"lines"`
			Batch int    `json:"batch"`
		}{topic, ack.ID.String(), ack.MsgID, ack.Lines, ack.Batch})
		fmt.Fprintln(w, string(b))
		return
	}
	msgid := ack.MsgID
	if msgid == "" {
		msgid = "-"
	}
	batch := ""
	if ack.Batch > 1 {
		batch = fmt.Sprintf(" batch=%d", ack.Batch)
	}
	fmt.Fprintf(w, "published %s id=%s msgid=%s lines=%d%s\n", topic, ack.ID, msgid, ack.Lines, batch)
}

// maxChanLen stands for "no length limit" when a topic is checked before
// connecting: the server's CHANNELLEN is known only once connected.
const maxChanLen = 1 << 16

// publishAll publishes payload count times, pipelined (every publish is
// queued at once, the confirms are waited for in order), and calls
// confirmed for each confirm, in order, until one fails or ctx ends.
func publishAll(ctx context.Context, n *mesh.Node, topic string, payload []byte, count int, opts []mesh.PublishOption, confirmed func(mesh.PubAck)) error {
	futures := make(chan *mesh.PubFuture, 256)
	queueErr := make(chan error, 1)
	pubCtx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel() // on an early return: stop queueing, and wait for it
		for range futures {
		}
	}()
	go func() {
		defer close(futures)
		for range count {
			f, err := n.PublishAsync(pubCtx, topic, payload, opts...)
			if err != nil {
				queueErr <- err
				return
			}
			futures <- f
		}
	}()
	for f := range futures {
		ack, err := f.Wait(ctx)
		if err != nil {
			return err
		}
		confirmed(ack)
	}
	select {
	case err := <-queueErr:
		return err
	default:
	}
	return nil
}

// pubTally counts what the server confirmed.
type pubTally struct {
	topic   string
	count   int // events asked for
	start   time.Time
	events  int     // confirmed
	lines   float64 // lines that carried them (a batch line counts 1/K per event)
	batched int     // events that shared a line
	maxK    int     // the most events one line carried
}

func (t *pubTally) add(ack mesh.PubAck) {
	t.events++
	if ack.Batch > 1 {
		t.batched++
		t.lines += 1 / float64(ack.Batch)
		t.maxK = max(t.maxK, ack.Batch)
		return
	}
	t.lines += float64(max(ack.Lines, 1))
	t.maxK = max(t.maxK, 1)
}

// quantity says n things: "1 line", "3 lines".
func quantity(n int, one, many string) string { return fmt.Sprintf("%d %s", n, plural(n, one, many)) }

// linesText says how many lines carried the confirmed events.
func (t *pubTally) linesText() string {
	s := "in " + quantity(int(t.lines+0.5), "line", "lines")
	if t.batched > 0 {
		s += fmt.Sprintf(" (%d of them batched, up to %d per line)", t.batched, t.maxK)
	}
	return s
}

// summary is the line printed after a --count run.
func (t *pubTally) summary() string {
	return fmt.Sprintf("published %s on %s %s, confirmed by the server in %s",
		quantity(t.events, "event", "events"), t.topic, t.linesText(), time.Since(t.start).Round(time.Millisecond))
}

// progress says how far an interrupted or failed run got.
func (t *pubTally) progress() string {
	if t.events == 0 {
		return fmt.Sprintf("none of the %d events was confirmed by the server (some may have reached it)", t.count)
	}
	return fmt.Sprintf("%d of %d events confirmed by the server, %s; any later ones may or may not have reached it",
		t.events, t.count, t.linesText())
}

// isTerminal reports whether r is an interactive terminal (where waiting
// for a payload on stdin would just look like a hang).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

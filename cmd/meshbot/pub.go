package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

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

  published TOPIC id=ID msgid=MSGID lines=N

id is the envelope id (receivers drop copies by it), msgid the server's id
of the line ("-" when the server gives none), lines how many IRC lines the
envelope took (more than 1 when it was split into fragments).`,
		Example: `  meshbot pub orders.created '{"order":1,"sku":"tea"}' --content-type application/json
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
			if err := mesh.ValidateTopic(cfg.Namespace, topic, 0); err != nil {
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
			// Pipelined: queue them all, then report the confirms in order.
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
					return interrupted(ctx, fmt.Errorf("publishing on %s: %w", topic, err))
				}
				printAck(st.env.stdout, topic, ack, asJSON)
			}
			select {
			case err := <-queueErr:
				return interrupted(ctx, fmt.Errorf("publishing on %s: %w", topic, err))
			default:
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
		}{topic, ack.ID.String(), ack.MsgID, ack.Lines})
		fmt.Fprintln(w, string(b))
		return
	}
	msgid := ack.MsgID
	if msgid == "" {
		msgid = "-"
	}
	fmt.Fprintf(w, "published %s id=%s msgid=%s lines=%d\n", topic, ack.ID, msgid, ack.Lines)
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

package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/mesh"
)

func newRecordCmd(st *state) *cobra.Command {
	var (
		conn  connFlags
		id    identityFlags
		trust trustFlags
		raw   string
		dur   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "record --raw FILE TOPIC...",
		Short: "Record the raw lines of topics to a file, for replay in tests",
		Long: `Join the channels of the given topics and of the heartbeat channel (_hb) and
write every line the server sends, as received — tags, prefix, command —
one per line, to FILE, until interrupted or --for has passed.

Such a log replays deterministically: the history/rawlog package reads it
back (lines parsed with ircmsg, server-time tags as the clock), and tests
drive the pure cores (heartbeat views, claims) through it to check they
make the decisions the live services made. 'meshbot decode - < FILE'
decodes the mesh lines in it.

The file gets server lines too (registration, NAMES, PING/PONG): replays
skip what they do not need. Lines are buffered and flushed every second and
at the end.`,
		Example: `  meshbot record --raw jobs.log jobs --for 30s
  meshbot record --raw run.log orders.created payments --namespace shop`,
		Args: nargs(1, -1, "TOPIC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if raw == "" {
				return usagef("record: --raw FILE is required")
			}
			topics, err := topicArgs(conn.namespace, a)
			if err != nil {
				return err
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(raw, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return fmt.Errorf("record: %w", err)
			}
			w := &syncWriter{w: bufio.NewWriterSize(f, 64<<10)}
			cfg.RawLog = w
			ctx := cmd.Context()
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				f.Close()
				return err
			}
			finish := func() error {
				conn.closeNode(st, n) // no more lines after this
				err := w.flush()
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				return err
			}
			watch := append([]string{"_hb"}, topics...)
			for _, t := range watch {
				if _, err := n.Observe(ctx, t, func(mesh.Observation) {}); err != nil {
					finish()
					return interrupted(ctx, fmt.Errorf("joining %s: %w", t, err))
				}
			}
			chans := make([]string, len(watch))
			for i, t := range watch {
				chans[i] = mesh.Channel(cfg.Namespace, t)
			}
			fmt.Fprintf(st.env.stderr, "meshbot: recording %s on %s to %s; Ctrl-C to stop\n", strings.Join(chans, " "), cfg.Server, raw)
			var stop <-chan time.Time
			if dur > 0 {
				stop = time.After(dur)
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for done := false; !done; {
				select {
				case <-ctx.Done():
					done = true
				case <-stop:
					done = true
				case <-tick.C:
					if err := w.flush(); err != nil {
						finish()
						return fmt.Errorf("record: %w", err)
					}
				}
			}
			if err := finish(); err != nil {
				return fmt.Errorf("record: %w", err)
			}
			fmt.Fprintf(st.env.stderr, "meshbot: recorded %d lines to %s\n", w.lines, raw)
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, true)
	f.StringVar(&raw, "raw", "", "write the raw lines to `FILE` (created or truncated)")
	f.DurationVar(&dur, "for", 0, "stop after this long (default: until interrupted)")
	return cmd
}

// syncWriter is the recorder's buffered log: the connection's reader
// writes, a ticker flushes.
type syncWriter struct {
	mu    sync.Mutex
	w     *bufio.Writer
	lines int
	err   error
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.lines++
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

func (s *syncWriter) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.err = s.w.Flush()
	return s.err
}

package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest/recording"
)

func newRecordCmd(st *state) *cobra.Command {
	var (
		conn  connFlags
		id    identityFlags
		trust trustFlags
		cut   cutFlags
		raw   string
		dur   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "record --raw FILE TOPIC...",
		Short: "Record the raw lines of topics to a file, for replay in tests",
		Long: `Join the channels of the given topics and of the heartbeat channel (_hb) and
write every line the server sends, as received — tags, prefix, command —
one per line, to FILE, until interrupted or --for has passed.

Such a log replays deterministically: meshtest.Replay runs a service's
real handlers on it (on a virtual clock, against a golden file), the
history/rawlog and meshtest/recording packages read it back, and
'meshbot decode - < FILE' decodes the mesh lines in it.

With --from IN, record cuts an existing log instead of connecting: it
reads IN and writes the cut to FILE. The cut, live or from a file, is
made of:

  TOPIC...            keep these topics (and the heartbeat channel, server
                      lines and private messages); from a file, none keeps all
  --since, --until    keep the lines in this time range (from a file): a
                      time (RFC 3339) or +DURATION from the log's start;
                      who was in which channel before --since is kept
  --sender S          keep only what these services (or nicks) sent
  --no-heartbeats     drop the heartbeat lines
  --redact-json F,..  replace the values of these JSON fields in payloads
                      (events, requests, answers, state values) by
                      "redacted-" and a hash: equal values stay equal
  --redact-payloads   replace every payload by such a stand-in
  --strip-signatures  seal every envelope again, unsigned: a replay test
                      then needs no key of the recorded mesh (the mesh's
                      HMAC key is a secret; never commit it with a log)

A redacted envelope is sealed again, unsigned (its recorded signature does
not cover the new payload). So a log taken in production can be committed.

The file gets server lines too (registration, NAMES, PING/PONG): replays
skip what they do not need. Lines are buffered and flushed every second and
at the end.`,
		Example: `  meshbot record --raw jobs.log jobs --for 30s
  meshbot record --raw run.log orders.created payments --namespace shop
  meshbot record --from prod.log --raw testdata/orders.log orders.created \
      --since +5m --until +6m --no-heartbeats --redact-json email,name --strip-signatures`,
		Args: nargs(0, -1, "TOPIC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if raw == "" {
				return usagef("record: --raw FILE is required")
			}
			if cut.from != "" {
				if dur > 0 {
					return usagef("record: --for is for recording live; a cut of a file uses --since and --until")
				}
				return cut.file(st, raw, a)
			}
			if len(a) == 0 {
				return usagef("record: missing TOPIC (which topics to record)")
			}
			if cut.since != "" || cut.until != "" {
				return usagef("record: --since and --until cut a log file (--from); live, use --for")
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
			if !cut.edits() {
				return nil
			}
			return cut.rewrite(st, raw)
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, true)
	cut.add(f)
	f.StringVar(&raw, "raw", "", "write the raw lines to `FILE` (created or truncated)")
	f.DurationVar(&dur, "for", 0, "stop after this long (default: until interrupted)")
	return cmd
}

// cutFlags cut and anonymise a log (record.go), from a file or after a
// live recording.
type cutFlags struct {
	from         string
	since, until string
	senders      []string
	noHeartbeats bool
	redactJSON   []string
	redactAll    bool
	strip        bool
}

func (c *cutFlags) add(f *pflag.FlagSet) {
	f.StringVar(&c.from, "from", "", "cut the log in `FILE` instead of recording live")
	f.StringVar(&c.since, "since", "", "with --from: keep lines from this `TIME` on (RFC 3339, or +DURATION from the log's start)")
	f.StringVar(&c.until, "until", "", "with --from: keep lines before this `TIME` (RFC 3339, or +DURATION from the log's start)")
	f.StringSliceVar(&c.senders, "sender", nil, "keep only what these services or nicks sent (and the server's lines)")
	f.BoolVar(&c.noHeartbeats, "no-heartbeats", false, "drop the heartbeat lines")
	f.StringSliceVar(&c.redactJSON, "redact-json", nil, "replace the values of these JSON `FIELDS` in payloads by a hash")
	f.BoolVar(&c.redactAll, "redact-payloads", false, "replace every payload by a hash")
	f.BoolVar(&c.strip, "strip-signatures", false, "seal every envelope again, unsigned (a replay needs no key of the recorded mesh)")
}

// edits reports whether a live recording is rewritten after it ends.
func (c *cutFlags) edits() bool {
	return len(c.senders) > 0 || c.noHeartbeats || len(c.redactJSON) > 0 || c.redactAll || c.strip
}

// file cuts the log c.from into out.
func (c *cutFlags) file(st *state, out string, topicArgs0 []string) error {
	in, err := recording.Load(c.from)
	if err != nil {
		return err
	}
	topics, err := topicArgs(in.Namespace(), topicArgs0)
	if err != nil {
		return err
	}
	l, err := c.apply(in, topics)
	if err != nil {
		return err
	}
	if err := l.WriteFile(out); err != nil {
		return err
	}
	fmt.Fprintf(st.env.stderr, "meshbot: wrote %d of the %d lines of %s to %s%s\n", l.Len(), in.Len(), c.from, out, c.describe(topics))
	return nil
}

// rewrite applies the cut to a live recording in path.
func (c *cutFlags) rewrite(st *state, path string) error {
	in, err := recording.Load(path)
	if err != nil {
		return err
	}
	l, err := c.apply(in, nil)
	if err != nil {
		return err
	}
	if err := l.WriteFile(path); err != nil {
		return err
	}
	fmt.Fprintf(st.env.stderr, "meshbot: kept %d of them%s\n", l.Len(), c.describe(nil))
	return nil
}

// apply cuts l: topics (none: all), time, senders, heartbeats, then the
// payloads and signatures (envelopes sealed again are unsigned).
func (c *cutFlags) apply(l *recording.Log, topics []string) (*recording.Log, error) {
	if len(topics) > 0 {
		l = l.Topics(topics...)
	}
	if c.since != "" || c.until != "" {
		from, err := logTime(l, "--since", c.since)
		if err != nil {
			return nil, err
		}
		to, err := logTime(l, "--until", c.until)
		if err != nil {
			return nil, err
		}
		l = l.Between(from, to)
	}
	if len(c.senders) > 0 {
		l = l.Senders(c.senders...)
	}
	if c.noHeartbeats {
		l = l.WithoutHeartbeats()
	}
	var rw recording.Rewrite
	switch {
	case c.redactAll:
		rw = recording.RedactAll()
	case len(c.redactJSON) > 0:
		rw = recording.RedactJSON(c.redactJSON...)
	}
	if rw != nil {
		var err error
		if l, err = l.Anonymize(rw, nil); err != nil {
			return nil, err
		}
	}
	if c.strip {
		return l.Reseal(nil)
	}
	return l, nil
}

// describe says what the cut did, for the summary line.
func (c *cutFlags) describe(topics []string) string {
	var parts []string
	if len(topics) > 0 {
		parts = append(parts, "topics "+strings.Join(topics, " "))
	}
	if c.since != "" {
		parts = append(parts, "since "+c.since)
	}
	if c.until != "" {
		parts = append(parts, "until "+c.until)
	}
	if len(c.senders) > 0 {
		parts = append(parts, "sent by "+strings.Join(c.senders, " "))
	}
	if c.noHeartbeats {
		parts = append(parts, "no heartbeats")
	}
	switch {
	case c.redactAll:
		parts = append(parts, "payloads redacted")
	case len(c.redactJSON) > 0:
		parts = append(parts, "JSON fields "+strings.Join(c.redactJSON, ",")+" redacted")
	}
	if c.strip {
		parts = append(parts, "signatures stripped")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// logTime reads a --since/--until value: "" (open), an RFC 3339 time, or
// +DURATION (or DURATION) from the log's start.
func logTime(l *recording.Log, flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(v, "+")); err == nil {
		if l.Start().IsZero() {
			return time.Time{}, usagef("%s %s: the log has no times (no server-time tags) to count from", flag, v)
		}
		return l.Start().Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usagef("%s %q: want a time (RFC 3339, e.g. 2026-01-02T15:04:05Z) or +DURATION from the log's start (e.g. +90s)", flag, v)
	}
	return t, nil
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

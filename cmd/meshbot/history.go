package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/mesh"
)

func newHistoryCmd(st *state) *cobra.Command {
	var (
		conn      connFlags
		id        identityFlags
		trust     trustFlags
		storePath string
		maxAge    time.Duration
		maxBytes  int64
		skipBeats bool
		rescan    time.Duration
		consoleF  consoleFlags
	)
	cmd := &cobra.Command{
		Use:   "history --store FILE",
		Short: "Run a history recorder: journal every topic of the namespace and serve replays",
		Long: `Run an instance of the history service: it joins every mesh channel of the
namespace — the topics announced in heartbeats and the channels the server
lists, found again every --rescan — and journals every line it receives,
with the server's tags (server-time, msgid), to a durable store (bbolt, one
file; docs/HISTORY-STORE.md). It serves the record to 'meshbot replay' and
history.Replay, page by page, as the reader asks.

Records are committed every 100 ms or 1,000 lines (fsync): a crash loses at
most the lines of the last 100 ms, and never damages what was committed. A
damaged store is reported at start and its intact prefix kept.

A recorder that starts, or whose connection dropped, first copies what it
missed from another recorder, or, with none, from the server's CHATHISTORY
where the server has one (ergo).

In a signed mesh the recorder must be given the mesh's keys, like any
member: a signing key of its own (--ed25519-key-file for the history
service, or the mesh's --hmac-key-file) and the keyring (--keyring). It
signs its answers, and members running with --require-signed drop unsigned
answers; it must verify the members' signed requests to answer them at all.
It records lines it cannot verify, but says so in its log: "lines are signed
with keys this recorder does not have".

It prints "ready NICK" on stdout once it records, and runs until interrupted.`,
		Example: `  meshbot history --store /var/lib/meshbot/history.db
  meshbot history --store history.db --max-age 168h --max-bytes 10000000000

  # in a signed mesh (ed25519 keys from 'meshbot keygen', signatures required):
  meshbot history --store history.db \
    --ed25519-key-file history.key --keyring mesh.keyring --require-signed`,
		Args: nargs(0, 0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if storePath == "" {
				return usagef("history: --store FILE is required")
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			s, err := store.Open(store.Options{Path: storePath, MaxAge: maxAge, MaxBytes: maxBytes})
			if s == nil {
				return fmt.Errorf("history: %w", err)
			}
			if err != nil { // damaged, intact prefix kept
				fmt.Fprintf(st.env.stderr, "meshbot: history: %v\n", err)
			}
			defer s.Close()
			ctx := cmd.Context()
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			defer conn.closeNode(st, n)
			defer consoleF.attach(st, n)()
			rec := recorder.New(n, s, recorder.Config{Rescan: rescan, SkipHeartbeats: skipBeats, Log: st.log})
			done := make(chan error, 1)
			go func() { done <- rec.Run(ctx) }()
			fmt.Fprintf(st.env.stdout, "ready %s\n", n.Nick())
			err = <-done
			fmt.Fprintf(st.env.stderr, "meshbot: history: recorded %d lines (%d not stored, %d dropped)\n", rec.Lines(), rec.Errors(), rec.Dropped())
			if u := rec.Unverified(); u > 0 {
				fmt.Fprintf(st.env.stderr, "meshbot: history: %d recorded lines are signed with keys this recorder does not have: give it the mesh's keys (--keyring and a signing key), or members cannot read history from it\n", u)
			}
			return err
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, history.Service)
	trust.add(f, true)
	consoleF.add(f)
	f.StringVar(&storePath, "store", "", "the store `FILE` (created if missing)")
	f.DurationVar(&maxAge, "max-age", 0, "drop lines older than this (0: keep)")
	f.Int64Var(&maxBytes, "max-bytes", 0, "keep at most about this many bytes of lines, oldest dropped first (0: no bound)")
	f.BoolVar(&skipBeats, "skip-heartbeats", false, "do not record the heartbeat channel")
	f.DurationVar(&rescan, "rescan", 2*time.Second, "how often to look for new topics")
	return cmd
}

func newReplayCmd(st *state) *cobra.Command {
	var (
		conn     connFlags
		id       identityFlags
		trust    trustFlags
		from     string
		asJSON   bool
		progress string
	)
	cmd := &cobra.Command{
		Use:   "replay TOPIC",
		Short: "Print a topic's recorded history, decoded",
		Long: `Ask the history service for a topic's recorded lines and print them decoded,
as 'meshbot tail' does, from --from to the end of the record, then exit.

--from takes "start" (the default: the first line kept), a time (RFC 3339,
e.g. 2026-11-23T08:00:00Z, or a duration ago such as 10m), or an offset
TIME/MSGID as printed by --json ("offset"): the replay then starts after
that line. Pages are asked for a few at a time: a slow terminal slows the
recorder down, never the server. With no recorder running, the server's
CHATHISTORY is read where it has one (ergo).

Lines are verified with the keys given, as a member would: in a signed mesh
give it the mesh's keyring (--keyring; with --require-signed, unsigned lines
are refused too) and a signing key (--ed25519-key-file or --hmac-key-file),
since a recorder or members running with --require-signed drop unsigned
requests. Lines the keys refuse are not printed: their count, by reason
(forged, unsigned, unknown-key, ...), goes to stderr, and the exit status is
1 when there were any. A recorder that is present but not verified by the
keys (it lacks the mesh's keys) is reported as such.

A progress bar goes to stderr when it is a terminal (--progress=always to
force it, never to hide it).`,
		Example: `  meshbot replay orders.created
  meshbot replay orders.created --from 1h
  meshbot replay orders.created --from 2026-11-23T08:19:43.921Z/abc123 --json

  # in a signed mesh (ed25519 keys from 'meshbot keygen', signatures required):
  meshbot replay orders.created \
    --ed25519-key-file ops.key --keyring mesh.keyring --require-signed`,
		Args: nargs(1, 1, "TOPIC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			topics, err := topicArgs(conn.namespace, a)
			if err != nil {
				return err
			}
			topic := topics[0]
			opts, err := replayFrom(from, time.Now())
			if err != nil {
				return usageError{err}
			}
			var bar *progressbar.ProgressBar
			switch progress {
			case "always", "auto":
				if progress == "always" || isTerminalWriter(st.env.stderr) {
					bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(st.env.stderr),
						progressbar.OptionSetDescription("replaying "+topic), progressbar.OptionShowCount(),
						progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
					opts.Progress = func(done, remaining uint64) {
						bar.ChangeMax64(int64(done + remaining))
						_ = bar.Set64(int64(done))
					}
				}
			case "never":
			default:
				return usagef("replay: --progress is auto, always or never")
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
			channel := mesh.Channel(cfg.Namespace, topic)
			refused := map[string]uint64{}
			opts.OnReject = func(err error) { refused[envelope.Reason(err)]++ }
			stats, err := history.Replay(ctx, n, topic, opts, func(r history.Replayed) error {
				ob := mesh.Observation{Time: r.Offset.At(), Channel: channel, Topic: topic, From: r.Nick,
					MsgID: r.Offset.MsgID, Mesh: true, Envelope: r.Envelope}
				v := observationView(ob)
				if asJSON {
					b, err := json.Marshal(struct {
						Offset string `json:"offset"`
						*lineView
					}{r.Offset.String(), v})
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(st.env.stdout, string(b))
					return err
				}
				_, err := fmt.Fprintln(st.env.stdout, v.text())
				return err
			})
			if bar != nil {
				_ = bar.Finish()
			}
			warnRefused(st.env.stderr, refused)
			if err != nil {
				var re *mesh.RemoteError
				switch {
				case errors.Is(err, history.ErrUnverifiedRecorder):
					return fmt.Errorf("replay: %w", err)
				case errors.Is(err, mesh.ErrNoResponders) || errors.As(err, &re):
					return fmt.Errorf("replay: %w (is a 'meshbot history' recorder running in namespace %q?)", err, cfg.Namespace)
				}
				return interrupted(ctx, fmt.Errorf("replay: %w", err))
			}
			fmt.Fprintf(st.env.stderr, "meshbot: replayed %d envelopes in %d lines (%d pages); last offset %s\n",
				stats.Envelopes, stats.Lines, stats.Pages, stats.Last)
			if n := refusedTotal(refused); n > 0 {
				return fmt.Errorf("replay: incomplete: %d refused lines or envelopes were not printed", n)
			}
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, true)
	f.StringVar(&from, "from", "start", `where to start: "start", a time (RFC 3339, or a duration ago like 10m), or an offset TIME/MSGID`)
	f.BoolVar(&asJSON, "json", false, "print one JSON object per envelope, with its offset")
	f.StringVar(&progress, "progress", "auto", "progress bar on stderr: auto (when a terminal), always or never")
	return cmd
}

// warnRefused tells, on w, how many replayed lines or envelopes the keys
// refused, by reason, and what to do; nothing when none was.
func warnRefused(w io.Writer, refused map[string]uint64) {
	n := refusedTotal(refused)
	if n == 0 {
		return
	}
	reasons := make([]string, 0, len(refused))
	for r, c := range refused {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, c))
	}
	slices.Sort(reasons)
	fmt.Fprintf(w, "meshbot: replay: %d recorded lines or envelopes refused by the keys given, not printed (%s); "+
		"to read them, give the keyring of the mesh that signed them (--keyring)\n", n, strings.Join(reasons, " "))
}

func refusedTotal(refused map[string]uint64) uint64 {
	var n uint64
	for _, c := range refused {
		n += c
	}
	return n
}

// replayFrom turns --from into replay options.
func replayFrom(s string, now time.Time) (history.ReplayOptions, error) {
	var o history.ReplayOptions
	switch {
	case s == "" || s == "start":
		return o, nil
	case strings.Contains(s, "/"):
		off, err := envelope.ParseOffset(s)
		if err != nil {
			return o, fmt.Errorf("replay: --from %q: %w", s, err)
		}
		o.After = &off
		return o, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		o.Since = now.Add(-d)
		return o, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return o, fmt.Errorf(`replay: --from %q: not "start", a duration, an RFC 3339 time or an offset TIME/MSGID`, s)
	}
	o.Since = t
	return o, nil
}

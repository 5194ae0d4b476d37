package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envAnnotation marks a flag that falls back to an environment variable.
const envAnnotation = "meshbot_env"

// usageError is an error in how the tool was called (arguments, flags);
// the error message is followed by a pointer to --help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes the tool with args and returns the process exit code: 0 on
// success (also when a long-running command was stopped by a signal), 1 on
// any error, with the message on stderr.
func run(ctx context.Context, args []string, e env) int {
	root, st := newRoot(e)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if err == errSilent {
		return 1
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "meshbot") {
		msg = "meshbot: " + msg
	}
	fmt.Fprintln(e.stderr, msg)
	var ue usageError
	if errors.As(err, &ue) || !st.started {
		fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return 1
}

// state is shared by the commands of one run.
type state struct {
	env      env
	logLevel string
	context  string // --context: the saved connection settings to use
	log      *slog.Logger
	started  bool // the command's own code started (usage was fine)
}

func newRoot(e env) (*cobra.Command, *state) {
	st := &state{env: e, log: slog.New(slog.DiscardHandler)}
	root := &cobra.Command{
		Use:   "meshbot",
		Short: "Tools for a meshbot service mesh over IRC",
		Long: `meshbot runs a service mesh over IRC: every service instance is an IRC bot,
topic T of namespace NS is the channel #NS.T, requests and responses travel
as private messages, and envelopes ride in the client-only tag +meshbot/e
(or in the message text behind "~m1" on servers without message tags).

This tool publishes events, watches topics, makes requests, decodes
recorded lines and runs a demo mesh. Connection flags fall back to
environment variables (shown in each command's help), then to the saved
settings of a context in ~/.config/meshbot/config.toml (--context NAME, or
the file's default context); a flag on the command line always wins:

  context = "local"
  [contexts.local]
  server = "127.0.0.1:6667"
  [contexts.prod]
  server = "irc.example.net:6697"
  tls = true
  namespace = "shop"`,
		Example: `  # See a mesh at work on a throwaway local IRC server:
  meshbot demo

  # In another terminal, watch it and publish into it:
  meshbot tail orders.created --server 127.0.0.1:6667
  echo '{"order":99}' | meshbot pub orders.created -`,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			st.started = true
			if err := applyEnv(cmd.Flags(), e.getenv); err != nil {
				return err
			}
			if err := applyContext(cmd.Flags(), e.getenv, st.context); err != nil { // config.go
				return err
			}
			level, err := parseLevel(st.logLevel)
			if err != nil {
				return err
			}
			st.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			return nil
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&st.logLevel, "log-level", "warn", "runtime log level on stderr: debug, info, warn or error")
	bindEnv(pf, "log-level", "MESHBOT_LOG_LEVEL")
	pf.StringVar(&st.context, "context", "", "use the saved connection settings NAME of ~/.config/meshbot/config.toml (flags and environment variables win over them) [$MESHBOT_CONTEXT, $MESHBOT_CONFIG for another file]")

	root.AddCommand(
		newPubCmd(st),
		newTailCmd(st),
		newMembersCmd(st),
		newClaimsCmd(st),
		newRecordCmd(st),
		newHistoryCmd(st),
		newReplayCmd(st),
		newReplayLogCmd(st),
		newReqCmd(st),
		newDecodeCmd(st),
		newDemoCmd(st),
		newKeygenCmd(st),
		newServeCmd(st),
		newCheckCmd(st),
		newStateCmd(st),
		newBenchCmd(st),
	)
	return root, st
}

// bindEnv makes flag name of fs fall back to the environment variable
// envName, and says so in its help.
func bindEnv(fs *pflag.FlagSet, name, envName string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("bindEnv: no flag " + name)
	}
	_ = fs.SetAnnotation(name, envAnnotation, []string{envName})
	f.Usage += " [$" + envName + "]"
}

// applyEnv sets every flag not given on the command line from its
// environment variable, when that is set: flag > environment > default.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		names := f.Annotations[envAnnotation]
		if err != nil || f.Changed || len(names) == 0 {
			return
		}
		v := getenv(names[0])
		if v == "" {
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = fmt.Errorf("%s=%q (for --%s): %v", names[0], v, f.Name, serr)
		}
	})
	return err
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// nargs checks the number of positional arguments (at least lo, at most hi
// unless hi < 0), naming them in the error.
func nargs(lo, hi int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		switch {
		case len(a) < lo:
			return usagef("%s: missing %s", cmd.Name(), names)
		case hi >= 0 && len(a) > hi:
			return usagef("%s: too many arguments (%d); want %s", cmd.Name(), len(a), names)
		}
		return nil
	}
}

// interrupted turns a context error caused by a signal into a clear one.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return errors.New("interrupted")
	}
	return err
}

// readInput returns the argument, or stdin's content for "-" (limit bytes at
// most).
func readInput(arg string, stdin io.Reader, limit int64) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("stdin holds more than %d bytes", limit)
	}
	return b, nil
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}

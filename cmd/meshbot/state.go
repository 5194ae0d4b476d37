package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/internal/wait"
	"github.com/meshbot/meshbot/mesh"
	dstate "github.com/meshbot/meshbot/state"
)

// stateFlags are the flags every state subcommand shares.
type stateFlags struct {
	conn    connFlags
	id      identityFlags
	trust   trustFlags
	asJSON  bool
	timeout time.Duration
}

func (f *stateFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.conn.add(fs, true)
	f.id.add(fs, "meshbot")
	f.trust.add(fs, true)
	fs.BoolVar(&f.asJSON, "json", false, "print JSON (one document; with watch, one object per line)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the domain to be loaded")
}

func newStateCmd(st *state) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Read, watch and write the domains of state services own",
		Long: `Each service owns a domain of the system state (docs/PROTOCOL.md §8): a
map of keys to values named SERVICE or SERVICE.NAME, which only instances
of SERVICE write and every member that reads it holds whole. Its updates
travel in the channel #NAMESPACE.DOMAIN._state.

  list               the domains the members announce: owner, version,
                     availability, keys, bytes, holders (from heartbeats)
  list DOMAIN        the domain's keys with their versions
  get DOMAIN [KEY]   a key's value, or every key with its value
  watch DOMAIN [KEY] every change as it happens, until interrupted
  put DOMAIN KEY VALUE|-   write a key as the owning service (operators,
                     tests); --delete deletes it, --if-version and
                     --if-absent make it a compare-and-set
  history DOMAIN [KEY]     the domain's updates as recorded by the history
                     service, oldest first

The tool loads the domain like any member: from a member that holds a
copy, else from history. In a signed mesh give --keyring (and, to put, the
owning service's signing key).`,
		Example: `  meshbot state list
  meshbot state get config.flags dark-mode
  meshbot state watch config.flags --json
  meshbot state put config.flags dark-mode on --ed25519-key-file config.key --keyring ring.keys`,
	}
	cmd.AddCommand(newStateListCmd(st), newStateGetCmd(st), newStateWatchCmd(st), newStatePutCmd(st), newStateHistoryCmd(st))
	return cmd
}

// checkDomainArg checks a DOMAIN argument.
func checkDomainArg(d string) error {
	if err := dstate.ValidDomain(d); err != nil {
		return usagef("state: %v", err)
	}
	return nil
}

// stateNode connects the tool's node (of service, when not empty).
func stateNode(ctx context.Context, st *state, f *stateFlags, service string) (*mesh.Node, error) {
	if service != "" && !f.id.fs.Changed("service") {
		f.id.service = service
	}
	cfg, err := nodeConfig(st, &f.conn, &f.id, &f.trust)
	if err != nil {
		return nil, err
	}
	return f.conn.connect(ctx, cfg)
}

// loadDomain mirrors name and waits for its first load.
func loadDomain(ctx context.Context, n *mesh.Node, name string, timeout time.Duration) (*mesh.Domain, error) {
	d, err := n.Domain(name)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := d.Wait(wctx); err != nil {
		if ctx.Err() != nil {
			return nil, errors.New("interrupted")
		}
		return nil, fmt.Errorf("%s was not loaded within %v: no member holding it answered (is a member of the mesh mirroring it, and does this tool have the mesh's keys?)", name, timeout)
	}
	return d, nil
}

func newStateListCmd(st *state) *cobra.Command {
	var (
		f      stateFlags
		settle time.Duration
	)
	cmd := &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: "List the domains announced in heartbeats, or a domain's keys",
		Long: `Without DOMAIN: listen for --settle to the heartbeats and print every
domain a member announces holding:

  DOMAIN  OWNER  VERSION  AVAILABLE  KEYS  BYTES  HOLDERS

AVAILABLE is yes while a live instance of the owner holds it, stale
otherwise. VERSION, KEYS and BYTES are the best holder's (the highest
version). With DOMAIN: load it and print its keys:

  KEY  VERSION  DOMAIN VERSION  WRITER  BYTES`,
		Example: `  meshbot state list
  meshbot state list --json | jq -r '.domains[] | select(.available | not) | .domain'
  meshbot state list config.flags`,
		Args: nargs(0, 1, "[DOMAIN]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 1 {
				if err := checkDomainArg(a[0]); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			n, err := stateNode(ctx, st, &f, "")
			if err != nil {
				return err
			}
			defer f.conn.closeNode(st, n)
			if len(a) == 0 {
				if !wait.Sleep(ctx, settle) {
					return errors.New("interrupted")
				}
				return printDomains(st.env.stdout, domainsFromBeats(n), f.asJSON)
			}
			d, err := loadDomain(ctx, n, a[0], f.timeout)
			if err != nil {
				return err
			}
			snap, err := d.Snapshot(ctx)
			if err != nil {
				return err
			}
			return printSnapshot(st.env.stdout, snap, false, f.asJSON)
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&settle, "settle", 1500*time.Millisecond, "how long to listen for heartbeats before listing the domains")
	return cmd
}

func newStateGetCmd(st *state) *cobra.Command {
	var f stateFlags
	cmd := &cobra.Command{
		Use:   "get DOMAIN [KEY]",
		Short: "Print a key's value, or every key of a domain with its value",
		Long: `Load DOMAIN and print KEY's value as it is (bytes, then a newline), or
with no KEY every key as KEY=VALUE (values quoted when not printable).
--json prints the entry (or the whole domain) with its versions; a value
that is not UTF-8 is given base64 in value_b64. A key the domain does not
hold is an error (exit 1).`,
		Example: `  meshbot state get config.flags dark-mode
  meshbot state get config.flags
  meshbot state get config.flags dark-mode --json | jq .version`,
		Args: nargs(1, 2, "DOMAIN [KEY]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkDomainArg(a[0]); err != nil {
				return err
			}
			ctx := cmd.Context()
			n, err := stateNode(ctx, st, &f, "")
			if err != nil {
				return err
			}
			defer f.conn.closeNode(st, n)
			d, err := loadDomain(ctx, n, a[0], f.timeout)
			if err != nil {
				return err
			}
			if len(a) == 1 {
				snap, err := d.Snapshot(ctx)
				if err != nil {
					return err
				}
				return printSnapshot(st.env.stdout, snap, true, f.asJSON)
			}
			e, err := d.Get(ctx, a[1])
			if err != nil {
				return err
			}
			return printEntry(st.env.stdout, a[0], e, d.Info(), f.asJSON)
		},
	}
	f.add(cmd)
	return cmd
}

func newStateWatchCmd(st *state) *cobra.Command {
	var f stateFlags
	cmd := &cobra.Command{
		Use:   "watch DOMAIN [KEY]",
		Short: "Print every change of a domain (or of one key) until interrupted",
		Long: `Load DOMAIN, print where it stands, then one line per change, in the
order the copy makes them:

  TIME  put|deleted  KEY@VERSION  vOLD→vNEW  WRITER  VALUE
  TIME  available|unavailable

--json prints one object per line instead (the first of kind "loaded").`,
		Example: `  meshbot state watch config.flags
  meshbot state watch config.flags dark-mode --json >> flags.jsonl`,
		Args: nargs(1, 2, "DOMAIN [KEY]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkDomainArg(a[0]); err != nil {
				return err
			}
			ctx := cmd.Context()
			n, err := stateNode(ctx, st, &f, "")
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			defer f.conn.closeNode(st, n)
			d, err := n.Domain(a[0])
			if err != nil {
				return err
			}
			key := ""
			if len(a) == 2 {
				key = a[1]
			}
			return watchDomain(ctx, st.env.stdout, d, key, f.timeout, f.asJSON)
		},
	}
	f.add(cmd)
	return cmd
}

func newStatePutCmd(st *state) *cobra.Command {
	var (
		f         stateFlags
		ifVersion uint64
		ifAbsent  bool
		del       bool
	)
	cmd := &cobra.Command{
		Use:   "put DOMAIN KEY [VALUE|-]",
		Short: "Write a key of a domain as its owning service (operators, tests)",
		Long: `Connect as an instance of the domain's owner (the service its name starts
with: --service defaults to it), load the domain, and write KEY: VALUE, or
stdin's content for "-", or delete it with --delete. --if-version N writes
only if the key is at version N, --if-absent only if it does not exist; a
compare-and-set that loses exits 1 naming the winner. Prints the key as
written: KEY@VERSION (domain version N).`,
		Example: `  meshbot state put config.flags dark-mode on
  meshbot state put config.flags dark-mode off --if-version 3
  jq -c . flags.json | meshbot state put config.flags all -
  meshbot state put config.flags dark-mode --delete`,
		Args: nargs(2, 3, "DOMAIN KEY [VALUE|-]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkDomainArg(a[0]); err != nil {
				return err
			}
			if err := dstate.CheckKey(a[1]); err != nil {
				return usagef("state put: %v", err)
			}
			switch {
			case del && len(a) == 3:
				return usagef("state put: --delete takes no VALUE")
			case !del && len(a) != 3:
				return usagef("state put: missing VALUE (or - for stdin, or --delete)")
			case ifAbsent && cmd.Flags().Changed("if-version"):
				return usagef("state put: --if-version and --if-absent exclude each other")
			}
			var opts []mesh.WriteOption
			if cmd.Flags().Changed("if-version") {
				opts = append(opts, mesh.IfVersion(ifVersion))
			}
			if ifAbsent {
				opts = append(opts, mesh.IfAbsent())
			}
			var value []byte
			if !del {
				var err error
				if value, err = readInput(a[2], st.env.stdin, 1<<20); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			n, err := stateNode(ctx, st, &f, dstate.Owner(a[0]))
			if err != nil {
				return err
			}
			defer f.conn.closeNode(st, n)
			d, err := loadDomain(ctx, n, a[0], f.timeout)
			if err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, f.timeout)
			defer cancel()
			var e dstate.Entry
			if del {
				e, err = d.Delete(wctx, a[1], opts...)
			} else {
				e, err = d.Put(wctx, a[1], value, opts...)
			}
			if err != nil {
				return err
			}
			if f.asJSON {
				return printEntry(st.env.stdout, a[0], e, d.Info(), true)
			}
			what := "put"
			if del {
				what = "deleted"
			}
			fmt.Fprintf(st.env.stdout, "%s %s@%d (domain %s version %d)\n", what, e.Key, e.Version, a[0], e.DomainVersion)
			return nil
		},
	}
	f.add(cmd)
	fs := cmd.Flags()
	fs.Uint64Var(&ifVersion, "if-version", 0, "write only if the key is at this version (compare-and-set)")
	fs.BoolVar(&ifAbsent, "if-absent", false, "write only if the key does not exist")
	fs.BoolVar(&del, "delete", false, "delete the key instead of writing a value")
	return cmd
}

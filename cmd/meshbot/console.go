package main

import (
	"github.com/spf13/pflag"

	"github.com/meshbot/meshbot/console"
	"github.com/meshbot/meshbot/mesh"
)

// consoleFlags configure the IRC console of a command's node (package
// console, docs/CONSOLE.md): what people may ask it from an IRC client.
type consoleFlags struct {
	accounts   []string
	restricted bool
	off        bool
}

func (c *consoleFlags) add(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.accounts, "console-account", nil, "accounts (the server's account tag) trusted to act through the IRC console (req, pub), besides IRC and channel operators; comma-separated, repeatable")
	bindEnv(fs, "console-account", "MESHBOT_CONSOLE_ACCOUNTS")
	fs.BoolVar(&c.restricted, "console-restricted", false, "the IRC console answers its reading commands (status, members, methods, claims, state) to trusted people only")
	bindEnv(fs, "console-restricted", "MESHBOT_CONSOLE_RESTRICTED")
	fs.BoolVar(&c.off, "no-console", false, "answer no commands from people on IRC (CTCP VERSION and PING still answer)")
}

// attach starts n's console; the returned func stops it (before the node
// closes).
func (c *consoleFlags) attach(st *state, n *mesh.Node) (stop func()) {
	if c.off {
		return func() {}
	}
	con := console.Attach(n, console.Config{Accounts: c.accounts, Restricted: c.restricted, Logger: st.log})
	return con.Stop
}

// Package console lets a person in any IRC client read a mesh and talk to
// it: every node with a console attached answers commands sent to it by
// private message, or with '!' in its mesh channels, in a few legible
// NOTICE lines (docs/CONSOLE.md).
//
//	/msg pricing-1 help
//	/msg pricing-1 status
//	/msg pricing-1 members
//	/msg pricing-1 methods
//	/msg pricing-1 req pricing quote {"item":"tea","qty":2}
//	/msg pricing-1 quote {"item":"tea","qty":2}     (its own method: a req)
//	!status                                         (in a channel: each bot, one line)
//	!pricing-1 claims orders.created                (in a channel: that bot, in full)
//
// Reading (help, status, members, methods, claims, state) is open to
// anyone unless Config.Restricted; acting (req, pub) only to the people
// the mesh trusts: IRC operators (asked of the server with WHOIS),
// channel operators of the mesh's channels the node is in, and the
// accounts of Config.Accounts (the server's account tag). Everyone else
// is told why they are refused.
//
// What it guarantees: the console works through the node's public API
// only; it never blocks the node's traffic (texts reach it through a
// bounded queue, answers go out through the node's writer); every asker is
// rate-limited (4 commands at once, then one every 2 s; all askers
// together 20, then 5 a second), in bounded memory; at most 4 slow
// commands (req, pub, claims, state) run at once, each bounded in time
// (Config.RequestTimeout; claims watches 2 s) and size
// (Config.MaxPayload); an answer has at most 12 lines. Nothing typed makes
// a node crash, flood, or leave its channels.
//
// Every meshbot command that runs a node attaches a console (serve,
// history, demo); a service written with the mesh package gets one with
//
//	c := console.Attach(node, console.Config{Accounts: []string{"alice"}})
//	defer c.Stop()
//
// CTCP VERSION, PING, TIME and CLIENTINFO are answered by every node,
// console or not (package mesh).
package console

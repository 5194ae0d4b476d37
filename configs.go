// Package meshbot is a framework for running a service mesh over IRC: every
// service instance is an IRC bot, channels are topics, and the IRC server is
// the only infrastructure. The runtime lives in the subpackages; this root
// package only carries files shared by several of them.
package meshbot

import "embed"

// IRCdConfigs holds the IRC server configurations meshbot ships, tuned for
// bots (flood limits off, large queues, fast dead-peer detection):
//
//   - testdata/inspircd.conf: InspIRCd 3 (text/template; single server or
//     one side of a linked pair)
//   - testdata/ngircd.conf: ngIRCd (text/template)
//   - testdata/ergo.yaml: ergo 2.x, a plain config usable as-is with
//     `ergo run --conf testdata/ergo.yaml`
//
// internal/ircd renders them to start throwaway servers for tests and demos.
//
//go:embed testdata/inspircd.conf testdata/ngircd.conf testdata/ergo.yaml
var IRCdConfigs embed.FS

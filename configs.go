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
//     `ergo run --conf testdata/ergo.yaml` (accounts and SASL built in)
//   - testdata/atheme.conf: atheme-services 7.2 (text/template), the
//     services daemon that gives InspIRCd accounts and SASL
//   - testdata/atheme-inspircd.conf: what InspIRCd adds to inspircd.conf
//     to link to atheme, and a TLS port for SASL EXTERNAL (text/template)
//
// internal/ircd renders them to start throwaway servers for tests and demos.
//
//go:embed testdata/inspircd.conf testdata/ngircd.conf testdata/ergo.yaml
//go:embed testdata/atheme.conf testdata/atheme-inspircd.conf
var IRCdConfigs embed.FS

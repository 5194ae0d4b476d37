package mesh

import (
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// CTCP: every node answers VERSION, PING, TIME and CLIENTINFO sent to its
// nick, as an IRC client does (by NOTICE), so that a person's client can
// ask any bot what it is and how far away it is. CTCP sent to a channel
// is not answered (every bot in it would), nor are other requests. The
// answers of a whole node are rate-limited (5 at once, then one a second):
// no amount of asking makes it flood.

// ctcpMaxArg bounds the PING token echoed back.
const ctcpMaxArg = 64

// onCTCP answers a CTCP request from nick; on the reader, never blocking.
func (n *Node) onCTCP(nick, text string) {
	body := strings.TrimSuffix(strings.TrimPrefix(text, "\x01"), "\x01")
	cmd, arg, _ := strings.Cut(body, " ")
	var answer string
	switch strings.ToUpper(cmd) {
	case "VERSION":
		answer = "VERSION meshbot " + Version() + " (service " + n.cfg.Service + ", instance " + n.Instance() + "; /msg " + n.Nick() + " help)"
	case "PING":
		if len(arg) > ctcpMaxArg {
			arg = arg[:ctcpMaxArg]
		}
		answer = strings.TrimSpace("PING " + strings.Map(ctcpSafe, arg))
	case "TIME":
		answer = "TIME " + time.Now().Format(time.RFC1123Z)
	case "CLIENTINFO":
		answer = "CLIENTINFO CLIENTINFO PING TIME VERSION"
	default:
		return
	}
	t := n.talk
	t.mu.Lock()
	ok := t.ctcp.take(time.Now())
	t.mu.Unlock()
	if ok {
		n.noticeAsync(nick, "\x01"+answer+"\x01")
	}
}

// ctcpSafe drops what would end or break a CTCP answer.
func ctcpSafe(r rune) rune {
	if r < ' ' || r == 0x7f {
		return -1
	}
	return r
}

var (
	versionOnce sync.Once
	version     string
)

// Version is the version of meshbot in this binary: the module's version
// when built from a release, "(devel)" from a work tree.
func Version() string {
	versionOnce.Do(func() {
		version = "(devel)"
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		const module = "github.com/meshbot/meshbot"
		if bi.Main.Path == module && bi.Main.Version != "" {
			version = bi.Main.Version
			return
		}
		for _, d := range bi.Deps {
			if d.Path == module && d.Version != "" {
				version = d.Version
				return
			}
		}
	})
	return version
}

package meshtest

import (
	"slices"
	"strings"
	"testing/synctest"
	"time"

	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// Which recorded lines reach the node, and how. A log is what the server
// sent the node that recorded it (the owner); the node under test takes
// the owner's place:
//
//   - PRIVMSGs in a channel reach it as recorded when it is in that
//     channel (it joined it, by subscribing, publishing or observing);
//   - private messages to the owner (requests) reach it addressed to its
//     own nick, when the owner was an instance of the service under test;
//   - JOIN, PART and KICK of others in its channels, and every QUIT and
//     NICK, reach it as recorded: presence, the server's last will;
//   - server lines (registration, NAMES, PING, numerics), the owner's own
//     JOINs and PARTs, replies to what the owner asked (WHO, CHATHISTORY
//     batches) do not: the replay server answers the node's own;
//   - lines of the recorded instances of the service under test do not,
//     unless KeepOwnService: the node replaces them.
//
// The members each channel had when the owner joined it (its first NAMES)
// are what the replay server answers the node's JOIN with.

// feedKind is how a recorded line reaches the node.
type feedKind uint8

const (
	feedChannel feedKind = iota + 1 // as recorded, when the node is in the channel
	feedDirect                      // retargeted to the node's nick
	feedAlways                      // as recorded
)

// feedLine is one recorded line planned for the node.
type feedLine struct {
	at      time.Time
	kind    feedKind
	channel string          // feedChannel: the channel (lower case)
	raw     string          // the line as recorded
	direct  *recording.Line // feedDirect: the line, to address to the node
}

// plan picks the lines of log that may reach a node of service, and the
// members of each channel at the start (without the service's own
// instances unless keepOwn). Lines without a server-time tag take the time
// of the line before them (the log's start for the first ones).
func plan(log *recording.Log, service string, keepOwn bool) ([]feedLine, map[string][]string) {
	owner := strings.ToLower(log.Owner())
	ownerService, _, _ := mesh.ParseNick(owner)
	own := map[string]bool{} // nick → an instance of the service under test
	isOwn := func(nick string) bool {
		if keepOwn || nick == "" {
			return false
		}
		v, ok := own[nick]
		if !ok {
			s, _, _ := mesh.ParseNick(nick)
			v = s == service
			own[nick] = v
		}
		return v
	}
	names := map[string][]string{}
	namesDone := map[string]bool{}
	out := make([]feedLine, 0, log.Len())
	at := log.Start()
	for line := range log.All() {
		l := &line
		if !l.Time.IsZero() {
			at = l.Time
		}
		cmd := l.Command()
		if cmd == "353" || cmd == "366" {
			namesOf(l, names, namesDone, isOwn)
			continue
		}
		if isOwn(l.Nick) || l.InBatch() {
			continue
		}
		byOwner := strings.EqualFold(l.Nick, owner)
		fl := feedLine{at: at, raw: l.String()}
		switch cmd {
		case "PRIVMSG":
			target := l.Param(0)
			switch {
			case l.Nick == "" || len(l.Params()) < 2:
				continue
			case strings.HasPrefix(target, "#"):
				fl.kind, fl.channel = feedChannel, strings.ToLower(target)
			case strings.EqualFold(target, owner) && !byOwner && ownerService == service:
				d := line
				fl.kind, fl.direct = feedDirect, &d
			default:
				continue // the owner's own private messages, echoed
			}
		case "JOIN", "PART", "KICK":
			if byOwner || l.Nick == "" || !strings.HasPrefix(l.Param(0), "#") {
				continue
			}
			if cmd == "KICK" && strings.EqualFold(l.Param(1), owner) {
				continue
			}
			fl.kind, fl.channel = feedChannel, strings.ToLower(l.Param(0))
		case "QUIT", "NICK":
			if byOwner || l.Nick == "" {
				continue
			}
			if cmd == "NICK" && isOwn(l.Param(0)) {
				continue
			}
			fl.kind = feedAlways
		default:
			continue
		}
		out = append(out, fl)
	}
	return out, names
}

// namesOf takes a NAMES line (353, or 366 ending a channel's list): the
// first list of each channel gives its members at the start.
func namesOf(l *recording.Line, names map[string][]string, done map[string]bool, isOwn func(string) bool) {
	if l.Command() == "366" {
		done[strings.ToLower(l.Param(1))] = true
		return
	}
	// 353 <owner> <type> <channel> :<names>
	ps := l.Params()
	if len(ps) < 4 {
		return
	}
	ch := strings.ToLower(ps[len(ps)-2])
	if done[ch] {
		return
	}
	for _, name := range strings.Fields(l.Text()) {
		nick := strings.TrimLeft(name, "~&@%+")
		if i := strings.IndexByte(nick, '!'); i >= 0 {
			nick = nick[:i]
		}
		if nick == "" || isOwn(nick) || slices.Contains(names[ch], nick) {
			continue
		}
		names[ch] = append(names[ch], nick)
	}
}

// play delivers the planned lines at their times, in order: the lines of
// one instant of the virtual clock (the log's times have milliseconds) in
// one write, as a server sends a burst, once everything the lines before
// and the timers due by then caused is done (synctest.Wait). It returns
// how many lines reached the node.
func play(feed []feedLine, srv *server, capt *capture) (delivered int) {
	var buf []byte
	for i := 0; i < len(feed); {
		if wait := time.Until(feed[i].at); wait > 0 {
			time.Sleep(wait)
		}
		synctest.Wait()
		now := time.Now()
		buf = buf[:0]
		n := 0
		for ; i < len(feed) && !feed[i].at.After(now); i++ {
			nick, joined := srv.in(feed[i].channel)
			var ok bool
			if buf, ok = feed[i].appendTo(buf, nick, joined); ok {
				n++
			}
		}
		if n > 0 {
			srv.deliver(buf)
			capt.delivered()
			delivered += n
		}
	}
	return delivered
}

// appendTo appends the line to send the node for fl (with its line
// ending) to b, given the node's nick and whether it is in fl's channel;
// false when the line is not for the node.
func (fl *feedLine) appendTo(b []byte, nick string, joined bool) ([]byte, bool) {
	switch fl.kind {
	case feedChannel:
		if !joined {
			return b, false
		}
	case feedDirect:
		msg := fl.direct.Message()
		msg.Params[0] = nick
		return append(append(b, recording.FormatLine(&msg)...), '\r', '\n'), true
	}
	return append(append(b, fl.raw...), '\r', '\n'), true
}

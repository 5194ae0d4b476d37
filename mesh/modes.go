package mesh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// IRC's own controls on the mesh (docs/CONSOLE.md). People act on a mesh
// the IRC way, and the node follows what the server says:
//
//   - +m on a topic's channel pauses the topic: Publish fails with
//     ErrPaused (or waits, Config.WaitWhilePaused) until -m. The node
//     learns a channel's modes when it joins (MODE query) and from every
//     MODE line after.
//   - KICK of the node from a topic's channel removes it from the topic:
//     it stays out (it no longer rejoins, also after a reconnect), its
//     heartbeats announce the subscription as kicked and no longer as a
//     subscription (so it leaves the topic's anycast group), and Publish
//     to the topic fails with ErrKicked. An INVITE to the channel from a
//     channel operator of the mesh's channels brings it back. A KICK from the heartbeat channel is answered with a
//     rejoin: without it the node is no member.
//   - Channel operators of the mesh's channels the node is in are known
//     from NAMES and MODE: the console trusts them (Node.IsChannelOperator).
//
// The state here is the node's view of its channels on the current
// connection, kept by the connection's reader; talk.mu is a leaf lock.

var (
	// ErrPaused: the topic's channel is moderated (+m): a channel
	// operator paused the topic. -m resumes it.
	ErrPaused = errors.New("mesh: topic paused by a channel operator (+m)")
	// ErrKicked: a channel operator removed this node from the topic's
	// channel (KICK); an INVITE to the channel brings it back.
	ErrKicked = errors.New("mesh: removed from the topic by a channel operator (KICK)")
)

// Pause says who paused a topic (+m) and when; By is "" when the node
// found the channel moderated as it joined.
type Pause struct {
	Topic string
	By    string
	Since time.Time
}

// Kick says who removed the node from a topic, when and why.
type Kick struct {
	Topic  string
	By     string
	Reason string
	At     time.Time
}

// talk is the node's view of the people around it: channel operators and
// modes of its mesh channels, the kicks that removed it from topics, the
// text handler, WHOIS lookups and CTCP answers (text.go, whois.go,
// ctcp.go).
type talk struct {
	mu     sync.Mutex
	chans  map[string]*chanView // lower-case mesh channel the node is in → its view
	kicked map[string]Kick      // lower-case channel → the kick that removed the node
	whois  map[string]*whoisQuery
	text   *textHandler
	ctcp   bucket // CTCP answers, for the whole node
}

// chanView is what the node knows of one mesh channel it is in.
type chanView struct {
	ops    map[string]bool // lower-case nicks with operator status or higher
	pause  *Pause
	resume chan struct{} // closed when the pause ends
}

func newTalk() *talk {
	return &talk{chans: map[string]*chanView{}, kicked: map[string]Kick{}, whois: map[string]*whoisQuery{},
		ctcp: bucket{burst: 5, every: time.Second}}
}

// talkLine takes every line from the server but PRIVMSGs, on the reader.
func (n *Node) talkLine(l *line) {
	switch l.cmd {
	case "001": // a new connection: nothing of the last one holds
		n.talk.reset()
	case "JOIN":
		if strings.EqualFold(l.nick, n.ownNick()) && n.meshChannel(l.param(0)) {
			n.talk.joined(l.param(0))
		}
	case "366": // end of NAMES after our JOIN: ask for the channel's modes
		if ch := l.param(1); n.meshChannel(ch) && !n.closedChannels() { // a closed mesh asks already (chanmodes.go)
			_ = n.client.Cmd.SendRaw("MODE " + ch)
		}
	case "353":
		n.talkNames(l)
	case "324":
		if len(l.params) >= 3 && n.meshChannel(l.params[1]) {
			n.talk.setPause(l.params[1], strings.ContainsRune(l.params[2], 'm'), "", time.Now(), n.cfg.Namespace)
		}
	case "MODE":
		n.talkMode(l)
	case "PART":
		n.talk.left(l.param(0), l.nick, strings.EqualFold(l.nick, n.ownNick()))
	case "KICK":
		n.talk.left(l.param(0), l.param(1), strings.EqualFold(l.param(1), n.ownNick()))
	case "QUIT":
		n.talk.quit(l.nick)
	case "NICK":
		n.talk.renamed(l.nick, l.last())
	case "INVITE":
		n.onInvite(l)
	case "311", "313", "318", "401":
		n.onWhoisReply(l) // whois.go
	}
}

func (t *talk) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, cv := range t.chans {
		cv.endPause()
	}
	clear(t.chans)
}

func (t *talk) joined(ch string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.chans[strings.ToLower(ch)]; old != nil {
		old.endPause()
	}
	t.chans[strings.ToLower(ch)] = &chanView{ops: map[string]bool{}}
	delete(t.kicked, strings.ToLower(ch))
}

// left forgets nick in ch, or the channel when the node itself left.
func (t *talk) left(ch, nick string, self bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := strings.ToLower(ch)
	cv := t.chans[key]
	if cv == nil {
		return
	}
	if self {
		cv.endPause()
		delete(t.chans, key)
		return
	}
	delete(cv.ops, strings.ToLower(nick))
}

func (t *talk) quit(nick string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, cv := range t.chans {
		delete(cv.ops, strings.ToLower(nick))
	}
}

func (t *talk) renamed(from, to string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := strings.ToLower(from)
	for _, cv := range t.chans {
		if cv.ops[f] {
			delete(cv.ops, f)
			cv.ops[strings.ToLower(to)] = true
		}
	}
}

// talkNames takes RPL_NAMREPLY (353) of a mesh channel: who is an
// operator.
func (n *Node) talkNames(l *line) {
	if len(l.params) < 4 || !n.meshChannel(l.params[2]) {
		return
	}
	opChars := n.opPrefixes()
	t := n.talk
	t.mu.Lock()
	defer t.mu.Unlock()
	cv := t.chans[strings.ToLower(l.params[2])]
	if cv == nil {
		return
	}
	for _, name := range strings.Fields(l.last()) {
		rest := strings.TrimLeft(name, "~&@%+!.")
		nick, _, _ := strings.Cut(rest, "!")
		if strings.ContainsAny(name[:len(name)-len(rest)], opChars) {
			cv.ops[strings.ToLower(nick)] = true
		}
	}
}

// talkMode takes a MODE line of a mesh channel: operators given and
// taken, the topic paused and resumed (+m, -m).
func (n *Node) talkMode(l *line) {
	if len(l.params) < 2 || !n.meshChannel(l.params[0]) {
		return
	}
	ch := l.params[0]
	a, b, c := n.chanModeTypes()
	status := n.statusModes()
	opModes := status[:strings.IndexByte(status+"o", 'o')+1]
	args := l.params[2:]
	set := true
	t := n.talk
	for _, m := range l.params[1] {
		switch {
		case m == '+' || m == '-':
			set = m == '+'
		case strings.ContainsRune(status, m):
			if len(args) == 0 {
				continue
			}
			who := args[0]
			args = args[1:]
			if strings.ContainsRune(opModes, m) {
				t.setOp(ch, who, set)
			}
		case strings.ContainsRune(a, m) || strings.ContainsRune(b, m) || strings.ContainsRune(c, m) && set:
			if len(args) > 0 {
				args = args[1:]
			}
		case m == 'm':
			t.setPause(ch, set, l.nick, time.Now(), n.cfg.Namespace)
			if set {
				n.log.Info("topic paused by a channel operator (+m)", "channel", ch, "by", l.nick)
			} else {
				n.log.Info("topic resumed (-m)", "channel", ch, "by", l.nick)
			}
		}
	}
}

func (t *talk) setOp(ch, nick string, op bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cv := t.chans[strings.ToLower(ch)]
	if cv == nil {
		return
	}
	if op {
		cv.ops[strings.ToLower(nick)] = true
	} else {
		delete(cv.ops, strings.ToLower(nick))
	}
}

func (t *talk) setPause(ch string, paused bool, by string, at time.Time, namespace string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cv := t.chans[strings.ToLower(ch)]
	if cv == nil {
		return
	}
	switch {
	case paused && cv.pause == nil:
		topic, _ := TopicOf(namespace, ch)
		cv.pause = &Pause{Topic: topic, By: by, Since: at}
		cv.resume = make(chan struct{})
	case !paused:
		cv.endPause()
	}
}

func (cv *chanView) endPause() {
	if cv.pause != nil {
		cv.pause = nil
		close(cv.resume)
	}
}

// paused returns the pause of ch and a channel closed when it ends; nil
// when ch is not paused.
func (t *talk) paused(ch string) (*Pause, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cv := t.chans[strings.ToLower(ch)]; cv != nil && cv.pause != nil {
		p := *cv.pause
		return &p, cv.resume
	}
	return nil, nil
}

// checkPaused is called before an event is published on channel: an error
// wrapping ErrPaused when its topic is paused, or, with
// Config.WaitWhilePaused, a wait until it resumes (or ctx ends).
func (n *Node) checkPaused(ctx context.Context, channel string) error {
	for {
		p, resume := n.talk.paused(channel)
		if p == nil {
			return nil
		}
		by := ""
		if p.By != "" {
			by = " by " + p.By
		}
		if !n.cfg.WaitWhilePaused {
			return fmt.Errorf("%w: %s is moderated (+m%s since %s); publish again once a channel operator sets -m",
				ErrPaused, channel, by, p.Since.Format(time.TimeOnly))
		}
		select {
		case <-resume:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w: waited for %s to resume (-m): %w", ErrNotConfirmed, ErrPaused, channel, context.Cause(ctx))
		case <-n.done:
			return ErrClosed
		}
	}
}

// Paused returns the topics paused (+m) among the channels the node is in.
func (n *Node) Paused() []Pause {
	t := n.talk
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Pause
	for _, cv := range t.chans {
		if cv.pause != nil {
			out = append(out, *cv.pause)
		}
	}
	slices.SortFunc(out, func(a, b Pause) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// IsChannelOperator reports whether nick is a channel operator (or more) of
// one of the mesh's channels the node is in.
func (n *Node) IsChannelOperator(nick string) bool {
	t := n.talk
	t.mu.Lock()
	defer t.mu.Unlock()
	who := strings.ToLower(nick)
	for _, cv := range t.chans {
		if cv.ops[who] {
			return true
		}
	}
	return false
}

// kickedOut takes a KICK of the node from ch, by whom and why. It reports
// whether the node stays out: a topic's channel (it keeps the kick); the
// heartbeat channel and channels of other namespaces are rejoined.
func (n *Node) kickedOut(ch, by, reason string) bool {
	topic, ok := TopicOf(n.cfg.Namespace, ch)
	if !ok || strings.EqualFold(ch, HeartbeatChannel(n.cfg.Namespace)) {
		return false
	}
	t := n.talk
	t.mu.Lock()
	t.kicked[strings.ToLower(ch)] = Kick{Topic: topic, By: by, Reason: reason, At: time.Now()}
	t.mu.Unlock()
	n.log.Warn("removed from a topic by a channel operator (KICK); an INVITE brings the node back", "channel", ch, "by", by, "reason", reason)
	n.beatSoon() // the others learn it left the topic (and its anycast group)
	return true
}

// kick returns the kick that removed the node from channel, if any.
func (n *Node) kick(channel string) (Kick, bool) {
	t := n.talk
	t.mu.Lock()
	defer t.mu.Unlock()
	k, ok := t.kicked[strings.ToLower(channel)]
	return k, ok
}

// checkKicked fails a publish to a topic the node was kicked from.
func (n *Node) checkKicked(channel string) error {
	if k, ok := n.kick(channel); ok {
		return fmt.Errorf("%w: %s, by %s at %s (%q); INVITE the node back to publish there", ErrKicked, channel, k.By, k.At.Format(time.TimeOnly), k.Reason)
	}
	return nil
}

// Kicks returns the topics the node was kicked from and stays out of.
func (n *Node) Kicks() []Kick {
	t := n.talk
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Kick, 0, len(t.kicked))
	for _, k := range t.kicked {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Kick) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// notKicked returns the channels the node may join: those it was not
// kicked from.
func (n *Node) notKicked(channels []string) []string {
	t := n.talk
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.kicked) == 0 {
		return channels
	}
	return slices.DeleteFunc(channels, func(ch string) bool {
		_, k := t.kicked[strings.ToLower(ch)]
		return k
	})
}

// onInvite takes an INVITE of the node to a channel it was kicked from:
// from the operator who kicked it, or a channel operator of one of the
// mesh's channels the node is in, it joins again (and forgets the kick
// once in). An INVITE from anyone else is ignored: on a channel without
// +i any member may invite, and a kick is undone only by the people the
// mesh trusts.
func (n *Node) onInvite(l *line) {
	ch := l.param(1)
	k, ok := n.kick(ch)
	if !ok || !strings.EqualFold(l.param(0), n.ownNick()) {
		return
	}
	if !strings.EqualFold(l.nick, k.By) && !n.IsChannelOperator(l.nick) {
		n.log.Warn("ignored an INVITE back to a topic: not from a channel operator of the mesh's channels", "channel", ch, "by", l.nick)
		return
	}
	n.log.Info("invited back to a topic", "channel", ch, "by", l.nick)
	n.sendJoin(ch)
}

// bucket is a token bucket: burst tokens, one more every every. Guarded by
// its owner's lock.
type bucket struct {
	burst  float64
	every  time.Duration
	tokens float64
	last   time.Time
}

// take takes a token at now, if there is one.
func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.every))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

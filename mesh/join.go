package mesh

import (
	"errors"
	"fmt"
	"strings"
)

// Joining channels. Every JOIN the node sends carries the mesh's channel
// key when it has one (Config.ChannelKey), and every way a server refuses
// a join is an immediate, typed error — Subscribe, Publish and Connect
// return it at once instead of waiting for a confirmation that will never
// come.

// ErrJoinRefused: the server refused to let the node into a channel (a bad
// or missing key, a ban, invite-only, full, too many channels, a bad
// name), or the channel is open to outsiders while the mesh is closed and
// this node cannot close it. The error is a *JoinError.
var ErrJoinRefused = errors.New("mesh: cannot join the channel")

// JoinError says why the node could not join a channel. It matches
// ErrJoinRefused with errors.Is.
type JoinError struct {
	Channel string
	// Numeric is the server's reply ("475"), "" for a refusal of the
	// node's own (an open channel in a closed mesh).
	Numeric string
	// Reason says it in a few words: "bad channel key (+k)".
	Reason string
	// Text is the server's own words.
	Text string
}

func (e *JoinError) Error() string {
	s := "mesh: cannot join " + e.Channel + ": " + e.Reason
	if e.Numeric != "" {
		s += " (" + e.Numeric
		if e.Text != "" {
			s += ": " + e.Text
		}
		s += ")"
	}
	return s
}

// Is makes errors.Is(err, ErrJoinRefused) true.
func (e *JoinError) Is(target error) bool { return target == ErrJoinRefused }

// joinRefusals name the numerics a server answers a JOIN with when it
// refuses it. The channel is the second parameter of each.
var joinRefusals = map[string]string{
	"405": "this connection is in too many channels",
	"437": "the channel is temporarily unavailable",
	"470": "the server forwards it to another channel",
	"471": "the channel is full (+l)",
	"473": "the channel is invite-only (+i) and this node is not invited",
	"474": "this node is banned from the channel (+b)",
	"475": "bad channel key (+k): give the mesh's channel key",
	"476": "bad channel mask",
	"477": "the channel needs a registered account",
	"479": "the channel name is not allowed",
	"489": "the channel needs a TLS connection (+z)",
	"520": "the channel is for IRC operators only",
}

// isJoinRefusal reports whether l is a server's refusal of a join the node
// is waiting for, and handles it: the waiters of that channel get the
// error at once.
func (n *Node) isJoinRefusal(l *line) bool {
	reason, ok := joinRefusals[l.cmd]
	if !ok || len(l.params) < 2 || !strings.HasPrefix(l.params[1], "#") {
		return false
	}
	ch := l.params[1]
	if !n.joinPending(ch) {
		return false
	}
	n.joinFailed(ch, &JoinError{Channel: ch, Numeric: l.cmd, Reason: reason, Text: clipText([]byte(l.last()))})
	return true
}

// joinPending reports whether a join of ch waits for the server's answer.
func (n *Node) joinPending(ch string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.joins[strings.ToLower(ch)]) > 0
}

// joinFailed fails the waiters of a join of ch with err.
func (n *Node) joinFailed(ch string, err *JoinError) {
	key := strings.ToLower(ch)
	n.closed.setJoinErr(key, err)
	n.mu.Lock()
	ws := n.joins[key]
	delete(n.joins, key)
	n.mu.Unlock()
	n.log.Error("cannot join channel", "channel", ch, "reason", err.Reason, "server", err.Text)
	for _, w := range ws {
		close(w)
	}
}

// joinResult is the outcome of a join whose waiter was woken: nil when the
// node is in the channel, else why not.
func (n *Node) joinResult(ch string) error {
	key := strings.ToLower(ch)
	if err := n.closed.joinErr(key); err != nil {
		return err
	}
	n.mu.Lock()
	in := n.inChannel[key]
	n.mu.Unlock()
	if !in {
		return &JoinError{Channel: ch, Reason: "the join was not confirmed"}
	}
	return nil
}

// sendJoin joins channels, with the mesh's channel key when it has one, in
// as few lines as fit. A failure of an earlier join of these channels is
// forgotten: this attempt has its own outcome.
func (n *Node) sendJoin(channels ...string) {
	for _, ch := range channels {
		n.closed.setJoinErr(strings.ToLower(ch), nil)
	}
	key := n.cfg.ChannelKey
	const room = 400 // of 512, leaving the prefix the server adds
	for len(channels) > 0 {
		names, keys := channels[0], key
		i := 1
		for ; i < len(channels); i++ {
			more := len(names) + 1 + len(channels[i])
			if key != "" {
				more += len(keys) + 1 + len(key)
			}
			if more > room {
				break
			}
			names += "," + channels[i]
			if key != "" {
				keys += "," + key
			}
		}
		channels = channels[i:]
		if key == "" {
			_ = n.client.Cmd.SendRaw("JOIN " + names)
		} else {
			_ = n.client.Cmd.SendRaw("JOIN " + names + " " + keys)
		}
	}
}

// joinErr returns why the last join of ch failed (nil: it did not).
func (s *closedState) joinErr(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.joinErrs[key]; e != nil {
		return e
	}
	return nil
}

func (s *closedState) setJoinErr(key string, err *JoinError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.joinErrs, key)
		return
	}
	s.joinErrs[key] = err
}

// errJoinTimeout is the error of a join the server did not answer in time.
func errJoinTimeout(ch string, err error) error {
	return fmt.Errorf("mesh: joining %s: %w", ch, err)
}

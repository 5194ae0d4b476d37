package mesh

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CHATHISTORY (IRCv3 draft/chathistory, offered by ergo) is the server's
// own record of a channel: a second source of history when no recorder
// answers (docs/PROTOCOL.md §7.8). The server answers a request with a
// batch of lines, oldest first; the node takes those lines off the live
// path (they are not delivered to subscriptions or observers) and hands
// them to the caller.

// ErrNoChatHistory is returned by ChatHistory when the server does not
// offer CHATHISTORY (or the batch capability its answers need).
var ErrNoChatHistory = errors.New("mesh: the server offers no CHATHISTORY")

// HistoryLine is one line of a channel's history as the server kept it.
type HistoryLine struct {
	Time  time.Time // the server's time tag
	MsgID string
	Nick  string
	Tags  map[string]string // as received, without the answer's batch tag
	Body  string
}

// HistoryPage is one CHATHISTORY answer.
type HistoryPage struct {
	// Lines are the channel's PRIVMSG lines, oldest first.
	Lines []HistoryLine
	// Items counts everything the answer held (joins and parts too): an
	// answer of as many items as asked for may have more after it.
	Items int
	// Next names the answer's last item, where the next page starts.
	NextTime  time.Time
	NextMsgID string
}

// chatHistory is the one CHATHISTORY request in flight.
type chatHistory struct {
	channel string
	batch   string // the server's batch reference, once it opened the batch
	page    HistoryPage
	err     error
	done    chan struct{}
}

// maxChatHistoryLines bounds one answer (ergo's limit is 1,000 lines).
const maxChatHistoryLines = 10_000

// ChatHistoryLimit returns the most lines the server gives per CHATHISTORY
// request, or 0 when it offers none.
func (n *Node) ChatHistoryLimit() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.caps["batch"] {
		return 0
	}
	v, ok := n.isupport["CHATHISTORY"]
	if !ok {
		v, ok = n.isupport["DRAFT/CHATHISTORY"]
	}
	if !ok {
		return 0
	}
	limit, err := strconv.Atoi(v)
	if err != nil || limit <= 0 { // "0" or no value: no fixed limit
		return 100
	}
	return min(limit, maxChatHistoryLines)
}

// ChatHistory asks the server for up to limit items of topic's channel
// after one: the one with msgid afterMsgID, or else the first after
// afterTime (zero: from the oldest the server kept). Fewer items than
// limit means the history ended; the next page starts after the page's
// Next. The node must be in the channel (servers serve members only); it
// joins when it is not. One request runs at a time per node.
func (n *Node) ChatHistory(ctx context.Context, topic string, afterTime time.Time, afterMsgID string, limit int) (*HistoryPage, error) {
	if err := validName("topic", topic, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTopic, err)
	}
	n.chMu.Lock()
	defer n.chMu.Unlock()
	if err := n.waitConnected(ctx); err != nil {
		return nil, err
	}
	max := n.ChatHistoryLimit()
	if max == 0 {
		return nil, ErrNoChatHistory
	}
	if limit <= 0 || limit > max {
		limit = max
	}
	channel := Channel(n.cfg.Namespace, topic)
	if err := n.join(ctx, channel); err != nil { // at once when a member
		return nil, err
	}
	ref := "timestamp=" + afterTime.UTC().Format("2006-01-02T15:04:05.000Z")
	if afterMsgID != "" {
		if strings.ContainsAny(afterMsgID, " \r\n") {
			return nil, fmt.Errorf("mesh: chat history: bad msgid %q", afterMsgID)
		}
		ref = "msgid=" + afterMsgID
	} else if afterTime.IsZero() {
		ref = "timestamp=1970-01-01T00:00:00.000Z"
	}
	h := &chatHistory{channel: channel, done: make(chan struct{})}
	n.mu.Lock()
	n.chatHistory = h
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.chatHistory = nil
		n.mu.Unlock()
	}()
	if err := n.client.Cmd.SendRaw("CHATHISTORY AFTER " + channel + " " + ref + " " + strconv.Itoa(limit)); err != nil {
		return nil, fmt.Errorf("mesh: chat history: %w", err)
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("mesh: chat history of %s: %w", channel, context.Cause(ctx))
	case <-time.After(n.cfg.RequestTimeout):
		return nil, fmt.Errorf("mesh: chat history of %s: no answer in %s", channel, n.cfg.RequestTimeout)
	case <-n.done:
		return nil, ErrClosed
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if h.err != nil {
		return nil, h.err
	}
	return &h.page, nil
}

// onChatHistory takes the lines of a CHATHISTORY answer off the live path:
// the batch's start and end, the lines inside it, and a FAIL. It reports
// whether the line was one of those.
func (n *Node) onChatHistory(l *line) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.chatHistory
	if h == nil {
		return false
	}
	finish := func(err error) {
		select {
		case <-h.done:
		default:
			h.err = err
			close(h.done)
		}
	}
	switch {
	case l.cmd == "BATCH":
		ref := l.param(0)
		switch {
		case h.batch == "" && len(ref) > 1 && ref[0] == '+' && strings.EqualFold(l.param(1), "chathistory") && strings.EqualFold(l.param(2), h.channel):
			h.batch = ref[1:]
			return true
		case h.batch != "" && ref == "-"+h.batch:
			finish(nil)
			return true
		}
	case l.cmd == "FAIL" && strings.EqualFold(l.param(0), "CHATHISTORY"):
		finish(fmt.Errorf("mesh: chat history of %s: the server refused: %s", h.channel, strings.Join(l.params[1:], " ")))
		return true
	case h.batch != "" && l.tags["batch"] == h.batch:
		at, _ := time.Parse(time.RFC3339Nano, l.tags["time"])
		h.page.Items++
		h.page.NextTime, h.page.NextMsgID = at.UTC(), l.tags["msgid"]
		if l.cmd == "PRIVMSG" && len(h.page.Lines) < maxChatHistoryLines {
			tags := make(map[string]string, len(l.tags))
			for k, v := range l.tags {
				if k != "batch" { // it tied the line to this answer only
					tags[k] = v
				}
			}
			h.page.Lines = append(h.page.Lines, HistoryLine{Time: at.UTC(), MsgID: l.tags["msgid"], Nick: l.nick, Tags: tags, Body: l.last()})
		}
		return true
	}
	return false
}

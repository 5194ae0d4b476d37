package mesh

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// People talking to the node. A PRIVMSG that is not a mesh line is human
// text: the node counts it (Stats.NotMesh) and, when it is addressed to the
// node — a private message, or a line starting with '!' in one of its mesh
// channels, where it cannot be taken for traffic — hands it to the text
// handler (OnText): the console (package console) answers there. CTCP
// requests are answered by the node itself, as a client does (ctcp.go).
// Answers go back as NOTICEs (Notice), through the writer like every line,
// so that they take their place in its flow control and never stall it.

// Text is human text addressed to the node.
type Text struct {
	// Time is when the node read it.
	Time time.Time
	// From is the sender's nick; User and Host its user and host as the
	// server showed them.
	From, User, Host string
	// Account is the account the sender is logged in to, from the
	// server's account tag ("" when not logged in, or on a server without
	// accounts).
	Account string
	// Channel is the mesh channel of a '!' line; "" for a private
	// message.
	Channel string
	// Text is what was said: a private message whole; a channel line
	// without its '!'.
	Text string
	// ChannelOperator reports whether the sender was a channel operator of
	// one of the mesh's channels the node is in (IsChannelOperator).
	ChannelOperator bool
}

// textQueue bounds the texts waiting for the handler; more are dropped
// (and counted): people cannot make the node hold more.
const textQueue = 64

// textHandler runs the OnText callback on its own goroutine.
type textHandler struct {
	fn      func(Text)
	q       chan Text
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
}

// OnText hands fn the human text addressed to the node: private messages
// that are neither mesh lines nor CTCP, and lines starting with '!' in the
// mesh channels it is in. fn runs on a goroutine of its own, one text at a
// time, in the order read; while it is busy up to 64 texts wait, and later
// ones are dropped (TextDropped counts them). A node has one handler: a
// second OnText replaces the first. stop ends the delivery; fn is not
// called once stop returned.
func (n *Node) OnText(fn func(Text)) (stop func()) {
	h := &textHandler{fn: fn, q: make(chan Text, textQueue), stop: make(chan struct{}), done: make(chan struct{})}
	t := n.talk
	t.mu.Lock()
	old := t.text
	t.text = h
	t.mu.Unlock()
	if old != nil {
		old.close()
	}
	go h.run(n.done)
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			if t.text == h {
				t.text = nil
			}
			t.mu.Unlock()
			h.close()
		})
	}
}

func (h *textHandler) run(nodeDone <-chan struct{}) {
	defer close(h.done)
	for {
		select {
		case tx := <-h.q:
			h.fn(tx)
		case <-h.stop:
			return
		case <-nodeDone:
			return
		}
	}
}

func (h *textHandler) close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

// TextDropped counts the texts dropped because the handler was busy.
func (n *Node) TextDropped() uint64 {
	t := n.talk
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.text == nil {
		return 0
	}
	return t.text.dropped.Load()
}

// onHumanText takes a PRIVMSG that is not a mesh line, on the reader: CTCP
// to the node is answered, text addressed to the node goes to the handler.
// It never blocks.
func (n *Node) onHumanText(l *line, target, text string) {
	if text == "" || strings.EqualFold(l.nick, n.ownNick()) {
		return
	}
	private := !strings.HasPrefix(target, "#")
	if private && text[0] == '\x01' {
		n.onCTCP(l.nick, text)
		return
	}
	tx := Text{Time: time.Now(), From: l.nick, User: l.user, Host: l.host, Account: l.tags["account"], Text: text}
	if !private {
		if len(text) < 2 || text[0] != '!' || !n.meshChannel(target) {
			return
		}
		tx.Channel, tx.Text = target, text[1:]
	}
	t := n.talk
	t.mu.Lock()
	h := t.text
	t.mu.Unlock()
	if h == nil {
		return
	}
	tx.ChannelOperator = n.IsChannelOperator(l.nick)
	select {
	case h.q <- tx:
	default:
		h.dropped.Add(1)
	}
}

// maxNoticeLines bounds the lines of one Notice.
const maxNoticeLines = 20

// Notice sends lines of text to target (a nick or a channel) as NOTICEs,
// and returns once they are written, or when ctx ends. Line breaks, NUL
// and other control characters but IRC formatting are removed; a line too
// long for the server is cut. At most 20 lines per call.
func (n *Node) Notice(ctx context.Context, target string, lines ...string) error {
	j, err := n.noticeJob(ctx, target, lines)
	if err != nil {
		return err
	}
	if err := n.writer.submit(j); err != nil {
		return err
	}
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotConfirmed, context.Cause(ctx))
	}
}

// noticeAsync queues lines for target without waiting and without
// blocking: dropped when the writer's queue is full (the reader's CTCP
// answers).
func (n *Node) noticeAsync(target string, lines ...string) {
	j, err := n.noticeJob(context.Background(), target, lines)
	if err != nil {
		return
	}
	j.w = n.writer
	n.writer.outstanding.Add(1)
	select {
	case n.writer.in <- j:
	default:
		n.writer.outstanding.Add(-1)
	}
}

func (n *Node) noticeJob(ctx context.Context, target string, lines []string) (*job, error) {
	if n.sealed.Load() {
		return nil, ErrClosed
	}
	if target == "" || strings.ContainsAny(target, " ,\r\n\x00") {
		return nil, fmt.Errorf("mesh: %q is not a nick or channel", target)
	}
	if len(lines) > maxNoticeLines {
		lines = lines[:maxNoticeLines]
	}
	room := envelope.BodyBudget(0, n.Nick()+"!~"+n.cfg.Service+"@"+hostGuess, target, bodyMargin)
	if st := n.current(); st != nil {
		room = envelope.BodyBudget(st.lineLen, st.prefix, target, bodyMargin)
	}
	j := &job{ctx: ctx, target: target, done: make(chan struct{}), direct: true, notice: true}
	for _, l := range lines {
		l = noticeText(l, room)
		if l == "" {
			l = " " // an empty line is refused by servers
		}
		j.lines = append(j.lines, envelope.Line{Body: l})
	}
	if len(j.lines) == 0 {
		return nil, fmt.Errorf("mesh: no text to send")
	}
	return j, nil
}

// noticeText keeps IRC formatting and printable text of s (control
// characters and line breaks become spaces) and cuts it to room bytes on a
// character boundary.
func noticeText(s string, room int) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' && c != 0x01 && !isFormattingCode(c) || c == 0x7f {
			b[i] = ' '
		}
	}
	if room > 0 && len(b) > room {
		for room > 0 && b[room]&0xc0 == 0x80 {
			room--
		}
		b = b[:room]
	}
	return string(b)
}

func isFormattingCode(c byte) bool {
	switch c {
	case 0x02, 0x03, 0x04, 0x0f, 0x11, 0x16, 0x1d, 0x1e, 0x1f:
		return true
	}
	return false
}

// appendNotice appends one NOTICE line to b.
func appendNotice(b []byte, target, body string) []byte {
	b = append(b, "NOTICE "...)
	b = append(b, target...)
	b = append(b, " :"...)
	for i := 0; i < len(body); i++ {
		if c := body[i]; c != '\r' && c != '\n' && c != 0 {
			b = append(b, c)
		}
	}
	return append(b, "\r\n"...)
}

// Package recording holds recorded IRC logs as values a test or a tool
// edits: the raw lines a server sent one node, tags included, one per line
// (what mesh.Config.RawLog and `meshbot record --raw` write; the format of
// history/rawlog). A Log can be cut (by topic, time and sender), edited
// (lines dropped, duplicated, delayed or swapped, payloads anonymised) and
// written back; meshtest replays it into a service.
//
// A Log is immutable: every method returns a new Log and leaves its
// receiver as it was, so one loaded log can be varied many ways in one
// test. Lines keep their number in the file they came from (Line.N), so
// that what a test or a diff names can be found in the file.
package recording

import (
	"bufio"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history/rawlog"
	"github.com/meshbot/meshbot/mesh"
)

// Log is a recorded log: its lines in the order the server sent them.
type Log struct {
	// Name names the log in what is printed about it (the file's base
	// name for a loaded log).
	Name  string
	lines []Line
	info  *info // what the log says of itself, shared by derived logs
}

// Line is one recorded line. It keeps the line's text and what replays
// and cuts look at (command, parameters, sender, time); its tags are
// parsed again on demand (Tags, Message), so that a long log stays small
// in memory.
type Line struct {
	// N is the line's number in the file it came from, from 1.
	N int
	// Time is the server-time tag; zero when the line has none.
	Time time.Time
	// Nick is the sender's nick ("" for server lines).
	Nick string

	raw     string   // the line as it is written
	source  string   // nick!user@host or server name
	command string   // upper case
	params  []string // substrings of raw, mostly
	batch   bool     // part of a BATCH (a reply to the recording node)
	ns      string   // the log's namespace
}

// info is what a log tells about its recording, learned once from the
// original lines.
type info struct {
	namespace string
	owner     string // the recording node's nick
	start     time.Time
}

// Load reads a recorded log file.
func Load(path string) (*Log, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	defer f.Close()
	l, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("recording: %s: %w", path, err)
	}
	l.Name = filepath.Base(path)
	return l, nil
}

// Read parses a recorded log: one line each, as history/rawlog reads them
// (blank lines skipped, a line that does not parse is an error naming its
// number).
func Read(r io.Reader) (*Log, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), rawlog.MaxLine+2)
	var lines []Line
	n := 0
	for sc.Scan() {
		n++
		raw := strings.TrimRight(sc.Text(), "\r")
		if raw == "" {
			continue
		}
		l, err := ParseLine(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		l.N = n
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("after line %d: %w", n, err)
	}
	return newLog("log", lines), nil
}

// Parse parses a recorded log held in a string.
func Parse(text string) (*Log, error) { return Read(strings.NewReader(text)) }

// ParseLine parses one recorded line (N is left 0).
func ParseLine(raw string) (Line, error) {
	rl, err := rawlog.Parse(raw)
	if err != nil {
		return Line{}, err
	}
	return Line{Time: rl.Time, Nick: rl.Nick, raw: raw, source: rl.Msg.Source,
		command: strings.ToUpper(rl.Msg.Command), params: rl.Msg.Params, batch: rl.Msg.HasTag("batch")}, nil
}

func newLog(name string, lines []Line) *Log {
	l := &Log{Name: name, lines: lines}
	l.info = learn(lines)
	for i := range lines {
		lines[i].ns = l.info.namespace
	}
	return l
}

// derive returns a log of lines that shares l's name and what l learned
// of its recording.
func (l *Log) derive(lines []Line) *Log {
	return &Log{Name: l.Name, lines: lines, info: l.info}
}

// learn reads what the log tells of its recording: the recording node's
// nick (from the welcome numeric, else the target of the first numeric),
// the namespace (from the heartbeat channel) and the first time.
func learn(lines []Line) *info {
	in := &info{}
	for i := range lines {
		l := &lines[i]
		if in.start.IsZero() && !l.Time.IsZero() {
			in.start = l.Time
		}
		cmd := l.Command()
		if in.owner == "" && isNumeric(cmd) && l.Param(0) != "" && l.Param(0) != "*" {
			in.owner = l.Param(0)
		}
		if cmd == "001" {
			in.owner = l.Param(0)
		}
		if in.namespace == "" && (cmd == "JOIN" || cmd == "PRIVMSG") {
			if ns, ok := heartbeatNamespace(l.Param(0)); ok {
				in.namespace = ns
			}
		}
	}
	return in
}

func isNumeric(cmd string) bool {
	return len(cmd) == 3 && cmd[0] >= '0' && cmd[0] <= '9' && cmd[1] >= '0' && cmd[1] <= '9' && cmd[2] >= '0' && cmd[2] <= '9'
}

// heartbeatNamespace returns ns when channel is #<ns>._hb.
func heartbeatNamespace(channel string) (string, bool) {
	ch := strings.ToLower(channel)
	hb := mesh.HeartbeatChannel("")
	hb = strings.TrimPrefix(hb, "#.") // "_hb"
	if !strings.HasPrefix(ch, "#") || !strings.HasSuffix(ch, "."+hb) {
		return "", false
	}
	ns := strings.TrimSuffix(strings.TrimPrefix(ch, "#"), "."+hb)
	return ns, ns != ""
}

// Lines returns the log's lines (a copy of the slice; the lines are
// values).
func (l *Log) Lines() []Line { return append([]Line(nil), l.lines...) }

// All yields the log's lines in order, each a copy, without copying the
// whole log first.
func (l *Log) All() iter.Seq[Line] {
	return func(yield func(Line) bool) {
		for i := range l.lines {
			if !yield(l.lines[i]) {
				return
			}
		}
	}
}

// Len is the number of lines.
func (l *Log) Len() int { return len(l.lines) }

// Namespace is the mesh namespace the log was recorded in (from its
// heartbeat channel; "" when the log shows none).
func (l *Log) Namespace() string { return l.info.namespace }

// Owner is the nick of the node that recorded the log: lines addressed to
// it (private messages: requests) were sent to that node.
func (l *Log) Owner() string { return l.info.owner }

// Start is the time of the log's first timed line (zero when no line has
// a server-time tag).
func (l *Log) Start() time.Time { return l.info.start }

// Text returns the log as a recorded log file holds it: one line each,
// as received (or as edited), "\n" after each.
func (l *Log) Text() string {
	var b strings.Builder
	for i := range l.lines {
		b.WriteString(l.lines[i].String())
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteTo writes the log in the recorded log format.
func (l *Log) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	for i := range l.lines {
		k, err := bw.WriteString(l.lines[i].String())
		n += int64(k)
		if err != nil {
			return n, err
		}
		if err := bw.WriteByte('\n'); err != nil {
			return n, err
		}
		n++
	}
	return n, bw.Flush()
}

// WriteFile writes the log to path (created or truncated).
func (l *Log) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	if _, err := l.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("recording: %s: %w", path, err)
	}
	return f.Close()
}

// Channel returns the channel the line is about (a PRIVMSG's target
// channel, a JOIN's or PART's channel), or "".
func (l *Line) Channel() string {
	switch l.Command() {
	case "PRIVMSG", "NOTICE", "TAGMSG", "JOIN", "PART", "KICK", "TOPIC", "MODE":
		if ch := l.Param(0); strings.HasPrefix(ch, "#") {
			return ch
		}
	case "353":
		if n := len(l.params); n >= 3 {
			return l.params[n-2]
		}
	case "366", "324", "329", "332", "333":
		if ch := l.Param(1); strings.HasPrefix(ch, "#") {
			return ch
		}
	}
	return ""
}

// Topic returns the mesh topic of the line's channel ("_hb" for the
// heartbeat channel), or "" when the line is about no channel of the
// log's namespace.
func (l *Line) Topic() string {
	ch := l.Channel()
	if ch == "" || l.ns == "" {
		return ""
	}
	t, _ := mesh.TopicOf(l.ns, ch)
	return t
}

// Service returns the service of the line's sender (from its nick,
// service-instance), or "" for server lines and other nicks.
func (l *Line) Service() string {
	s, _, _ := mesh.ParseNick(l.Nick)
	return s
}

// String returns the line as it is written to a log (as received, or
// as edited).
func (l *Line) String() string { return l.raw }

// Command returns the upper-case command.
func (l *Line) Command() string { return l.command }

// Param returns parameter i, or "".
func (l *Line) Param(i int) string {
	if i < len(l.params) {
		return l.params[i]
	}
	return ""
}

// Params returns the parameters (do not modify them).
func (l *Line) Params() []string { return l.params }

// Text returns the last parameter (a PRIVMSG's text, a QUIT's reason).
func (l *Line) Text() string {
	if len(l.params) == 0 {
		return ""
	}
	return l.params[len(l.params)-1]
}

// Source returns the line's prefix (nick!user@host, or the server).
func (l *Line) Source() string { return l.source }

// InBatch reports whether the line belongs to an IRCv3 BATCH: a reply to
// something the recording node asked (CHATHISTORY), not live traffic.
func (l *Line) InBatch() bool { return l.batch }

// Message parses the line again, tags included.
func (l *Line) Message() ircmsg.Message {
	msg, _ := ircmsg.ParseLine(l.raw) // it parsed when it was read
	return msg
}

// Tags returns the line's tags (server and client-only).
func (l *Line) Tags() map[string]string {
	msg := l.Message()
	return msg.AllTags()
}

// withMessage returns the line rewritten as msg.
func (l Line) withMessage(msg *ircmsg.Message) Line {
	l.raw = FormatLine(msg)
	l.source, l.command, l.params = msg.Source, strings.ToUpper(msg.Command), msg.Params
	return l
}

// Envelopes decodes the envelopes the line carries whole (one, or several
// for a batch), without checking signatures: for selecting and showing
// lines, never for acting on them. A fragment line carries none.
func (l *Line) Envelopes() []*envelope.Envelope {
	if l.Command() != "PRIVMSG" {
		return nil
	}
	dec := envelope.NewDecoder(envelope.DecoderConfig{AcceptUnchecked: true})
	envs, _, _ := dec.Decode(l.Nick, l.Tags(), l.Text(), l.Time)
	return envs
}

// ShortIDs returns the short ids (8 hex digits, or the whole id for
// whole envelopes) of the envelopes the line carries or carries a
// fragment of.
func (l *Line) ShortIDs() []string {
	if l.Command() != "PRIVMSG" {
		return nil
	}
	f, mesh, err := envelope.ParseLine(l.Tags(), l.Text())
	if !mesh || err != nil {
		return nil
	}
	if f.Count > 1 {
		return []string{strings.ToLower(f.Short)}
	}
	var out []string
	for _, env := range l.Envelopes() {
		out = append(out, env.ID.String())
	}
	return out
}

// Package rawlog reads recorded IRC logs: the lines a server sent, as
// received (tags included), one per line — what mesh.Config.RawLog and
// `meshbot record --raw` write. Tests replay them through the pure cores
// (heartbeat, claims) to check that the same decisions come out.
package rawlog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
)

// MaxLine bounds one recorded line (tags and text): longer lines are an
// error, not a silent truncation.
const MaxLine = 64 << 10

// Line is one recorded line.
type Line struct {
	// N is the line's number in the log, from 1.
	N int
	// Raw is the line as received, without its line ending.
	Raw string
	Msg ircmsg.Message
	// Nick is the sender's nick ("" for server lines).
	Nick string
	// Time is the server-time tag; zero when the line has none.
	Time time.Time
}

// Command returns the upper-case command.
func (l *Line) Command() string { return strings.ToUpper(l.Msg.Command) }

// Param returns parameter i, or "".
func (l *Line) Param(i int) string {
	if i < len(l.Msg.Params) {
		return l.Msg.Params[i]
	}
	return ""
}

// Text returns the last parameter (a PRIVMSG's text, a QUIT's reason).
func (l *Line) Text() string {
	if len(l.Msg.Params) == 0 {
		return ""
	}
	return l.Msg.Params[len(l.Msg.Params)-1]
}

// Read parses every line of r. Blank lines are skipped; a line that does
// not parse is an error naming its number.
func Read(r io.Reader) ([]Line, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLine+2)
	var out []Line
	n := 0
	for sc.Scan() {
		n++
		raw := strings.TrimRight(sc.Text(), "\r")
		if raw == "" {
			continue
		}
		l, err := Parse(raw)
		if err != nil {
			return out, fmt.Errorf("rawlog: line %d: %w", n, err)
		}
		l.N = n
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("rawlog: after line %d: %w", n, err)
	}
	return out, nil
}

// ReadFile reads a recorded log file.
func ReadFile(path string) ([]Line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// Parse parses one recorded line.
func Parse(raw string) (Line, error) {
	if len(raw) > MaxLine {
		return Line{}, fmt.Errorf("%d bytes, limit %d", len(raw), MaxLine)
	}
	msg, err := ircmsg.ParseLine(raw)
	if err != nil {
		return Line{}, err
	}
	l := Line{Raw: raw, Msg: msg}
	if msg.Source != "" {
		if nuh, err := ircmsg.ParseNUH(msg.Source); err == nil {
			l.Nick = nuh.Name
		} else {
			l.Nick = msg.Source
		}
	}
	if ok, ts := msg.GetTag("time"); ok {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Line{}, fmt.Errorf("server-time tag %q: %w", ts, err)
		}
		l.Time = t
	}
	return l, nil
}

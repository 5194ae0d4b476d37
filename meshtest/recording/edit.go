package recording

import (
	"slices"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Match selects lines of a log.
type Match func(*Line) bool

// Numbers matches the lines with these numbers in the file they came from
// (Line.N; copies made by Duplicate keep their original's number).
func Numbers(ns ...int) Match {
	return func(l *Line) bool { return slices.Contains(ns, l.N) }
}

// Topic matches the lines about the channels of these topics: their
// events and claims lines, and the JOINs and PARTs there.
func Topic(topics ...string) Match {
	return func(l *Line) bool {
		t := l.Topic()
		return t != "" && slices.Contains(topics, t)
	}
}

// Sender matches the lines sent by these nicks or by instances of these
// services.
func Sender(names ...string) Match {
	return func(l *Line) bool {
		if l.Nick == "" {
			return false
		}
		s := l.Service()
		for _, n := range names {
			if strings.EqualFold(n, l.Nick) || (s != "" && n == s) {
				return true
			}
		}
		return false
	}
}

// Command matches lines by IRC command (PRIVMSG, JOIN, QUIT, a numeric).
func Command(cmds ...string) Match {
	return func(l *Line) bool {
		c := l.Command()
		for _, x := range cmds {
			if strings.EqualFold(x, c) {
				return true
			}
		}
		return false
	}
}

// Heartbeats matches the heartbeat lines: PRIVMSGs in the heartbeat
// channel.
func Heartbeats() Match {
	return func(l *Line) bool { return l.Command() == "PRIVMSG" && l.Topic() == "_hb" }
}

// All matches lines that every m matches; Any lines that one of them
// matches; Not the lines m does not match.
func All(ms ...Match) Match {
	return func(l *Line) bool {
		for _, m := range ms {
			if !m(l) {
				return false
			}
		}
		return true
	}
}

// Any matches lines that at least one of ms matches.
func Any(ms ...Match) Match {
	return func(l *Line) bool {
		for _, m := range ms {
			if m(l) {
				return true
			}
		}
		return false
	}
}

// Not matches the lines m does not match.
func Not(m Match) Match { return func(l *Line) bool { return !m(l) } }

// Find returns the lines m matches.
func (l *Log) Find(m Match) []Line {
	var out []Line
	for _, line := range l.prepared() {
		if m(&line) {
			out = append(out, line)
		}
	}
	return out
}

// Filter keeps the lines m matches.
func (l *Log) Filter(m Match) *Log {
	var out []Line
	for _, line := range l.prepared() {
		if m(&line) {
			out = append(out, line)
		}
	}
	return l.derive(out)
}

// Drop removes the lines m matches: the service never receives them.
func (l *Log) Drop(m Match) *Log { return l.Filter(Not(m)) }

// Topics cuts the log to these topics: lines about the channels of other
// topics go, the heartbeat channel's and those about no channel (server
// lines, private messages, QUITs) stay.
func (l *Log) Topics(topics ...string) *Log {
	keep := append([]string{"_hb"}, topics...)
	return l.Filter(func(line *Line) bool {
		t := line.Topic()
		return t == "" && line.Channel() == "" || slices.Contains(keep, t)
	})
}

// Senders keeps only what these nicks or services sent (Sender), and the
// lines that no one sent (the server's).
func (l *Log) Senders(names ...string) *Log {
	m := Sender(names...)
	return l.Filter(func(line *Line) bool { return line.Nick == "" || m(line) })
}

// WithoutHeartbeats drops the heartbeat lines. A service replayed without
// them sees no members (requests find no instance, anycast groups only
// the service itself); a log cut for a test of one subscription is
// smaller without them.
func (l *Log) WithoutHeartbeats() *Log { return l.Drop(Heartbeats()) }

// Between cuts the log to the lines timed in [from, to) (a zero bound is
// open). What came before from and says who is where — registration,
// JOINs, PARTs, QUITs, NICKs, NAMES — stays, retimed to from, so that a
// replay of the cut still knows the channels' members; the rest before
// from, and everything from to on, goes. Lines without a time take the
// time of the line before them.
func (l *Log) Between(from, to time.Time) *Log {
	var out []Line
	at := l.info.start
	for _, line := range l.prepared() {
		if !line.Time.IsZero() {
			at = line.Time
		}
		switch {
		case !to.IsZero() && !at.Before(to):
			continue
		case !from.IsZero() && at.Before(from):
			if !presence(&line) {
				continue
			}
			if !line.Time.IsZero() {
				line.setTime(from)
			}
		}
		out = append(out, line)
	}
	cut := l.derive(out)
	if !from.IsZero() && from.After(l.info.start) {
		cut.info = &info{namespace: l.info.namespace, owner: l.info.owner, start: from}
	}
	return cut
}

// Window is Between with bounds given as offsets from the log's start (a
// bound ≤ 0 is open).
func (l *Log) Window(from, to time.Duration) *Log {
	var f, t time.Time
	if from > 0 {
		f = l.info.start.Add(from)
	}
	if to > 0 {
		t = l.info.start.Add(to)
	}
	return l.Between(f, t)
}

// presence reports whether a line says who is where (or registers the
// recording node): kept by a time cut.
func presence(l *Line) bool {
	switch c := l.Command(); c {
	case "PRIVMSG", "NOTICE", "TAGMSG", "PING", "PONG":
		return false
	default:
		return true
	}
}

// Duplicate adds a copy of each line m matches, after later than it (0:
// right after it). A duplicated mesh line is what a service receives when
// a publisher sends an event again after a reconnect: the node's replay
// guard rejects the copy, and counts it (within its time window).
func (l *Log) Duplicate(m Match, after time.Duration) *Log {
	lines := l.prepared()
	var out []Line
	for i := range lines {
		out = append(out, lines[i])
		if m(&lines[i]) {
			c := lines[i]
			if after > 0 {
				c.setTime(l.timeOf(lines, i).Add(after))
			}
			out = append(out, c)
		}
	}
	return l.derive(sortByTime(out))
}

// Delay moves each line m matches d later: the lines after it that come
// before its new time now reach the service first.
func (l *Log) Delay(m Match, d time.Duration) *Log {
	lines := l.prepared()
	for i := range lines {
		if m(&lines[i]) {
			lines[i].setTime(l.timeOf(lines, i).Add(d))
		}
	}
	return l.derive(sortByTime(lines))
}

// Swap exchanges the first line a matches with the first line b matches,
// each taking the other's place and time. The log is unchanged when
// either matches nothing (Find tells).
func (l *Log) Swap(a, b Match) *Log {
	lines := l.prepared()
	i := slices.IndexFunc(lines, func(x Line) bool { return a(&x) })
	j := slices.IndexFunc(lines, func(x Line) bool { return b(&x) })
	if i < 0 || j < 0 || i == j {
		return l.derive(lines)
	}
	ti, tj := l.timeOf(lines, i), l.timeOf(lines, j)
	lines[i], lines[j] = lines[j], lines[i]
	lines[i].setTime(ti)
	lines[j].setTime(tj)
	return l.derive(lines)
}

// timeOf is the time of lines[i]: its own, or the last one before it.
func (l *Log) timeOf(lines []Line, i int) time.Time {
	for ; i >= 0; i-- {
		if !lines[i].Time.IsZero() {
			return lines[i].Time
		}
	}
	return l.info.start
}

// sortByTime orders lines by time, stably; a line without a time keeps
// its place after the line before it.
func sortByTime(lines []Line) []Line {
	type keyed struct {
		at   time.Time
		line Line
	}
	ks := make([]keyed, len(lines))
	var at time.Time
	for i, line := range lines {
		if !line.Time.IsZero() {
			at = line.Time
		}
		ks[i] = keyed{at, line}
	}
	slices.SortStableFunc(ks, func(x, y keyed) int { return x.at.Compare(y.at) })
	out := make([]Line, len(ks))
	for i, k := range ks {
		out[i] = k.line
	}
	return out
}

// prepared returns a copy of the lines to edit.
func (l *Log) prepared() []Line { return slices.Clone(l.lines) }

// setTime sets the line's time and its server-time tag.
func (l *Line) setTime(t time.Time) {
	msg := l.Message()
	msg.SetTag("time", t.UTC().Format("2006-01-02T15:04:05.000Z"))
	*l = l.withMessage(&msg)
	l.Time = t.UTC().Truncate(time.Millisecond)
}

// Event matches the lines that carry an envelope whose id starts with one
// of these prefixes (hex, as Short shows them): the event's line, or each
// of its fragments.
func Event(ids ...string) Match {
	return func(l *Line) bool {
		for _, short := range l.ShortIDs() {
			for _, id := range ids {
				id = strings.ToLower(id)
				if strings.HasPrefix(short, id) || strings.HasPrefix(id, short) && len(short) == 8 {
					return true
				}
			}
		}
		return false
	}
}

// Kind matches the lines that carry a whole envelope of one of these kinds
// (a fragment is not matched: its kind is in the envelope it completes).
func Kind(kinds ...envelope.Kind) Match {
	return func(l *Line) bool {
		for _, env := range l.Envelopes() {
			if slices.Contains(kinds, env.Kind) {
				return true
			}
		}
		return false
	}
}

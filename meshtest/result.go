package meshtest

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/meshbot/meshbot/mesh"
)

// EntryKind says what the service did.
type EntryKind string

// The kinds of entries, as the output names them.
const (
	// KindPublish: an event published on Topic.
	KindPublish EntryKind = "publish"
	// KindRespond: the answer to a recorded request (Ref) from To; Code
	// and Err are set for an error answer.
	KindRespond EntryKind = "respond"
	// KindRequest: a request the service sent to To (Topic is
	// service.method).
	KindRequest EntryKind = "request"
	// KindHandlerError: a handler of Topic failed on event Ref (multicast
	// or anycast; an anycast event is then retried).
	KindHandlerError EntryKind = "handler-error"
	// KindDeadLetter: an anycast event (Ref) of Topic given up after
	// Attempts attempts; Err is the last reason.
	KindDeadLetter EntryKind = "dead-letter"
	// KindStatePut and KindStateDelete: a write of key Key of domain Topic,
	// in the update of domain version Version.
	KindStatePut    EntryKind = "state-put"
	KindStateDelete EntryKind = "state-delete"
	// KindProtocol: an anycast protocol line (ShowProtocol); Err
	// describes it.
	KindProtocol EntryKind = "protocol"
	// KindLog: a log record of the node (Logs); Err holds it.
	KindLog EntryKind = "log"
	// KindInvalid: a line of the node that did not decode (a bug worth
	// seeing).
	KindInvalid EntryKind = "invalid"
)

// Entry is one thing the service did during a replay.
type Entry struct {
	// At is the virtual time since the log's first line.
	At   time.Duration
	Kind EntryKind
	// Topic is the topic, the service.method of a request, the method of
	// an answer, or the domain of a state write.
	Topic string
	// To is the nick a request or an answer went to.
	To string
	// Ref is the short id of the recorded envelope the entry is about:
	// the request answered, the event that failed or was dead-lettered.
	Ref      string
	Payload  []byte
	Code     uint32 // an error answer's code
	Err      string // a handler error, an error answer's message, a dead letter's last reason
	Attempts int    // dead letters
	Key      string // state writes
	Version  uint64 // state writes

	seg int // recorded lines delivered before it
}

// Result is what a replay produced.
type Result struct {
	// Log names the replayed log; Service the service under test.
	Log, Service string
	// Lines is how many lines the log has, Delivered how many of them
	// reached the node (the others were for other nodes, or were lines
	// of the recorded instances of the service under test).
	Lines, Delivered int
	// Entries are what the service did, in output order (see Text).
	Entries []Entry
	// Stats are the node's counters when it closed.
	Stats mesh.Stats

	payload func(topic string, p []byte) string
}

// Text is the result in the stable, readable form a golden file holds: a
// header naming the log and the service, one line per entry ("+1.250s
// publish billing.charged {...}"), and a summary of the node's counters.
// Entries are ordered by virtual time; entries of one instant that follow
// the same recorded line are sorted by their text (concurrent handlers and
// the writer's batching make their order there the scheduler's).
func (r *Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# meshtest replay of %s into %s: %d lines, %d delivered\n", r.Log, r.Service, r.Lines, r.Delivered)
	for _, line := range r.lines() {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	s := r.Stats
	fmt.Fprintf(&b, "# delivered %d events, served %d requests; %d handler errors, %d dropped, %d rejected%s\n",
		s.Delivered, s.RequestsServed, s.HandlerErrors, s.Dropped, s.Rejected, reasons(s.RejectedBy))
	return b.String()
}

// String is Text.
func (r *Result) String() string { return r.Text() }

// Count returns how many entries are of kind k.
func (r *Result) Count(k EntryKind) int {
	n := 0
	for _, e := range r.Entries {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// lines renders the entries in output order.
func (r *Result) lines() []string {
	type row struct {
		at   time.Duration
		seg  int
		text string
	}
	rows := make([]row, len(r.Entries))
	for i, e := range r.Entries {
		rows[i] = row{e.At, e.seg, r.describe(&e)}
	}
	slices.SortStableFunc(rows, func(x, y row) int {
		switch {
		case x.at != y.at:
			return cmpDur(x.at, y.at)
		case x.seg != y.seg:
			return x.seg - y.seg
		}
		return strings.Compare(x.text, y.text)
	})
	out := make([]string, len(rows))
	for i, rw := range rows {
		out[i] = fmt.Sprintf("%s %s", stamp(rw.at), rw.text)
	}
	return out
}

func cmpDur(a, b time.Duration) int {
	if a < b {
		return -1
	}
	return 1
}

// stamp shows a virtual time as +seconds with milliseconds.
func stamp(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	ms := d.Milliseconds()
	return fmt.Sprintf("%s%d.%03ds", sign, ms/1000, ms%1000)
}

// describe is an entry's text, without its time.
func (r *Result) describe(e *Entry) string {
	p := func(topic string, b []byte) string {
		if r.payload != nil {
			return r.payload(topic, b)
		}
		return ShowPayload(b)
	}
	switch e.Kind {
	case KindPublish:
		return fmt.Sprintf("publish %s %s", e.Topic, p(e.Topic, e.Payload))
	case KindRespond:
		head := fmt.Sprintf("respond %s to %s (request %s)", e.Topic, e.To, e.Ref)
		if e.Code != 0 {
			return fmt.Sprintf("%s error %d: %s", head, e.Code, e.Err)
		}
		return head + " " + p(e.Topic, e.Payload)
	case KindRequest:
		return fmt.Sprintf("request %s to %s %s", e.Topic, e.To, p(e.Topic, e.Payload))
	case KindHandlerError:
		return fmt.Sprintf("handler-error %s event %s: %s", e.Topic, e.Ref, e.Err)
	case KindDeadLetter:
		return fmt.Sprintf("dead-letter %s event %s after %d attempts: %s", e.Topic, e.Ref, e.Attempts, e.Err)
	case KindStatePut:
		return fmt.Sprintf("state-put %s %s = %s (v%d)", e.Topic, e.Key, p(e.Topic, e.Payload), e.Version)
	case KindStateDelete:
		return fmt.Sprintf("state-delete %s %s (v%d)", e.Topic, e.Key, e.Version)
	case KindProtocol:
		return fmt.Sprintf("protocol %s %s", e.Topic, e.Err)
	case KindLog:
		return "log " + e.Err
	}
	return fmt.Sprintf("%s %s %s", e.Kind, e.Topic, e.Err)
}

// ShowPayload is how a payload is shown by default: "(empty)"; the text
// itself when it is printable UTF-8 on one line; a quoted Go string when
// it is other UTF-8; else "base64:" and its standard base64.
func ShowPayload(p []byte) string {
	switch {
	case len(p) == 0:
		return "(empty)"
	case !utf8.Valid(p):
		return "base64:" + base64.StdEncoding.EncodeToString(p)
	}
	s := string(p)
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	if strings.TrimSpace(s) != s {
		return strconv.Quote(s)
	}
	return s
}

func reasons(by map[string]uint64) string {
	if len(by) == 0 {
		return ""
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, by[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

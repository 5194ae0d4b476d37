package envelope

import (
	"fmt"
	"strings"
	"time"
)

// Offset names one line of a channel as the server relayed it: its
// server-time and msgid tags. Every member and recorder receives them
// unchanged, so an Offset is a position they all agree on (sequence
// numbers of a store are local to that store). The zero Offset means "the
// start". Offsets compare with ==; claims, history and the mesh API all
// use this one type (docs/PROTOCOL.md §6.13, §7).
//
// As a CBOR value (HistoryClaim, -Ack and -Reject payloads) it is the
// array [time, msgid].
type Offset struct {
	_ struct{} `cbor:",toarray"`
	// Time is the server-time in Unix nanoseconds (the receiver's clock on
	// servers without server-time); 0 only in the zero Offset.
	Time int64
	// MsgID is the server's msgid, "" on servers without msgids.
	MsgID string
}

// MaxMsgIDLen bounds a msgid in an Offset.
const MaxMsgIDLen = 512

// OffsetAt returns the Offset of a line received with server-time t (zero:
// none) and msgid.
func OffsetAt(t time.Time, msgid string) Offset {
	o := Offset{MsgID: msgid}
	if !t.IsZero() {
		o.Time = t.UnixNano()
	}
	return o
}

// At returns the offset's time in UTC (the zero time for the zero Offset).
func (o Offset) At() time.Time {
	if o.Time == 0 {
		return time.Time{}
	}
	return time.Unix(0, o.Time).UTC()
}

// IsZero reports whether o names no line (the start).
func (o Offset) IsZero() bool { return o.Time == 0 && o.MsgID == "" }

// Before reports whether o comes before p. Lines are compared by time; a
// line of the same time comes before another unless it is the same line or
// p has no msgid. Times have a millisecond grain on most servers, so this
// errs towards "not yet", which only delays a commit.
func (o Offset) Before(p Offset) bool {
	return o.Time < p.Time || (o.Time == p.Time && o.MsgID != p.MsgID && p.MsgID != "")
}

// String formats o as "2026-11-23T08:19:43.921Z/msgid": the time in UTC,
// RFC 3339 with as many fractional digits as it has, then a slash and the
// msgid. Without a msgid it is the time alone; the zero Offset is "".
// ParseOffset is its inverse.
func (o Offset) String() string {
	if o.IsZero() {
		return ""
	}
	s := o.At().Format(time.RFC3339Nano)
	if o.MsgID != "" {
		s += "/" + o.MsgID
	}
	return s
}

// ParseOffset parses what Offset.String returns: "TIME/MSGID", "TIME/" or
// "TIME" alone (RFC 3339, fractional seconds optional), or "" for the zero
// Offset. The msgid is everything after the first slash.
func ParseOffset(s string) (Offset, error) {
	if s == "" {
		return Offset{}, nil
	}
	if len(s) > 64+MaxMsgIDLen {
		return Offset{}, fmt.Errorf("envelope: offset too long (%d bytes)", len(s))
	}
	ts, id, _ := strings.Cut(s, "/")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return Offset{}, fmt.Errorf("envelope: offset %q: time is not RFC 3339: %w", s, err)
	}
	if err := checkMsgID(id); err != nil {
		return Offset{}, fmt.Errorf("envelope: offset %q: %w", s, err)
	}
	if t.UnixNano() <= 0 {
		return Offset{}, fmt.Errorf("envelope: offset %q: time before 1970", s)
	}
	return OffsetAt(t, id), nil
}

// Valid reports whether o is a well-formed Offset of a line: a positive
// time and a msgid without spaces or control characters, at most
// MaxMsgIDLen bytes. Decoders of offsets from the network check it.
func (o Offset) Valid() error {
	if o.Time <= 0 {
		return fmt.Errorf("envelope: offset %v: no time", o.Time)
	}
	return checkMsgID(o.MsgID)
}

func checkMsgID(id string) error {
	if len(id) > MaxMsgIDLen {
		return fmt.Errorf("msgid longer than %d bytes", MaxMsgIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("msgid has a space or control character")
		}
	}
	return nil
}

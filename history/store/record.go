package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// Bounds of a record. Encode refuses records beyond them and DecodeRecord
// reports them as corrupt, so a damaged length can never make the decoder
// allocate or read more than MaxRecordSize.
const (
	// MaxRecordSize bounds one encoded record, checksum included.
	MaxRecordSize = 64 << 10
	// MaxTags bounds the tags of one record.
	MaxTags = 64
	// MaxChannelLen bounds a channel name.
	MaxChannelLen = 200
	// MaxMsgIDLen bounds a msgid (it is also an index key).
	MaxMsgIDLen = envelope.MaxMsgIDLen
)

// recordVersion is the first byte of every encoded record.
const recordVersion = 1

// crcLen is the size of the CRC-32C that ends every encoded record.
const crcLen = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrInvalidRecord is returned by Append (and EncodeRecord) for a record
// that cannot be stored: no channel, too many tags, too large.
var ErrInvalidRecord = errors.New("history: invalid record")

// Record is one recorded channel line.
type Record struct {
	// Seq is the record's position in this store's log of the channel,
	// from 1, assigned by Append. Seqs of a channel are contiguous from
	// First to Last; they are local to one store (recorders do not share
	// them; see Offset for a position they agree on).
	Seq uint64
	// Channel is the lower-case channel name, e.g. "#ns.orders".
	Channel string
	// Time is the server-time tag, or the recorder's receive time when the
	// server sends none.
	Time time.Time
	// MsgID is the server's msgid tag, "" when none.
	MsgID string
	// Nick is the sender's nick.
	Nick string
	// Tags are the line's tags as received.
	Tags map[string]string
	// Body is the PRIVMSG text.
	Body string
}

// Offset returns the record's offset: its server time and msgid.
func (r Record) Offset() envelope.Offset { return envelope.OffsetAt(r.Time, r.MsgID) }

// EncodeRecord appends the encoding of r to dst and returns it.
//
// The encoding (version 1) is: the byte 1; uvarint Seq; zig-zag varint
// Unix seconds and uvarint nanoseconds of Time (UTC); Channel, MsgID and
// Nick, each a uvarint length and its bytes; a uvarint count of tags and
// each tag as key and value (uvarint length and bytes), keys in increasing
// byte order; Body (uvarint length and bytes); then the CRC-32C
// (Castagnoli) of everything before it, 4 bytes big-endian. It is
// canonical: one record has exactly one encoding.
func EncodeRecord(dst []byte, r *Record) ([]byte, error) {
	if err := checkRecord(r); err != nil {
		return dst, err
	}
	start := len(dst)
	b := append(dst, recordVersion)
	b = binary.AppendUvarint(b, r.Seq)
	t := r.Time.UTC()
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	b = appendString(b, r.Channel)
	b = appendString(b, r.MsgID)
	b = appendString(b, r.Nick)
	b = binary.AppendUvarint(b, uint64(len(r.Tags)))
	if len(r.Tags) > 0 {
		var keysBuf [MaxTags]string
		keys := keysBuf[:0]
		for k := range r.Tags {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendString(b, k)
			b = appendString(b, r.Tags[k])
		}
	}
	b = appendString(b, r.Body)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	if n := len(b) - start; n > MaxRecordSize {
		return dst, fmt.Errorf("%w: channel %s: encoded record is %d bytes, more than %d", ErrInvalidRecord, r.Channel, n, MaxRecordSize)
	}
	return b, nil
}

func checkRecord(r *Record) error {
	switch {
	case r.Channel == "":
		return fmt.Errorf("%w: no channel", ErrInvalidRecord)
	case len(r.Channel) > MaxChannelLen:
		return fmt.Errorf("%w: channel name longer than %d bytes", ErrInvalidRecord, MaxChannelLen)
	case len(r.MsgID) > MaxMsgIDLen:
		return fmt.Errorf("%w: channel %s: msgid longer than %d bytes", ErrInvalidRecord, r.Channel, MaxMsgIDLen)
	case len(r.Tags) > MaxTags:
		return fmt.Errorf("%w: channel %s: %d tags, more than %d", ErrInvalidRecord, r.Channel, len(r.Tags), MaxTags)
	case r.Time.Unix() < minUnix || r.Time.Unix() > maxUnix:
		return fmt.Errorf("%w: channel %s: time %v outside years 1..9999", ErrInvalidRecord, r.Channel, r.Time)
	}
	// Sizes are checked on the encoding; a string longer than that cannot
	// fit anyway, and refusing it early avoids building it.
	n := len(r.Channel) + len(r.MsgID) + len(r.Nick) + len(r.Body)
	for k, v := range r.Tags {
		n += len(k) + len(v)
	}
	if n > MaxRecordSize {
		return fmt.Errorf("%w: channel %s: record larger than %d bytes", ErrInvalidRecord, r.Channel, MaxRecordSize)
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeRecord decodes one encoded record, verifying its checksum and
// bounds. Any mismatch — wrong checksum, unknown version, a length beyond
// the record, too many or unsorted tags, trailing bytes — is an error
// wrapping ErrCorrupt. It never panics and never allocates more than the
// input's size in strings.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) < 1+crcLen {
		return Record{}, corruptf("record of %d bytes is too short", len(b))
	}
	if len(b) > MaxRecordSize {
		return Record{}, corruptf("record of %d bytes is larger than %d", len(b), MaxRecordSize)
	}
	body, sum := b[:len(b)-crcLen], binary.BigEndian.Uint32(b[len(b)-crcLen:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return Record{}, corruptf("record checksum mismatch (stored %08x, computed %08x)", sum, got)
	}
	if body[0] != recordVersion {
		return Record{}, corruptf("unknown record version %d", body[0])
	}
	d := decoder{b: body[1:]}
	var r Record
	r.Seq = d.uvarint("seq")
	sec := d.varint("time")
	nsec := d.uvarint("time")
	r.Channel = d.string("channel", MaxChannelLen)
	r.MsgID = d.string("msgid", MaxMsgIDLen)
	r.Nick = d.string("nick", MaxRecordSize)
	ntags := d.uvarint("tag count")
	if d.err == nil && ntags > MaxTags {
		d.fail("%d tags, more than %d", ntags, MaxTags)
	}
	if d.err == nil && ntags > 0 {
		r.Tags = make(map[string]string, ntags)
		prev := ""
		for i := uint64(0); i < ntags && d.err == nil; i++ {
			k := d.string("tag key", MaxRecordSize)
			v := d.string("tag value", MaxRecordSize)
			if d.err == nil && i > 0 && k <= prev {
				d.fail("tag keys out of order or repeated at %q", k)
			}
			r.Tags[k] = v
			prev = k
		}
	}
	r.Body = d.string("body", MaxRecordSize)
	if d.err != nil {
		return Record{}, d.err
	}
	if len(d.b) != 0 {
		return Record{}, corruptf("%d trailing bytes after the record", len(d.b))
	}
	if r.Seq == 0 {
		return Record{}, corruptf("record has Seq 0")
	}
	if r.Channel == "" {
		return Record{}, corruptf("record has no channel")
	}
	if nsec >= 1e9 {
		return Record{}, corruptf("record time has %d nanoseconds", nsec)
	}
	// Unix seconds of years 1..9999 only; anything else is damage.
	if sec < minUnix || sec > maxUnix {
		return Record{}, corruptf("record time %d s is out of range", sec)
	}
	r.Time = time.Unix(sec, int64(nsec)).UTC()
	return r, nil
}

const (
	minUnix = -62135596800 // 0001-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corruptf(format, args...)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string, max int) string {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) || n > uint64(max) {
		d.fail("%s length %d beyond the record or its bound", what, n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// indexTime is the time index's value of t: Unix nanoseconds, clamped to
// the int64 range (years 1678..2262), made sortable as unsigned big-endian
// bytes by flipping the sign bit.
func indexTime(t time.Time) uint64 {
	var n int64
	switch {
	case t.Unix() <= math.MinInt64/int64(time.Second)+1:
		n = math.MinInt64
	case t.Unix() >= math.MaxInt64/int64(time.Second)-1:
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return uint64(n) ^ 1<<63
}

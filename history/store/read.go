package store

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshbot/meshbot/envelope"
)

// Reads see committed records only (docs/HISTORY-STORE.md). Scan and
// ScanBack stream in bounded chunks, each in its own read transaction, and
// call their function outside it; ReadRange reads one replay page in one
// transaction; the Seek functions are one cursor seek in an index.

// Channels returns the channels of the store, sorted (committed state; a
// channel whose records retention removed is still listed).
func (s *Store) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.chans))
	for ch := range s.chans {
		out = append(out, ch)
	}
	slices.Sort(out)
	return out
}

// Last returns the channel's last committed record.
func (s *Store) Last(channel string) (Record, bool) {
	return s.edge(channel, true)
}

// First returns the channel's first record kept.
func (s *Store) First(channel string) (Record, bool) {
	return s.edge(channel, false)
}

func (s *Store) edge(channel string, last bool) (Record, bool) {
	ch := lowerChannel(channel)
	var r Record
	var ok bool
	_ = s.view("read", func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(recPrefix + ch))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if last {
			k, v = c.Last()
		} else {
			k, v = c.First()
		}
		if len(k) != 8 {
			return nil
		}
		rec, err := DecodeRecord(v)
		if err != nil || rec.Seq != binary.BigEndian.Uint64(k) {
			return nil
		}
		r, ok = rec, true
		return nil
	})
	return r, ok
}

// Scan calls fn with the channel's committed records in Seq order, from
// fromSeq (inclusive; 0 means from the first), until fn returns false or
// the records end. It streams: records are read in bounded chunks, each in
// its own read transaction, and fn runs outside any transaction (it may
// call the Store). Records removed by retention while Scan runs are
// skipped (the Seqs jump). A damaged record ends the scan with an error
// wrapping ErrCorrupt, after the records before it.
func (s *Store) Scan(channel string, fromSeq uint64, fn func(Record) bool) error {
	if fromSeq == 0 {
		fromSeq = 1
	}
	return s.scan(channel, fromSeq, false, fn)
}

// ScanBack calls fn with the channel's committed records in reverse Seq
// order, from the last record before beforeSeq (0: from the last record),
// until fn returns false or the records end. Like Scan it reads bounded
// chunks, each in its own read transaction, and runs fn outside them.
func (s *Store) ScanBack(channel string, beforeSeq uint64, fn func(Record) bool) error {
	return s.scan(channel, beforeSeq, true, fn)
}

// ReadRange reads the channel's committed records with Seqs from through
// to (inclusive; from 0 means 1), in Seq order, in one read transaction,
// handing each to take until take returns false (that record is left out
// and the read ends there). It is how a recorder reads one page: take
// builds the page and says when the next record no longer fits.
//
// It returns through, the Seq up to which the read is complete — every
// record kept with a Seq in from..through was taken (from-1: none) — and
// the channel's last Seq when it was read (0 for an unknown or empty
// channel). take runs inside the transaction: it must not call the Store,
// and it owns the Record it gets (its Tags map included). A damaged record
// ends the read with an error wrapping ErrCorrupt.
func (s *Store) ReadRange(channel string, from, to uint64, take func(Record) bool) (through, last uint64, err error) {
	ch := lowerChannel(channel)
	if from == 0 {
		from = 1
	}
	through = from - 1
	err = s.view("read", func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(recPrefix + ch))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		if k, _ := c.Last(); len(k) == 8 {
			last = binary.BigEndian.Uint64(k)
		}
		for k, v := c.Seek(seqKey(from)); ; k, v = c.Next() {
			if k == nil {
				through = max(through, min(last, to))
				return nil
			}
			if len(k) != 8 {
				return fmt.Errorf("history: channel %s after record %d: %w: key %x", ch, through, ErrCorrupt, k)
			}
			seq := binary.BigEndian.Uint64(k)
			if seq > to {
				through = to
				return nil
			}
			r, err := DecodeRecord(v)
			if err == nil && r.Seq != seq {
				err = fmt.Errorf("%w: key %x holds record %d", ErrCorrupt, k, r.Seq)
			}
			if err != nil {
				return fmt.Errorf("history: channel %s after record %d: %w", ch, through, err)
			}
			if !take(r) {
				return nil
			}
			through = seq
		}
	})
	return through, last, err
}

// scan is Scan (forward, from seq) and ScanBack (back, before seq; 0: from
// the end).
func (s *Store) scan(channel string, seq uint64, back bool, fn func(Record) bool) error {
	ch := lowerChannel(channel)
	buf := make([]Record, 0, scanChunk)
	for {
		buf = buf[:0]
		more := false
		err := s.view("scan", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(recPrefix + ch))
			if b == nil {
				return nil
			}
			c := b.Cursor()
			var k, v []byte
			step := c.Next
			switch {
			case !back:
				k, v = c.Seek(seqKey(seq))
			case seq == 0:
				k, v = c.Last()
			default:
				if k, _ = c.Seek(seqKey(seq)); k == nil {
					k, v = c.Last()
				} else {
					k, v = c.Prev()
				}
			}
			if back {
				step = c.Prev
			}
			size := 0
			for ; k != nil; k, v = step() {
				if len(buf) == scanChunk || size >= scanChunkBytes {
					more = true
					return nil
				}
				r, err := DecodeRecord(v)
				if err == nil && (len(k) != 8 || r.Seq != binary.BigEndian.Uint64(k)) {
					err = fmt.Errorf("%w: key %x holds record %d", ErrCorrupt, k, r.Seq)
				}
				if err != nil {
					return fmt.Errorf("history: channel %s at key %x: %w", ch, k, err)
				}
				buf = append(buf, r)
				size += len(v)
			}
			return nil
		})
		for _, r := range buf {
			if !fn(r) {
				return nil
			}
		}
		if err != nil || !more {
			return err
		}
		if seq = buf[len(buf)-1].Seq; !back {
			seq++
		}
	}
}

// SeekTime returns the first Seq whose record is at or after t: every
// record with Time >= t has a Seq >= the result, and every record before
// it has Time < t. When no record is that recent it returns Last+1 (the
// Seq of the next record); for an unknown channel, 1.
//
// It is one cursor seek in the time index. The index holds each record's
// Time raised to the highest Time before it in the channel, so it is in
// Seq order even where the server's clock stepped back; such a record
// (Time < t after one with Time >= t) is then included, never skipped.
func (s *Store) SeekTime(channel string, t time.Time) uint64 {
	ch := lowerChannel(channel)
	seq := uint64(1)
	_ = s.view("seek", func(tx *bolt.Tx) error {
		seq = seekTime(tx, ch, t)
		return nil
	})
	return seq
}

func seekTime(tx *bolt.Tx, ch string, t time.Time) uint64 {
	next := uint64(1)
	if meta := tx.Bucket(metaBucket); meta != nil {
		if v := meta.Get([]byte(nextPrefix + ch)); len(v) == 8 {
			next = binary.BigEndian.Uint64(v)
		}
	}
	b := tx.Bucket([]byte(timePrefix + ch))
	if b == nil {
		return next
	}
	var kb [16]byte
	k, _ := b.Cursor().Seek(timeKey(kb[:0], indexTime(t), 0))
	if len(k) != 16 {
		return next
	}
	return binary.BigEndian.Uint64(k[8:])
}

// SeekOffset returns the Seq of the record with o's msgid and true, when
// the channel holds it; otherwise SeekTime(channel, o.Time) and false
// (for an offset without msgid, the first record after o.Time).
// To resume after o, start at the result + 1 when it is exact, at the
// result otherwise.
func (s *Store) SeekOffset(channel string, o envelope.Offset) (uint64, bool) {
	ch := lowerChannel(channel)
	seq, exact := uint64(1), false
	_ = s.view("seek", func(tx *bolt.Tx) error {
		if o.MsgID != "" && len(o.MsgID) <= MaxMsgIDLen {
			if mb, rb := tx.Bucket([]byte(midPrefix+ch)), tx.Bucket([]byte(recPrefix+ch)); mb != nil && rb != nil {
				if v := mb.Get([]byte(o.MsgID)); len(v) == 8 {
					// The index is derived data: trust it only if the
					// record agrees.
					if r, err := DecodeRecord(rb.Get(v)); err == nil && r.MsgID == o.MsgID {
						seq, exact = r.Seq, true
						return nil
					}
				}
			}
		}
		if o.MsgID == "" {
			// A line known only by its time (a server without msgids):
			// the next line is the first after that time.
			seq = seekTime(tx, ch, o.At().Add(1))
			return nil
		}
		seq = seekTime(tx, ch, o.At())
		return nil
	})
	return seq, exact
}

package store

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention by age and by size (Options.MaxAge, MaxBytes): the committer
// applies it in the commit's transaction, in bounded batches; Trim applies
// it at once.

// needTrim reports whether retention has anything to remove.
func (s *Store) needTrim(work map[string]chanState, now time.Time) bool {
	if s.opts.MaxAge <= 0 && s.opts.MaxBytes <= 0 {
		return false
	}
	cutoff := indexTime(now.Add(-s.opts.MaxAge))
	var total int64
	for ch := range s.chans {
		st, _ := s.state(work, ch)
		if s.opts.MaxAge > 0 && st.count > 0 && st.firstIx < cutoff {
			return true
		}
		total += st.bytes
	}
	return s.opts.MaxBytes > 0 && total > s.opts.MaxBytes
}

// trimTx removes, in tx, what retention says to remove as of now, at most
// trimBatch records; more reports that there is still something to remove.
func (s *Store) trimTx(tx *bolt.Tx, work map[string]chanState, now time.Time) (removed int, more bool, err error) {
	if s.opts.MaxAge <= 0 && s.opts.MaxBytes <= 0 {
		return 0, false, nil
	}
	chans := make(map[string]struct{}, len(s.chans)+len(work))
	for ch := range s.chans {
		chans[ch] = struct{}{}
	}
	for ch := range work {
		chans[ch] = struct{}{}
	}
	names := make([]string, 0, len(chans))
	for ch := range chans {
		names = append(names, ch)
	}
	slices.Sort(names)
	if s.opts.MaxAge > 0 {
		cutoff := indexTime(now.Add(-s.opts.MaxAge))
		for _, ch := range names {
			st, _ := s.state(work, ch)
			for st.count > 0 && st.firstIx < cutoff {
				if removed == trimBatch {
					return removed, true, nil
				}
				if err := removeFirst(tx, ch, &st); err != nil {
					return removed, false, err
				}
				work[ch] = st
				removed++
			}
		}
	}
	if s.opts.MaxBytes > 0 {
		var total int64
		for _, ch := range names {
			st, _ := s.state(work, ch)
			total += st.bytes
		}
		for total > s.opts.MaxBytes {
			// The oldest first record across channels goes first.
			var oldest string
			var ost chanState
			for _, ch := range names {
				st, _ := s.state(work, ch)
				if st.count > 0 && (oldest == "" || st.firstIx < ost.firstIx) {
					oldest, ost = ch, st
				}
			}
			if oldest == "" {
				break
			}
			if removed == trimBatch {
				return removed, true, nil
			}
			before := ost.bytes
			if err := removeFirst(tx, oldest, &ost); err != nil {
				return removed, false, err
			}
			work[oldest] = ost
			total -= before - ost.bytes
			removed++
		}
	}
	return removed, false, nil
}

// removeFirst removes the channel's first record and its index entries.
func removeFirst(tx *bolt.Tx, ch string, st *chanState) error {
	bk, err := channelBuckets(tx, ch, false)
	if err != nil {
		return err
	}
	if bk.rec == nil || bk.tim == nil || bk.mid == nil {
		return fmt.Errorf("%w: channel %s: buckets missing", ErrCorrupt, ch)
	}
	rc := bk.rec.Cursor()
	k, v := rc.First()
	if len(k) != 8 || binary.BigEndian.Uint64(k) != st.first {
		return fmt.Errorf("%w: channel %s: first record is not %d", ErrCorrupt, ch, st.first)
	}
	seq := st.first
	if r, derr := DecodeRecord(v); derr == nil && r.MsgID != "" {
		if got := bk.mid.Get([]byte(r.MsgID)); len(got) == 8 && binary.BigEndian.Uint64(got) == seq {
			if err := bk.mid.Delete([]byte(r.MsgID)); err != nil {
				return err
			}
		}
	}
	size := int64(len(v))
	if err := rc.Delete(); err != nil {
		return err
	}
	tc := bk.tim.Cursor()
	if tk, _ := tc.First(); len(tk) == 16 && binary.BigEndian.Uint64(tk[8:]) == seq {
		if err := tc.Delete(); err != nil {
			return err
		}
	}
	st.count--
	st.bytes -= size
	st.first++
	if tk, _ := tc.First(); len(tk) == 16 {
		st.firstIx = binary.BigEndian.Uint64(tk)
	} else {
		st.firstIx = st.lastIx
	}
	return nil
}

// Trim applies retention as of now (MaxAge counts back from now) and
// returns how many records it removed. The committer also applies it at
// every commit tick with the current time.
func (s *Store) Trim(now time.Time) (removed int, err error) {
	s.mu.Lock()
	closed, broken := s.closed, s.broken
	s.mu.Unlock()
	if broken != nil {
		return 0, broken
	}
	if closed {
		return 0, ErrClosed
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	for {
		work := make(map[string]chanState)
		if !s.needTrim(work, now) {
			return removed, nil
		}
		var n int
		var more bool
		err := s.update("trim", func(tx *bolt.Tx) error {
			var err error
			n, more, err = s.trimTx(tx, work, now)
			return err
		})
		if err != nil {
			return removed, err
		}
		s.mu.Lock()
		for ch, st := range work {
			s.chans[ch] = st
		}
		s.removed += int64(n)
		s.mu.Unlock()
		removed += n
		if !more {
			return removed, nil
		}
	}
}

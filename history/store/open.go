package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strings"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DamageError describes one damaged channel found by Open: the channel
// kept its records before Seq and lost the rest. It wraps ErrCorrupt.
type DamageError struct {
	Path    string
	Channel string
	// Seq is the first Seq dropped: the damaged record, or the first
	// missing one. The channel's next record gets this Seq.
	Seq uint64
	// Kept counts the records kept (the intact prefix), Dropped the
	// records removed (the damaged one and every later one).
	Kept, Dropped int64
	// Reason says what was wrong.
	Reason error
}

func (e *DamageError) Error() string {
	if e.Dropped == 0 {
		return fmt.Sprintf("history: store %s: channel %s: %v: kept its %d records; the next one gets Seq %d",
			e.Path, e.Channel, e.Reason, e.Kept, e.Seq)
	}
	return fmt.Sprintf("history: store %s: channel %s: record %d is damaged (%v): kept the %d records before it, dropped %d (it and every later record of the channel)",
		e.Path, e.Channel, e.Seq, e.Reason, e.Kept, e.Dropped)
}

// Unwrap returns ErrCorrupt and the reason.
func (e *DamageError) Unwrap() []error { return []error{ErrCorrupt, e.Reason} }

// bbolt's on-disk meta page (go.etcd.io/bbolt/internal/common): a 16-byte
// page header, then magic, version, page size, flags (uint32 each), the
// root bucket (root page id, sequence), freelist page id, high water mark
// page id, transaction id (uint64 each), and an FNV-64a checksum of the
// fields before it. Native byte order.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltMetaSize   = 64
	boltNoFreelist = ^uint64(0)
)

type boltMeta struct {
	pageSize       uint32
	root, freelist uint64
	pgid, txid     uint64
}

func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < boltPageHeader+boltMetaSize {
		return boltMeta{}, errors.New("short meta page")
	}
	m := b[boltPageHeader : boltPageHeader+boltMetaSize]
	ne := binary.NativeEndian
	if ne.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("not a bbolt meta page (magic)")
	}
	if ne.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d", ne.Uint32(m[4:]))
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return boltMeta{}, errors.New("meta page checksum mismatch")
	}
	return boltMeta{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

// readMetas reads both meta pages of a bbolt file. It returns the page
// size and the meta bbolt will use (the valid one with the highest
// transaction id).
func readMetas(f *os.File, size int64) (boltMeta, error) {
	buf := make([]byte, boltPageHeader+boltMetaSize)
	var metas []boltMeta
	var errs []error
	if _, err := f.ReadAt(buf, 0); err != nil {
		errs = append(errs, fmt.Errorf("meta page 0: %w", err))
	} else if m, err := parseMeta(buf); err != nil {
		errs = append(errs, fmt.Errorf("meta page 0: %w", err))
	} else {
		metas = append(metas, m)
	}
	sizes := []int64{int64(os.Getpagesize()), 4096, 8192, 16384, 32768, 65536}
	if len(metas) == 1 {
		sizes = []int64{int64(metas[0].pageSize)}
	}
	var err1 error
	for _, ps := range sizes {
		if ps < 1024 || ps > 1<<20 {
			continue
		}
		if _, err := f.ReadAt(buf, ps); err != nil {
			if err1 == nil {
				err1 = err
			}
			continue
		}
		m, err := parseMeta(buf)
		if err == nil && int64(m.pageSize) == ps {
			metas = append(metas, m)
			err1 = nil
			break
		}
		if err1 == nil {
			err1 = err
		}
	}
	if err1 != nil || (len(metas) == 0 && len(errs) == 1) {
		if err1 == nil {
			err1 = errors.New("not found")
		}
		errs = append(errs, fmt.Errorf("meta page 1: %w", err1))
	}
	if len(metas) == 0 {
		msg := make([]string, len(errs))
		for i, e := range errs {
			msg[i] = e.Error()
		}
		return boltMeta{}, errors.New(strings.Join(msg, "; "))
	}
	best := metas[0]
	for _, m := range metas[1:] {
		if m.txid > best.txid {
			best = m
		}
	}
	return best, nil
}

// preflight checks the file's meta pages before bbolt maps it: bbolt
// trusts them, and a file shorter than its high water mark (a truncated
// file) would make it read beyond the end of the mapping.
func preflight(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if fi.IsDir() {
		return fmt.Errorf("history: %s is a directory, not a store file", path)
	}
	size := fi.Size()
	if size == 0 {
		return nil // bbolt initialises an empty file
	}
	m, err := readMetas(f, size)
	if err != nil {
		return unusable(path, fmt.Errorf("%w: both bbolt meta pages are invalid: %w", ErrCorrupt, err))
	}
	ps := uint64(m.pageSize)
	switch {
	case m.pgid > uint64(size)/ps:
		return unusable(path, fmt.Errorf("%w: the file is truncated: it is %d bytes but its last commit uses %d pages of %d bytes (%d bytes)",
			ErrCorrupt, size, m.pgid, ps, m.pgid*ps))
	case m.root < 2 || m.root >= m.pgid:
		return unusable(path, fmt.Errorf("%w: root page %d outside the file's %d pages", ErrCorrupt, m.root, m.pgid))
	case m.freelist != boltNoFreelist && (m.freelist < 2 || m.freelist >= m.pgid):
		return unusable(path, fmt.Errorf("%w: freelist page %d outside the file's %d pages", ErrCorrupt, m.freelist, m.pgid))
	}
	return nil
}

// chanCheck is what verify found in one channel.
type chanCheck struct {
	ch      string
	st      chanState
	damage  *DamageError
	keep    int64 // records to keep: the first keep keys of the bucket
	extra   bool  // keys after the kept ones (to delete)
	timeFix int   // 0 ok, 1 delete entries after the kept records, 2 rebuild
	midFix  int   // 0 ok, 1 delete stray entries, 2 rebuild
	nextFix bool
}

func (c *chanCheck) needsFix() bool {
	return c.extra || c.timeFix != 0 || c.midFix != 0 || c.nextFix
}

// verify checks the store (format, every record, the indexes), repairs
// what it can in one write transaction, and loads the channel state. It
// returns the damage found (joined DamageErrors) and, separately, a fatal
// error when the store cannot be used.
func (s *Store) verify() (damage error, fatal error) {
	var (
		fresh  bool
		checks []*chanCheck
	)
	err := guard("verify", func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			meta := tx.Bucket(metaBucket)
			if meta == nil {
				empty := true
				_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
				if !empty {
					return fmt.Errorf("%w: no meta bucket: not a meshbot history store", ErrCorrupt)
				}
				fresh = true
				return nil
			}
			v := meta.Get(versionKey)
			ver, n := binary.Uvarint(v)
			if n <= 0 || n != len(v) || ver == 0 {
				return fmt.Errorf("%w: format version unreadable (%x)", ErrCorrupt, v)
			}
			if ver > formatVersion {
				return fmt.Errorf("%w: %s has format version %d; this program reads up to %d", ErrVersion, s.path, ver, formatVersion)
			}
			c := tx.Cursor()
			for k, v := c.Seek([]byte(recPrefix)); k != nil && bytes.HasPrefix(k, []byte(recPrefix)); k, v = c.Next() {
				if v != nil {
					return fmt.Errorf("%w: %q is a key, not a bucket", ErrCorrupt, k)
				}
				checks = append(checks, checkChannel(tx, s.path, string(k[len(recPrefix):])))
			}
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, ErrVersion) {
			return nil, err
		}
		return nil, unusable(s.path, err)
	}

	var damages []error
	fix := fresh
	for _, c := range checks {
		if c.damage != nil {
			damages = append(damages, c.damage)
		}
		fix = fix || c.needsFix()
	}
	if fix {
		err := guard("repair", func() error {
			return s.db.Update(func(tx *bolt.Tx) error {
				if fresh {
					meta, err := tx.CreateBucket(metaBucket)
					if err != nil {
						return err
					}
					return meta.Put(versionKey, binary.AppendUvarint(nil, formatVersion))
				}
				for _, c := range checks {
					if c.needsFix() {
						if err := repairChannel(tx, c); err != nil {
							return fmt.Errorf("channel %s: %w", c.ch, err)
						}
					}
				}
				return nil
			})
		})
		if err != nil {
			return nil, unusable(s.path, fmt.Errorf("repairing: %w", err))
		}
	}
	for _, c := range checks {
		s.chans[c.ch] = c.st
	}
	return errors.Join(damages...), nil
}

// checkChannel reads every record and index entry of one channel.
func checkChannel(tx *bolt.Tx, path, ch string) *chanCheck {
	c := &chanCheck{ch: ch}
	bk, _ := channelBuckets(tx, ch, false)
	var (
		expect  uint64 // Seq the next key must have (0: the first key)
		dropSeq uint64
		reason  error
		dropped int64
	)
	rc := bk.rec.Cursor()
	for k, v := rc.First(); k != nil; k, v = rc.Next() {
		if reason != nil {
			dropped++
			continue
		}
		var seq uint64
		if len(k) == 8 {
			seq = binary.BigEndian.Uint64(k)
		}
		switch {
		case v == nil:
			reason = fmt.Errorf("%w: key %x is a bucket", ErrCorrupt, k)
		case len(k) != 8 || seq == 0:
			reason = fmt.Errorf("%w: key %x is not a Seq", ErrCorrupt, k)
		case expect != 0 && seq != expect:
			reason = fmt.Errorf("%w: record %d is missing (the next key is %d)", ErrCorrupt, expect, seq)
		default:
			r, err := DecodeRecord(v)
			switch {
			case err != nil:
				reason = err
			case r.Seq != seq:
				reason = fmt.Errorf("%w: key %d holds record %d", ErrCorrupt, seq, r.Seq)
			case r.Channel != ch:
				reason = fmt.Errorf("%w: record %d belongs to channel %q", ErrCorrupt, seq, r.Channel)
			}
		}
		if reason != nil {
			dropped = 1
			dropSeq = expect
			if expect == 0 {
				dropSeq = max(seq, 1)
			}
			continue
		}
		if c.keep == 0 {
			c.st.first = seq
		}
		c.keep++
		c.st.bytes += int64(len(v))
		expect = seq + 1
	}
	c.st.count = c.keep
	c.extra = dropped > 0

	// The Seq the next record gets.
	var stored uint64
	if meta := tx.Bucket(metaBucket); meta != nil {
		if v := meta.Get([]byte(nextPrefix + ch)); len(v) == 8 {
			stored = binary.BigEndian.Uint64(v)
		}
	}
	switch {
	case reason != nil:
		c.st.next = dropSeq
		c.nextFix = stored != dropSeq
		c.damage = &DamageError{Path: path, Channel: ch, Seq: dropSeq, Kept: c.keep, Dropped: dropped, Reason: reason}
	case c.keep > 0 && stored != expect:
		// Records and their next Seq are written in one transaction:
		// a difference is damage (records after expect-1 lost, or the
		// meta bucket damaged).
		c.st.next = expect
		c.nextFix = true
		c.damage = &DamageError{Path: path, Channel: ch, Seq: expect, Kept: c.keep, Dropped: 0,
			Reason: fmt.Errorf("%w: the stored next Seq is %d, the last record %d", ErrCorrupt, stored, expect-1)}
		if stored == 0 {
			c.damage.Reason = fmt.Errorf("%w: the next Seq is missing from the meta bucket (the last record is %d)", ErrCorrupt, expect-1)
		}
	case c.keep == 0:
		c.st.next = max(stored, 1)
		c.nextFix = stored == 0
	default:
		c.st.next = expect
	}
	if c.keep == 0 {
		c.st.first = c.st.next
	}
	end := c.st.first + uint64(c.keep) // first Seq not kept

	// Time index: entry j must be record first+j, in time order.
	if bk.tim == nil {
		c.timeFix = 2
	} else {
		tc := bk.tim.Cursor()
		var j int64
		var prev uint64
		for k, _ := tc.First(); k != nil; k, _ = tc.Next() {
			if len(k) != 16 {
				c.timeFix = 2
				break
			}
			ix, seq := binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:])
			if j < c.keep {
				if seq != c.st.first+uint64(j) || ix < prev {
					c.timeFix = 2
					break
				}
				if j == 0 {
					c.st.firstIx = ix
				}
				c.st.lastIx, prev = ix, ix
			} else if seq < end {
				c.timeFix = 2
				break
			} else {
				c.timeFix = max(c.timeFix, 1)
			}
			j++
		}
		if j < c.keep {
			c.timeFix = 2
		}
	}

	// Msgid index: every entry must name a kept record. (Whether the
	// record has that msgid is checked on use, by SeekOffset.)
	if bk.mid == nil {
		c.midFix = 2
	} else {
		mc := bk.mid.Cursor()
		for k, v := mc.First(); k != nil; k, v = mc.Next() {
			if len(v) != 8 {
				c.midFix = 1
				break
			}
			if seq := binary.BigEndian.Uint64(v); seq < c.st.first || seq >= end {
				c.midFix = 1
				break
			}
		}
	}
	return c
}

// repairChannel deletes the records after the kept prefix and repairs
// the indexes and the next Seq.
func repairChannel(tx *bolt.Tx, c *chanCheck) error {
	bk, err := channelBuckets(tx, c.ch, true)
	if err != nil {
		return err
	}
	end := c.st.first + uint64(c.keep)
	if c.extra {
		rc := bk.rec.Cursor()
		k, v := rc.First()
		for i := int64(0); i < c.keep && k != nil; i++ {
			k, v = rc.Next()
		}
		for k != nil {
			kk := bytes.Clone(k)
			if v == nil {
				err = bk.rec.DeleteBucket(kk)
			} else {
				err = rc.Delete()
			}
			if err != nil {
				return err
			}
			k, v = rc.Seek(kk)
			if bytes.Equal(k, kk) {
				return fmt.Errorf("%w: cannot delete key %x", ErrCorrupt, kk)
			}
		}
	}
	switch c.timeFix {
	case 1:
		tc := bk.tim.Cursor()
		for k, _ := tc.Last(); len(k) == 16 && binary.BigEndian.Uint64(k[8:]) >= end; k, _ = tc.Last() {
			if err := tc.Delete(); err != nil {
				return err
			}
		}
	case 2:
		if bk.tim, err = recreateBucket(tx, timePrefix+c.ch); err != nil {
			return err
		}
		bk.tim.FillPercent = 1
		var last uint64
		i := int64(0)
		rc := bk.rec.Cursor()
		for k, v := rc.First(); k != nil && i < c.keep; k, v = rc.Next() {
			r, err := DecodeRecord(v)
			if err != nil {
				return err
			}
			ix := max(indexTime(r.Time), last)
			if i == 0 {
				c.st.firstIx = ix
			}
			last = ix
			if err := bk.tim.Put(timeKey(nil, ix, r.Seq), []byte{}); err != nil {
				return err
			}
			i++
		}
		c.st.lastIx = last
	}
	switch c.midFix {
	case 1:
		mc := bk.mid.Cursor()
		for k, v := mc.First(); k != nil; {
			seq := uint64(0)
			if len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
			if seq >= c.st.first && seq < end {
				k, v = mc.Next()
				continue
			}
			kk := bytes.Clone(k)
			if err := mc.Delete(); err != nil {
				return err
			}
			k, v = mc.Seek(kk)
			if bytes.Equal(k, kk) {
				return fmt.Errorf("%w: cannot delete msgid %q", ErrCorrupt, kk)
			}
		}
	case 2:
		if bk.mid, err = recreateBucket(tx, midPrefix+c.ch); err != nil {
			return err
		}
		i := int64(0)
		rc := bk.rec.Cursor()
		for k, v := rc.First(); k != nil && i < c.keep; k, v = rc.Next() {
			r, err := DecodeRecord(v)
			if err != nil {
				return err
			}
			if r.MsgID != "" {
				if err := bk.mid.Put([]byte(r.MsgID), bytes.Clone(k)); err != nil {
					return err
				}
			}
			i++
		}
	}
	if c.nextFix || c.extra {
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			return fmt.Errorf("%w: meta bucket missing", ErrCorrupt)
		}
		if err := meta.Put([]byte(nextPrefix+c.ch), seqKey(c.st.next)); err != nil {
			return err
		}
	}
	return nil
}

// recreateBucket empties the bucket name (an index rebuilt from the
// records), creating it when it is missing.
func recreateBucket(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	if err := tx.DeleteBucket([]byte(name)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return nil, err
	}
	return tx.CreateBucket([]byte(name))
}

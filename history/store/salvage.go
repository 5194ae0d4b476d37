package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// salvageBatch bounds the records Salvage holds in memory at once.
const salvageBatch = 4096

// Salvage copies every readable, checksum-valid record of the store at
// path into a new store at newPath (which must not exist) and returns how
// many records the new store holds. It is best effort and never panics;
// the file at path is only read. Use it on a file Open refused:
//
//	mv history.db history.db.damaged
//	store.Salvage("history.db.damaged", "history.db")
//
// It works in up to two passes:
//
//  1. Through bbolt's B+tree, channel by channel in Seq order, stopping
//     each channel at its first damaged or missing record (or wherever
//     bbolt panics).
//  2. Only when pass 1 met damage: a raw scan of every page of the file
//     for bbolt leaf elements holding a valid record (records carry their
//     channel, Seq and checksum, so they are recognised without the tree).
//     A channel pass 1 read is extended with the records that continue it
//     without a gap; a channel pass 1 could not read gets the longest
//     gap-free run of Seqs found (the later one on a tie). Old copies of
//     records (bbolt is copy-on-write) are the same bytes and merge; the
//     run rule leaves out leftovers of records retention had removed.
//
// Pass 2 stages the records it finds in a temporary file next to newPath,
// removed at the end.
func Salvage(path, newPath string) (kept int, err error) {
	if _, err := os.Lstat(newPath); err == nil {
		return 0, fmt.Errorf("history: salvage: %s already exists", newPath)
	}
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("history: salvage: %w", err)
	}
	dst, derr := Open(Options{Path: newPath, CommitRecords: salvageBatch})
	if derr != nil {
		if dst != nil {
			_ = dst.Close()
		}
		return 0, fmt.Errorf("history: salvage: creating %s: %w", newPath, derr)
	}
	defer func() {
		if cerr := dst.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("history: salvage: closing %s: %w", newPath, cerr)
		}
		if err == nil {
			kept = int(dst.Stats().Records)
		}
	}()

	complete, damaged, err := salvageTree(path, dst)
	if err != nil {
		return 0, err
	}
	if !damaged {
		return 0, nil
	}
	return 0, salvageRaw(path, newPath+".salvage-tmp", dst, complete)
}

// salvageTree is pass 1. complete holds the channels read to their end
// without damage; damaged reports whether anything was missed.
func salvageTree(path string, dst *Store) (complete map[string]bool, damaged bool, err error) {
	complete = make(map[string]bool)
	if preflight(path) != nil {
		damaged = true // bbolt may still read part of it
	}
	src, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: DefaultLockTimeout})
	if errors.Is(err, ErrLocked) {
		return nil, false, fmt.Errorf("history: salvage: %w", err)
	}
	if err != nil {
		return complete, true, nil
	}
	defer func() { _ = guard("close", src.Close) }()

	var chans []string
	if err := guard("salvage", func() error {
		return src.View(func(tx *bolt.Tx) error {
			c := tx.Cursor()
			for k, v := c.Seek([]byte(recPrefix)); k != nil && bytes.HasPrefix(k, []byte(recPrefix)); k, v = c.Next() {
				if v == nil && len(k) > len(recPrefix) && validChannel(string(k[len(recPrefix):])) == nil {
					chans = append(chans, string(k[len(recPrefix):]))
				}
			}
			return nil
		})
	}); err != nil {
		damaged = true
	}
	for _, ch := range chans {
		var next uint64 // 0: from the first record
		chDamaged := false
		for {
			batch := make([]pendingRec, 0, salvageBatch)
			done := false
			perr := guard("salvage", func() error {
				return src.View(func(tx *bolt.Tx) error {
					b := tx.Bucket([]byte(recPrefix + ch))
					if b == nil {
						done = true
						return nil
					}
					c := b.Cursor()
					var k, v []byte
					if next == 0 {
						k, v = c.First()
					} else {
						k, v = c.Seek(seqKey(next))
					}
					for ; len(batch) < salvageBatch; k, v = c.Next() {
						if k == nil {
							done = true
							return nil
						}
						r, ok := validRecord(k, v, ch)
						if !ok || (next != 0 && r.Seq != next) {
							done, chDamaged = true, true
							return nil
						}
						batch = append(batch, pendingFromRecord(&r, bytes.Clone(v)))
						next = r.Seq + 1
					}
					return nil
				})
			})
			if perr != nil {
				done, chDamaged = true, true
			}
			if err := dst.importBatch(batch); err != nil {
				return nil, false, fmt.Errorf("history: salvage: writing: %w", err)
			}
			if done {
				if chDamaged {
					damaged = true
				} else {
					complete[ch] = true
				}
				break
			}
		}
	}
	return complete, damaged, nil
}

// validRecord decodes one bbolt key/value pair as a record of ch.
func validRecord(k, v []byte, ch string) (Record, bool) {
	if len(k) != 8 || v == nil {
		return Record{}, false
	}
	r, err := DecodeRecord(v)
	if err != nil || r.Seq != binary.BigEndian.Uint64(k) || (ch != "" && r.Channel != ch) || validChannel(r.Channel) != nil {
		return Record{}, false
	}
	return r, true
}

func pendingFromRecord(r *Record, val []byte) pendingRec {
	return pendingRec{ch: r.Channel, seq: r.Seq, t: indexTime(r.Time), msgid: r.MsgID, val: val}
}

// importBatch writes records with their Seqs as they are (Salvage's
// path: the first record of a new channel may have any Seq, then they
// must follow).
func (s *Store) importBatch(batch []pendingRec) error {
	if len(batch) == 0 {
		return nil
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	work := make(map[string]chanState)
	if err := s.update("salvage", func(tx *bolt.Tx) error { return s.putRecords(tx, work, batch) }); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch, st := range work {
		s.chans[ch] = st
		s.next[ch] = st.next
	}
	s.commits++
	return nil
}

// salvageRaw is pass 2.
func salvageRaw(path, tmpPath string, dst *Store, complete map[string]bool) error {
	_ = os.Remove(tmpPath)
	stage, err := bolt.Open(tmpPath, 0o600, &bolt.Options{NoSync: true, Timeout: DefaultLockTimeout})
	if err != nil {
		return fmt.Errorf("history: salvage: staging file: %w", err)
	}
	defer func() {
		_ = stage.Close()
		_ = os.Remove(tmpPath)
	}()

	// Stage every valid record found in the file, keyed by channel and
	// Seq (copies of one record collapse into one).
	var batch []pendingRec
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stage.Update(func(tx *bolt.Tx) error {
			for _, p := range batch {
				b, err := tx.CreateBucketIfNotExists([]byte(p.ch))
				if err != nil {
					return err
				}
				if err := b.Put(seqKey(p.seq), p.val); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	var emitErr error
	scanErr := guard("salvage scan", func() error {
		return scanPages(path, func(r *Record, val []byte) bool {
			if complete[r.Channel] {
				return true
			}
			batch = append(batch, pendingFromRecord(r, bytes.Clone(val)))
			if len(batch) == salvageBatch {
				if emitErr = flush(); emitErr != nil {
					return false
				}
			}
			return true
		})
	})
	if emitErr == nil {
		emitErr = flush()
	}
	if emitErr != nil {
		return fmt.Errorf("history: salvage: staging: %w", emitErr)
	}
	_ = scanErr // a damaged file ends the scan early: keep what was found

	// Copy the chosen run of each channel.
	var chans []string
	if err := stage.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			chans = append(chans, string(name))
			return nil
		})
	}); err != nil {
		return fmt.Errorf("history: salvage: staging: %w", err)
	}
	for _, ch := range chans {
		dst.mu.Lock()
		st, had := dst.chans[ch]
		dst.mu.Unlock()
		var from, n uint64
		err := stage.View(func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte(ch)).Cursor()
			if had && st.count > 0 {
				from = st.next
				for k, _ := c.Seek(seqKey(from)); len(k) == 8 && binary.BigEndian.Uint64(k) == from+n; k, _ = c.Next() {
					n++
				}
				return nil
			}
			// The longest run of consecutive Seqs (the later on a tie).
			var runStart, runLen, prev uint64
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				seq := binary.BigEndian.Uint64(k)
				if runLen > 0 && seq == prev+1 {
					runLen++
				} else {
					runStart, runLen = seq, 1
				}
				prev = seq
				if runLen >= n {
					from, n = runStart, runLen
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("history: salvage: staging: %w", err)
		}
		for n > 0 {
			batch = batch[:0]
			err := stage.View(func(tx *bolt.Tx) error {
				c := tx.Bucket([]byte(ch)).Cursor()
				for k, v := c.Seek(seqKey(from)); k != nil && len(batch) < salvageBatch && uint64(len(batch)) < n; k, v = c.Next() {
					r, ok := validRecord(k, v, ch)
					if !ok {
						return fmt.Errorf("staged record %x of %s unreadable", k, ch)
					}
					batch = append(batch, pendingFromRecord(&r, bytes.Clone(v)))
				}
				return nil
			})
			if err == nil && len(batch) == 0 {
				err = fmt.Errorf("staged records of %s ended early", ch)
			}
			if err != nil {
				return fmt.Errorf("history: salvage: staging: %w", err)
			}
			if err := dst.importBatch(batch); err != nil {
				return fmt.Errorf("history: salvage: writing: %w", err)
			}
			from += uint64(len(batch))
			n -= uint64(len(batch))
		}
	}
	return nil
}

// scanPages reads a bbolt file page by page, without bbolt, and calls
// emit for every leaf element (inline buckets included) whose key is an
// 8-byte Seq and whose value is a valid record with that Seq. Every length
// read from the file is checked; nothing in it is trusted.
func scanPages(path string, emit func(*Record, []byte) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	ps := int64(os.Getpagesize())
	if m, err := readMetas(f, size); err == nil && m.pageSize >= 512 && m.pageSize <= 1<<20 {
		ps = int64(m.pageSize)
	}
	const chunkSize = 4 << 20
	maxSpan := int64(4*MaxRecordSize) + ps
	r := &pageReader{f: f, size: size, chunk: make([]byte, 0, chunkSize)}
	for off := 2 * ps; off+boltPageHeader <= size; off += ps {
		hdr, err := r.read(off, boltPageHeader)
		if err != nil {
			return err
		}
		if binary.NativeEndian.Uint16(hdr[8:]) != 0x02 { // leaf
			continue
		}
		span := (int64(binary.NativeEndian.Uint32(hdr[12:])) + 1) * ps
		span = min(span, maxSpan, size-off)
		p, err := r.read(off, span)
		if err != nil {
			return err
		}
		if !parseLeaf(p, 0, emit) {
			return nil
		}
	}
	return nil
}

// parseLeaf walks the elements of one leaf page (p starts at its header).
func parseLeaf(p []byte, depth int, emit func(*Record, []byte) bool) bool {
	if len(p) < boltPageHeader || binary.NativeEndian.Uint16(p[8:]) != 0x02 {
		return true
	}
	ne := binary.NativeEndian
	count := int(ne.Uint16(p[10:]))
	for i := 0; i < count; i++ {
		eo := boltPageHeader + 16*i
		if eo+16 > len(p) {
			return true
		}
		flags := ne.Uint32(p[eo:])
		ks := uint64(eo) + uint64(ne.Uint32(p[eo+4:]))
		ke := ks + uint64(ne.Uint32(p[eo+8:]))
		ve := ke + uint64(ne.Uint32(p[eo+12:]))
		if ve > uint64(len(p)) {
			continue
		}
		k, v := p[ks:ke], p[ke:ve]
		if flags&0x01 != 0 { // a bucket: inline when its root page is 0
			if depth < 3 && len(v) >= 16+boltPageHeader && ne.Uint64(v) == 0 {
				if !parseLeaf(v[16:], depth+1, emit) {
					return false
				}
			}
			continue
		}
		if r, ok := validRecord(k, v, ""); ok {
			if !emit(&r, v) {
				return false
			}
		}
	}
	return true
}

// pageReader reads a file forward in large chunks.
type pageReader struct {
	f     *os.File
	size  int64
	off   int64
	chunk []byte
}

func (r *pageReader) read(off, n int64) ([]byte, error) {
	if off >= r.off && off+n <= r.off+int64(len(r.chunk)) {
		return r.chunk[off-r.off : off-r.off+n], nil
	}
	want := max(n, int64(cap(r.chunk)))
	want = min(want, r.size-off)
	if int64(cap(r.chunk)) < want {
		r.chunk = make([]byte, want)
	}
	r.chunk = r.chunk[:want]
	m, err := r.f.ReadAt(r.chunk, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	r.chunk, r.off = r.chunk[:m], off
	if int64(m) < n {
		return nil, io.ErrUnexpectedEOF
	}
	return r.chunk[:n], nil
}

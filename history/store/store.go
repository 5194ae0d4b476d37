// Package store is the durable store of the history recorder
// (history/recorder): every line of every mesh channel the recorder
// hears, in order, with the server's time and msgid, kept on disk across
// restarts and crashes. Readers of history never use it directly: they ask
// a recorder (history.Replay).
//
// A Store is one bbolt file (go.etcd.io/bbolt: a copy-on-write B+tree whose
// committed transactions a crash never tears). Records are appended to a
// buffer and committed in groups (every Options.CommitEvery or
// Options.CommitRecords records, whichever comes first); a crash loses at
// most the records appended since the last commit and never damages
// committed ones. Every record carries a CRC-32C; Open verifies all of
// them and keeps the intact prefix of a damaged channel. Reads see
// committed records only.
//
// docs/HISTORY-STORE.md describes the layout, the fsync policy and what a
// crash can lose.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrCorrupt marks damage found in a store: a record whose checksum or
	// structure is wrong, a gap in a channel's Seqs, a file bbolt cannot
	// read. Open returns it with a usable store when it could keep the
	// intact prefix of every channel (see Open), and without one when the
	// file itself cannot be used (see Salvage).
	ErrCorrupt = errors.New("history: store damaged")
	// ErrClosed is returned by a Store's methods after Close.
	ErrClosed = errors.New("history: store closed")
	// ErrLocked is returned by Open when another process (or another open
	// Store in this one) holds the file.
	ErrLocked = errors.New("history: store in use")
	// ErrVersion is returned by Open for a store written by a newer format.
	ErrVersion = errors.New("history: store format not supported")
)

// formatVersion is the store layout's version, kept in the meta bucket.
const formatVersion = 1

// Defaults of Options.
const (
	DefaultCommitEvery   = 100 * time.Millisecond
	DefaultCommitRecords = 1000
	DefaultLockTimeout   = 2 * time.Second
)

const (
	// maxPendingBytes bounds the encoded bytes waiting for a commit.
	maxPendingBytes = 32 << 20
	// trimBatch bounds the records one transaction removes for retention.
	trimBatch = 10000
	// scanChunk and scanChunkBytes bound what Scan decodes per read
	// transaction; fn runs outside the transaction.
	scanChunk      = 256
	scanChunkBytes = 1 << 20
)

// Options configure a Store. Only Path is required.
type Options struct {
	// Path is the store's file; its directory is created if needed.
	Path string
	// MaxAge is retention by age: records whose Time is older than
	// MaxAge are removed (0: no limit).
	MaxAge time.Duration
	// MaxBytes is retention by size: while the encoded records of the
	// whole store add up to more than MaxBytes, the oldest record (by
	// Time, across channels) is removed (0: no limit). The file is larger
	// than this: indexes, B+tree pages, and free pages (bbolt reuses them
	// but never shrinks the file).
	MaxBytes int64
	// CommitEvery is the group commit interval (default 100 ms): buffered
	// records are committed, and retention applied, at least this often.
	CommitEvery time.Duration
	// CommitRecords commits as soon as this many records are buffered
	// (default 1000). Append blocks while 4×CommitRecords records (or
	// 32 MiB) wait for a commit.
	CommitRecords int
	// NoSync skips fsync on commit: for benchmarks only. A crash of the
	// machine (not only of the process) can then damage the file.
	NoSync bool
	// LockTimeout bounds how long Open waits for another process to
	// release the file (default 2 s); then it returns ErrLocked.
	LockTimeout time.Duration
}

// Store is a durable store of channel records. Its methods are safe for
// concurrent use.
type Store struct {
	path       string
	opts       Options
	db         *bolt.DB
	maxPending int

	// commitMu serialises write transactions (commit, Trim, Close).
	// Committed channel state (chans) changes only under commitMu and mu.
	commitMu sync.Mutex

	mu           sync.Mutex
	cond         *sync.Cond
	pending      []pendingRec
	pendingBytes int
	next         map[string]uint64 // next Seq to assign, pending included
	chans        map[string]chanState
	closed       bool
	broken       error // a bbolt panic: the store refuses further work
	commitErr    error // the last commit's error, nil after a success
	attempts     uint64
	commits      uint64
	commitFails  uint64
	lastCommit   time.Time
	removed      int64

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// pendingRec is a record encoded and numbered, waiting for its commit.
type pendingRec struct {
	ch    string
	seq   uint64
	t     uint64 // indexTime of the record's Time
	msgid string
	val   []byte
}

// chanState is the committed state of one channel.
type chanState struct {
	first   uint64 // Seq of the first record kept; next when there is none
	next    uint64 // Seq the next record gets
	count   int64
	bytes   int64
	firstIx uint64 // index time of the first record kept
	lastIx  uint64 // index time of the last record (floor of the next)
}

// Bucket and key names. Per channel: "r:"+channel holds the records
// (8-byte big-endian Seq → encoded record), "m:"+channel the msgid index
// (msgid → Seq), "t:"+channel the time index (8-byte index time + 8-byte
// Seq → empty). "meta" holds "version" and "next:"+channel.
var (
	metaBucket = []byte("meta")
	versionKey = []byte("version")
)

const (
	recPrefix  = "r:"
	midPrefix  = "m:"
	timePrefix = "t:"
	nextPrefix = "next:"
)

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

func timeKey(dst []byte, ix, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, ix)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// lowerChannel lower-cases ASCII letters (IRC's ascii casemapping; the
// mesh's names are ASCII).
func lowerChannel(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func validChannel(ch string) error {
	if ch == "" || len(ch) > MaxChannelLen {
		return fmt.Errorf("%w: channel name %q is empty or longer than %d bytes", ErrInvalidRecord, ch, MaxChannelLen)
	}
	for i := 0; i < len(ch); i++ {
		if c := ch[i]; c <= ' ' || c == ',' || c == 0x7f {
			return fmt.Errorf("%w: channel name %q has a space, comma or control character", ErrInvalidRecord, ch)
		}
	}
	return nil
}

// Open opens (or creates) the store at o.Path and verifies it: the format
// version, then every record of every channel (checksum, bounds, Seqs
// contiguous) and the indexes.
//
// Damage is handled in two ways:
//
//   - A damaged record (bad checksum, wrong Seq, a gap): the channel keeps
//     its intact prefix — the records before the first damaged one — and
//     loses that record and every later one (with their index entries);
//     the next Append continues from the first dropped Seq. Open then
//     returns the usable store AND a non-nil error wrapping ErrCorrupt
//     (one *DamageError per damaged channel, joined), which names the
//     channel, the Seq and how many records were dropped. Callers log it
//     and continue: errors.Is(err, ErrCorrupt) with a non-nil store.
//   - A file that cannot be used at all (truncated, both meta pages
//     broken, B+tree pages that make bbolt panic): Open returns a nil store
//     and an error wrapping ErrCorrupt naming the file; move it aside and
//     recover what it holds with Salvage.
//
// Another process holding the file gives ErrLocked after o.LockTimeout.
func Open(o Options) (*Store, error) {
	if o.Path == "" {
		return nil, errors.New("history: Options.Path is empty")
	}
	if o.CommitEvery <= 0 {
		o.CommitEvery = DefaultCommitEvery
	}
	if o.CommitRecords <= 0 {
		o.CommitRecords = DefaultCommitRecords
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxAge < 0 || o.MaxBytes < 0 {
		return nil, errors.New("history: negative MaxAge or MaxBytes")
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if err := preflight(o.Path); err != nil {
		return nil, err
	}
	db, err := openBolt(o.Path, &bolt.Options{
		Timeout:      o.LockTimeout,
		NoSync:       o.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:       o.Path,
		opts:       o,
		db:         db,
		maxPending: 4 * o.CommitRecords,
		next:       make(map[string]uint64),
		chans:      make(map[string]chanState),
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	damage, err := s.verify()
	if err != nil {
		_ = guard("close", db.Close)
		return nil, err
	}
	for ch, st := range s.chans {
		s.next[ch] = st.next
	}
	s.wg.Add(1)
	go s.committer()
	return s, damage
}

// openBolt opens the bbolt file, turning its panics and errors into ours.
func openBolt(path string, opts *bolt.Options) (*bolt.DB, error) {
	var file *os.File
	opts.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, mode)
		file = f
		return f, err
	}
	var db *bolt.DB
	err := guard("open", func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	if err == nil {
		return db, nil
	}
	if db == nil && file != nil && errors.Is(err, ErrCorrupt) {
		// bbolt panicked half-way through Open: release the file (and
		// its lock) it left open.
		_ = file.Close()
	}
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is locked by another process (or another open Store) and was not released within %v", ErrLocked, path, opts.Timeout)
	case errors.Is(err, ErrCorrupt), errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return nil, unusable(path, err)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("history: %w", err)
	}
	// bbolt's other open errors ("file size too small", a page size it
	// cannot read) are about the file's contents.
	return nil, unusable(path, err)
}

// unusable is the error for a file that cannot be opened or repaired in
// place.
func unusable(path string, cause error) error {
	if !errors.Is(cause, ErrCorrupt) {
		cause = fmt.Errorf("%w: %w", ErrCorrupt, cause)
	}
	return fmt.Errorf("%w; the file %s cannot be used: move it aside (keep it for inspection) and recover its readable records into a new store with store.Salvage, or start an empty store", cause, path)
}

// guard runs fn, turning a panic — bbolt panics on some damaged pages,
// and with SetPanicOnFault a read of a page beyond the end of a truncated
// file — into an error wrapping ErrCorrupt.
func guard(what string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = &panicError{what: what, val: r}
		}
	}()
	return fn()
}

type panicError struct {
	what string
	val  any
}

func (e *panicError) Error() string {
	return fmt.Sprintf("%v: bbolt panicked during %s: %v", ErrCorrupt, e.what, e.val)
}
func (e *panicError) Unwrap() error { return ErrCorrupt }

// view and update run a bbolt transaction under guard; a panic makes the
// store refuse further work (its pages cannot be trusted).
func (s *Store) view(what string, fn func(*bolt.Tx) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	err := guard(what, func() error { return s.db.View(fn) })
	return s.checkErr(err)
}

func (s *Store) update(what string, fn func(*bolt.Tx) error) error {
	return s.checkErr(guard(what, func() error { return s.db.Update(fn) }))
}

func (s *Store) checkErr(err error) error {
	var pe *panicError
	if errors.As(err, &pe) {
		err = unusable(s.path, err)
		s.mu.Lock()
		if s.broken == nil {
			s.broken = err
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	} else if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	return err
}

// Append buffers records for the next commit. It assigns each record the
// next Seq of its channel and stores it in recs[i].Seq; Channel is
// lower-cased (ASCII), a zero Time is replaced by the current time, and
// the incoming Seq is ignored. The records become durable, and visible to
// readers, at the next commit (every CommitEvery or CommitRecords records,
// or Flush). Either every record of the call is accepted or none is (an
// invalid record gives an error wrapping ErrInvalidRecord). Append
// encodes the records before it returns: the caller may reuse them and
// their Tags maps.
//
// The buffer is bounded: while 4×CommitRecords records (or 32 MiB) wait,
// Append blocks until a commit makes room; if the commit fails it returns
// the commit's error instead (the records are not accepted). After Close
// it returns ErrClosed.
func (s *Store) Append(recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	// Validate and size everything before taking the lock.
	chans := make([]string, len(recs))
	for i := range recs {
		ch := lowerChannel(recs[i].Channel)
		if err := validChannel(ch); err != nil {
			return err
		}
		chans[i] = ch
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return ErrClosed
		}
		if s.broken != nil {
			return s.broken
		}
		if len(s.pending) == 0 || (len(s.pending)+len(recs) <= s.maxPending && s.pendingBytes < maxPendingBytes) {
			break
		}
		s.kickCommitter()
		attempts := s.attempts
		s.cond.Wait()
		if s.attempts != attempts && s.commitErr != nil && len(s.pending) > 0 {
			return fmt.Errorf("history: buffer full and the commit failed: %w", s.commitErr)
		}
	}

	// Number and encode; nothing is changed until every record encoded.
	var (
		arena []byte
		ends  = make([]int, len(recs))
		seqs  = make([]uint64, len(recs))
		extra map[string]uint64 // Seqs taken by earlier records of this call
	)
	for i := range recs {
		r := recs[i]
		r.Channel = chans[i]
		seq := s.nextSeq(r.Channel)
		if extra != nil {
			seq += extra[r.Channel]
		}
		if len(recs) > 1 {
			if extra == nil {
				extra = make(map[string]uint64)
			}
			extra[r.Channel]++
		}
		r.Seq = seq
		if r.Time.IsZero() {
			r.Time = now
		}
		var err error
		if arena, err = EncodeRecord(arena, &r); err != nil {
			return err
		}
		ends[i], seqs[i] = len(arena), seq
	}
	start := 0
	for i := range recs {
		t := recs[i].Time
		if t.IsZero() {
			t = now
		}
		s.pending = append(s.pending, pendingRec{
			ch:    chans[i],
			seq:   seqs[i],
			t:     indexTime(t),
			msgid: recs[i].MsgID,
			val:   arena[start:ends[i]:ends[i]],
		})
		s.pendingBytes += ends[i] - start
		start = ends[i]
		s.next[chans[i]] = seqs[i] + 1
		recs[i].Seq = seqs[i]
	}
	if len(s.pending) >= s.opts.CommitRecords || s.pendingBytes >= maxPendingBytes/4 {
		s.kickCommitter()
	}
	return nil
}

// nextSeq is the Seq the channel's next record gets. Called with mu held.
func (s *Store) nextSeq(ch string) uint64 {
	if n, ok := s.next[ch]; ok {
		return n
	}
	return 1
}

func (s *Store) kickCommitter() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// committer commits every CommitEvery, or sooner when kicked.
func (s *Store) committer() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.CommitEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		_ = s.commit()
	}
}

// Flush commits what is buffered now (with fsync, unless NoSync) and
// returns the commit's error.
func (s *Store) Flush() error {
	if err := s.usable(); err != nil {
		return err
	}
	return s.commit()
}

// Close commits what is buffered and closes the file. Later calls return
// nil; the Store's other methods return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	err := s.commit()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	cerr := guard("close", s.db.Close)
	if s.broken != nil {
		return s.broken
	}
	return errors.Join(err, cerr)
}

// commit writes the buffered records and applies retention, in one
// transaction.
func (s *Store) commit() error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.broken != nil {
		err := s.broken
		s.mu.Unlock()
		return err
	}
	n := len(s.pending)
	batch := s.pending[:n:n]
	s.mu.Unlock()

	now := time.Now()
	work := make(map[string]chanState)
	trim := s.needTrim(work, now)
	if n == 0 && !trim {
		return nil
	}
	var removed int
	err := s.update("commit", func(tx *bolt.Tx) error {
		if err := s.putRecords(tx, work, batch); err != nil {
			return err
		}
		var err error
		removed, _, err = s.trimTx(tx, work, now)
		return err
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if err == nil {
		for ch, st := range work {
			s.chans[ch] = st
		}
		bytes := 0
		for _, p := range batch {
			bytes += len(p.val)
		}
		m := copy(s.pending, s.pending[n:])
		clear(s.pending[m:])
		s.pending = s.pending[:m]
		s.pendingBytes -= bytes
		s.commits++
		s.lastCommit = time.Now()
		s.removed += int64(removed)
		s.commitErr = nil
	} else {
		s.commitFails++
		s.commitErr = err
	}
	s.cond.Broadcast()
	return err
}

// state returns the channel's state as the transaction in progress sees
// it: work (changed in it) over chans (committed). Called with commitMu
// held, so chans does not change.
func (s *Store) state(work map[string]chanState, ch string) (chanState, bool) {
	if st, ok := work[ch]; ok {
		return st, true
	}
	st, ok := s.chans[ch]
	return st, ok
}

type txBuckets struct{ rec, mid, tim *bolt.Bucket }

func channelBuckets(tx *bolt.Tx, ch string, create bool) (txBuckets, error) {
	var b txBuckets
	names := [3]string{recPrefix + ch, midPrefix + ch, timePrefix + ch}
	ptrs := [3]**bolt.Bucket{&b.rec, &b.mid, &b.tim}
	for i, name := range names {
		if create {
			bk, err := tx.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return b, fmt.Errorf("history: bucket %q: %w", name, err)
			}
			*ptrs[i] = bk
		} else {
			*ptrs[i] = tx.Bucket([]byte(name))
		}
	}
	// Records and time keys only ever grow at the end: fill pages.
	if b.rec != nil {
		b.rec.FillPercent = 1
	}
	if b.tim != nil {
		b.tim.FillPercent = 1
	}
	return b, nil
}

// putRecords writes a batch of numbered records and their index entries.
func (s *Store) putRecords(tx *bolt.Tx, work map[string]chanState, batch []pendingRec) error {
	if len(batch) == 0 {
		return nil
	}
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		return fmt.Errorf("%w: meta bucket missing", ErrCorrupt)
	}
	cache := make(map[string]txBuckets)
	// Index values must stay valid until the commit: one arena.
	seqArena := make([]byte, 0, 8*len(batch))
	var tkey [16]byte
	for i := range batch {
		p := &batch[i]
		bk, ok := cache[p.ch]
		if !ok {
			var err error
			if bk, err = channelBuckets(tx, p.ch, true); err != nil {
				return err
			}
			cache[p.ch] = bk
		}
		st, ok := s.state(work, p.ch)
		if !ok {
			st = chanState{first: p.seq, next: p.seq}
		}
		if p.seq != st.next {
			return fmt.Errorf("history: internal error: channel %s record %d does not follow %d", p.ch, p.seq, st.next-1)
		}
		seqArena = binary.BigEndian.AppendUint64(seqArena, p.seq)
		key := seqArena[len(seqArena)-8:]
		if err := bk.rec.Put(key, p.val); err != nil {
			return err
		}
		ix := max(p.t, st.lastIx)
		if err := bk.tim.Put(timeKey(tkey[:0], ix, p.seq), []byte{}); err != nil {
			return err
		}
		if p.msgid != "" {
			if err := bk.mid.Put([]byte(p.msgid), key); err != nil {
				return err
			}
		}
		if st.count == 0 {
			st.first, st.firstIx = p.seq, ix
		}
		st.count++
		st.bytes += int64(len(p.val))
		st.lastIx = ix
		st.next = p.seq + 1
		work[p.ch] = st
	}
	for ch := range cache {
		if err := meta.Put([]byte(nextPrefix+ch), seqKey(work[ch].next)); err != nil {
			return err
		}
	}
	return nil
}

// Stats is a snapshot of a Store's counters.
type Stats struct {
	// Records and Bytes are the committed records kept and the sum of
	// their encoded sizes (what MaxBytes bounds).
	Records int64
	Bytes   int64
	// Channels holds the same per channel.
	Channels map[string]ChannelStats
	// Pending counts records appended but not yet committed.
	Pending int
	// Commits counts successful commits since Open, CommitErrors failed
	// ones; LastCommit is when the last one succeeded.
	Commits      uint64
	CommitErrors uint64
	LastCommit   time.Time
	// Removed counts records removed by retention since Open.
	Removed int64
	// FileBytes is the size of the file on disk.
	FileBytes int64
}

// ChannelStats are one channel's counters.
type ChannelStats struct {
	Records int64
	Bytes   int64
	// First and Last are the Seqs of the first and last records kept
	// (Last < First when there are none).
	First, Last uint64
}

// Stats returns the Store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Channels:     make(map[string]ChannelStats, len(s.chans)),
		Pending:      len(s.pending),
		Commits:      s.commits,
		CommitErrors: s.commitFails,
		LastCommit:   s.lastCommit,
		Removed:      s.removed,
	}
	for ch, c := range s.chans {
		st.Records += c.count
		st.Bytes += c.bytes
		st.Channels[ch] = ChannelStats{Records: c.count, Bytes: c.bytes, First: c.first, Last: c.next - 1}
	}
	s.mu.Unlock()
	if fi, err := os.Stat(s.path); err == nil {
		st.FileBytes = fi.Size()
	}
	return st
}

// Path returns the store's file.
func (s *Store) Path() string { return s.path }

// usable returns why the store can do no more work (closed, or its pages
// are not to be trusted), or nil.
func (s *Store) usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	if s.closed {
		return ErrClosed
	}
	return nil
}

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

var baseTime = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

// testRecord is the record a test expects at (channel, seq): every field
// derived from them, so a reader can check content, not only count.
func testRecord(ch string, seq uint64) Record {
	id := fmt.Sprintf("%s-%d", strings.TrimPrefix(ch, "#"), seq)
	t := baseTime.Add(time.Duration(seq) * time.Millisecond)
	return Record{
		Seq:     seq,
		Channel: ch,
		Time:    t,
		MsgID:   id,
		Nick:    "orders-7f3k2",
		Tags:    map[string]string{"time": t.Format(time.RFC3339Nano), "msgid": id},
		Body:    "~m1 " + id + " " + strings.Repeat(string(rune('a'+seq%26)), 300),
	}
}

func testPath(t testing.TB) string { return filepath.Join(t.TempDir(), "history.db") }

func openT(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// appendN appends records first..last of ch, checking the assigned Seqs.
func appendN(t testing.TB, s *Store, ch string, first, last uint64) {
	t.Helper()
	for seq := first; seq <= last; seq++ {
		r := testRecord(ch, seq)
		r.Seq = 0
		if err := s.Append(r); err != nil {
			t.Fatalf("Append %s %d: %v", ch, seq, err)
		}
	}
}

// expectChannel verifies that ch holds exactly testRecord(ch, first..last).
func expectChannel(t testing.TB, s *Store, ch string, first, last uint64) {
	t.Helper()
	want := first
	err := s.Scan(ch, 0, func(r Record) bool {
		if w := testRecord(ch, want); !recordsEqual(r, w) {
			t.Fatalf("%s record %d:\n got %+v\nwant %+v", ch, want, r, w)
		}
		want++
		return true
	})
	if err != nil {
		t.Fatalf("Scan %s: %v", ch, err)
	}
	if want != last+1 {
		t.Fatalf("%s: scanned up to %d, want %d..%d", ch, want-1, first, last)
	}
	if last >= first {
		f, ok1 := s.First(ch)
		l, ok2 := s.Last(ch)
		if !ok1 || !ok2 || f.Seq != first || l.Seq != last {
			t.Fatalf("%s: First %d %v Last %d %v, want %d %d", ch, f.Seq, ok1, l.Seq, ok2, first, last)
		}
	} else if _, ok := s.Last(ch); ok {
		t.Fatalf("%s: Last found a record in an empty channel", ch)
	}
}

func TestRoundTripAndReopen(t *testing.T) {
	path := testPath(t)
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	chans := []string{"#ns.orders", "#ns.audit", "#ns._hb"}
	const n = 3000
	// Interleaved, one by one and in batches.
	for seq := uint64(1); seq <= n; seq += 10 {
		for _, ch := range chans {
			batch := make([]Record, 10)
			for i := range batch {
				batch[i] = testRecord(ch, seq+uint64(i))
				batch[i].Seq = 0
			}
			if err := s.Append(batch...); err != nil {
				t.Fatal(err)
			}
			for i := range batch {
				if batch[i].Seq != seq+uint64(i) {
					t.Fatalf("assigned Seq %d, want %d", batch[i].Seq, seq+uint64(i))
				}
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		expectChannel(t, s, ch, 1, n)
	}
	st := s.Stats()
	if st.Records != 3*n || st.Pending != 0 || st.Commits == 0 || st.Channels["#ns.audit"].Records != n || st.Bytes <= 3*n*300 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(testRecord("#a", 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := s.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = openT(t, Options{Path: path})
	if got := s.Channels(); strings.Join(got, ",") != "#ns._hb,#ns.audit,#ns.orders" {
		t.Fatalf("Channels %v", got)
	}
	for _, ch := range chans {
		expectChannel(t, s, ch, 1, n)
	}
	if st2 := s.Stats(); st2.Records != st.Records || st2.Bytes != st.Bytes {
		t.Fatalf("after reopen %+v, before %+v", st2, st)
	}
	// Seqs continue after a reopen.
	appendN(t, s, "#ns.orders", n+1, n+5)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	expectChannel(t, s, "#ns.orders", 1, n+5)
}

func TestSeqAssignment(t *testing.T) {
	s := openT(t, Options{Path: testPath(t)})
	recs := []Record{{Channel: "#A", Seq: 77}, {Channel: "#b"}, {Channel: "#a"}, {Channel: "#B"}, {Channel: "#a"}}
	if err := s.Append(recs...); err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{1, 1, 2, 2, 3} {
		if recs[i].Seq != want {
			t.Fatalf("record %d got Seq %d, want %d", i, recs[i].Seq, want)
		}
	}
	// All or nothing: an invalid record refuses the whole call.
	bad := []Record{{Channel: "#a"}, {Channel: "#a", Body: strings.Repeat("x", MaxRecordSize)}}
	if err := s.Append(bad...); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("oversized: %v", err)
	}
	for _, ch := range []string{"", "#a b", "#a,#b"} {
		if err := s.Append(Record{Channel: ch}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("channel %q: %v", ch, err)
		}
	}
	r := Record{Channel: "#a"}
	if err := s.Append(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	l, ok := s.Last("#A")
	if !ok || l.Seq != 4 || l.Channel != "#a" || time.Since(l.Time) > time.Minute {
		t.Fatalf("Last %+v %v (zero Time becomes the receive time)", l, ok)
	}
	if got := s.Channels(); len(got) != 2 || got[0] != "#a" || got[1] != "#b" {
		t.Fatalf("Channels %v", got)
	}
}

func TestScanAndSeek(t *testing.T) {
	s := openT(t, Options{Path: testPath(t)})
	const n = 1000
	appendN(t, s, "#a", 1, n)
	// Records are visible only once committed.
	if _, ok := s.Last("#a"); ok {
		// The committer may have run already (CommitRecords 1000).
		if st := s.Stats(); st.Pending != 0 {
			t.Fatal("uncommitted record visible")
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// Scan from the middle across chunk boundaries, stopping early.
	var got []uint64
	if err := s.Scan("#a", 500, func(r Record) bool {
		got = append(got, r.Seq)
		return r.Seq < 900
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 401 || got[0] != 500 || got[400] != 900 {
		t.Fatalf("Scan from 500: %d records %v..", len(got), got[:3])
	}
	// fn may use the store (it runs outside any transaction).
	calls := 0
	if err := s.Scan("#a", n-2, func(r Record) bool {
		calls++
		_ = s.Append(Record{Channel: "#other", Body: "x"})
		_, _ = s.Last("#a")
		return true
	}); err != nil || calls != 3 {
		t.Fatalf("Scan tail: %d calls, %v", calls, err)
	}
	if err := s.Scan("#none", 0, func(Record) bool { t.Fatal("record in unknown channel"); return false }); err != nil {
		t.Fatal(err)
	}

	at := func(seq uint64) time.Time { return testRecord("#a", seq).Time }
	for _, c := range []struct {
		t    time.Time
		want uint64
	}{
		{time.Time{}, 1},
		{baseTime, 1},
		{at(1), 1},
		{at(500), 500},
		{at(500).Add(-time.Microsecond), 500},
		{at(500).Add(time.Microsecond), 501},
		{at(n), n},
		{at(n).Add(time.Nanosecond), n + 1},
		{at(n).Add(time.Hour), n + 1},
	} {
		if got := s.SeekTime("#a", c.t); got != c.want {
			t.Errorf("SeekTime(%v) = %d, want %d", c.t, got, c.want)
		}
	}
	if got := s.SeekTime("#none", baseTime); got != 1 {
		t.Errorf("SeekTime on unknown channel = %d", got)
	}

	r := testRecord("#a", 321)
	if seq, exact := s.SeekOffset("#a", r.Offset()); seq != 321 || !exact {
		t.Errorf("SeekOffset exact = %d %v", seq, exact)
	}
	if seq, exact := s.SeekOffset("#a", envelope.OffsetAt(r.Time, "gone")); seq != 321 || exact {
		t.Errorf("SeekOffset by time = %d %v", seq, exact)
	}
	if seq, exact := s.SeekOffset("#a", envelope.Offset{}); seq != 1 || exact {
		t.Errorf("SeekOffset zero = %d %v", seq, exact)
	}
}

// A server clock stepping back: SeekTime never skips a record at or after
// the time asked.
func TestSeekTimeNonMonotonic(t *testing.T) {
	s := openT(t, Options{Path: testPath(t)})
	times := []int{10, 20, 15, 30, 25, 40} // seconds after baseTime
	for _, sec := range times {
		if err := s.Append(Record{Channel: "#a", Time: baseTime.Add(time.Duration(sec) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for q := 0; q <= 45; q++ {
		tq := baseTime.Add(time.Duration(q) * time.Second)
		got := s.SeekTime("#a", tq)
		for i, sec := range times {
			seq := uint64(i + 1)
			if sec >= q && seq < got {
				t.Fatalf("SeekTime(+%ds) = %d skips record %d at +%ds", q, got, seq, sec)
			}
		}
		if got > 1 && times[got-2] >= q {
			t.Fatalf("SeekTime(+%ds) = %d: record %d at +%ds could start", q, got, got-1, times[got-2])
		}
	}
}

func TestRetentionByAge(t *testing.T) {
	path := testPath(t)
	s := openT(t, Options{Path: path, MaxAge: time.Hour, CommitEvery: time.Hour})
	// Records one minute apart; "now" is after the last one. They lie in
	// the future of the real clock, which the committer's own retention
	// uses, so only Trim(now) removes them.
	baseTime := time.Now().Add(48 * time.Hour).Truncate(time.Minute)
	add := func(ch string, seq uint64) {
		r := testRecord(ch, seq)
		r.Time = baseTime.Add(time.Duration(seq) * time.Minute)
		r.Seq = 0
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	for seq := uint64(1); seq <= 120; seq++ {
		add("#a", seq)
		if seq <= 30 {
			add("#b", seq)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	now := baseTime.Add(120 * time.Minute)
	removed, err := s.Trim(now)
	if err != nil {
		t.Fatal(err)
	}
	// #a keeps minutes 60..120, #b nothing.
	if removed != 59+30 {
		t.Fatalf("removed %d, want %d", removed, 59+30)
	}
	f, _ := s.First("#a")
	if f.Seq != 60 {
		t.Fatalf("#a first %d", f.Seq)
	}
	if _, ok := s.First("#b"); ok {
		t.Fatal("#b not emptied")
	}
	if seq, exact := s.SeekOffset("#a", envelope.Offset{MsgID: testRecord("#a", 10).MsgID}); exact {
		t.Fatalf("removed record still found by msgid (%d)", seq)
	}
	if got := s.SeekTime("#a", baseTime); got != 60 {
		t.Fatalf("SeekTime before everything = %d", got)
	}
	st := s.Stats()
	if st.Removed != int64(removed) || st.Channels["#b"].Records != 0 || st.Channels["#a"].Records != 61 {
		t.Fatalf("stats %+v", st)
	}
	// Seqs go on after an emptied channel, across a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, Options{Path: path, MaxAge: time.Hour, CommitEvery: time.Hour})
	if got := s.SeekTime("#b", baseTime); got != 31 {
		t.Fatalf("SeekTime in emptied #b = %d, want 31", got)
	}
	r := Record{Channel: "#b", Time: now}
	if err := s.Append(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Last("#b"); l.Seq != 31 {
		t.Fatalf("#b continues at %d, want 31", l.Seq)
	}
	if removed, err := s.Trim(now); err != nil || removed != 0 {
		t.Fatalf("second Trim %d %v", removed, err)
	}
}

func TestRetentionByCommitter(t *testing.T) {
	s := openT(t, Options{Path: testPath(t), MaxAge: time.Hour, CommitEvery: 10 * time.Millisecond})
	for i := range 50 {
		age := 2 * time.Hour
		if i >= 40 {
			age = time.Minute
		}
		if err := s.Append(Record{Channel: "#a", Time: time.Now().Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	// The committer trims what it committed: wait for both (First can
	// move before the commit's stats do).
	waitFor(t, func() bool {
		f, _ := s.First("#a")
		st := s.Stats()
		return f.Seq == 41 && st.Records == 10 && st.Removed == 40
	})
}

func TestRetentionBySize(t *testing.T) {
	s := openT(t, Options{Path: testPath(t), CommitEvery: time.Hour})
	// Two channels interleaved in time: a at even ms, b at odd.
	for seq := uint64(1); seq <= 200; seq++ {
		for _, ch := range []string{"#a", "#b"} {
			r := testRecord(ch, seq)
			r.Seq = 0
			r.Time = baseTime.Add(time.Duration(2*seq) * time.Millisecond)
			if ch == "#b" {
				r.Time = r.Time.Add(time.Millisecond)
			}
			if err := s.Append(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	total := s.Stats().Bytes
	per := total / 400
	s.opts.MaxBytes = total / 2 // (set directly: same package)
	removed, err := s.Trim(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Bytes > total/2 || st.Bytes < total/2-2*per {
		t.Fatalf("bytes %d after trim, limit %d", st.Bytes, total/2)
	}
	fa, _ := s.First("#a")
	fb, _ := s.First("#b")
	// Oldest first across channels: both lost about the same.
	if d := int64(fa.Seq) - int64(fb.Seq); d < -1 || d > 1 || removed < 190 {
		t.Fatalf("first a %d b %d removed %d", fa.Seq, fb.Seq, removed)
	}
	// The committer applies it too.
	appendN(t, s, "#c", 1, 50)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Bytes > total/2 {
		t.Fatalf("commit did not apply MaxBytes: %d > %d", st.Bytes, total/2)
	}
}

func TestGroupCommit(t *testing.T) {
	t.Run("invisible until committed", func(t *testing.T) {
		s := openT(t, Options{Path: testPath(t), CommitEvery: time.Hour, CommitRecords: 1 << 20})
		appendN(t, s, "#a", 1, 10)
		if _, ok := s.Last("#a"); ok || s.Stats().Pending != 10 {
			t.Fatal("uncommitted records visible")
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if l, ok := s.Last("#a"); !ok || l.Seq != 10 {
			t.Fatal("Flush did not commit")
		}
	})
	t.Run("by count", func(t *testing.T) {
		s := openT(t, Options{Path: testPath(t), CommitEvery: time.Hour, CommitRecords: 10})
		appendN(t, s, "#a", 1, 10)
		waitFor(t, func() bool { l, _ := s.Last("#a"); return l.Seq == 10 })
	})
	t.Run("by time", func(t *testing.T) {
		s := openT(t, Options{Path: testPath(t), CommitEvery: 20 * time.Millisecond})
		appendN(t, s, "#a", 1, 3)
		waitFor(t, func() bool { l, _ := s.Last("#a"); return l.Seq == 3 })
	})
	t.Run("close flushes", func(t *testing.T) {
		path := testPath(t)
		s := openT(t, Options{Path: path, CommitEvery: time.Hour})
		appendN(t, s, "#a", 1, 7)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openT(t, Options{Path: path})
		expectChannel(t, s, "#a", 1, 7)
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5 s")
}

// The buffer is bounded: writers block until commits make room, with
// readers running at the same time.
func TestBoundedBuffer(t *testing.T) {
	s := openT(t, Options{Path: testPath(t), CommitEvery: time.Hour, CommitRecords: 10})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	maxPending := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			maxPending = max(maxPending, s.Stats().Pending)
			_ = s.Scan("#w0", 0, func(Record) bool { return true })
		}
	}()
	var wwg sync.WaitGroup
	for w := range 4 {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			ch := fmt.Sprintf("#w%d", w)
			for range 300 {
				if err := s.Append(Record{Channel: ch, Body: strings.Repeat("x", 400)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wwg.Wait()
	close(stop)
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if maxPending > 40 {
		t.Fatalf("pending reached %d, bound 40", maxPending)
	}
	for w := range 4 {
		if l, _ := s.Last(fmt.Sprintf("#w%d", w)); l.Seq != 300 {
			t.Fatalf("writer %d: last %d", w, l.Seq)
		}
	}
}

func TestLocked(t *testing.T) {
	path := testPath(t)
	openT(t, Options{Path: path})
	start := time.Now()
	s2, err := Open(Options{Path: path, LockTimeout: 200 * time.Millisecond})
	if s2 != nil || !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v %v", s2, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second Open took %v", d)
	}
	t.Log(err)
}

// benchRecord is a realistic recorded mesh line: ~400 bytes of IRC line
// (server-time and msgid tags, a bot nick, a "~m1" envelope body).
func benchRecord(i int) Record {
	t := baseTime.Add(time.Duration(i) * time.Millisecond)
	id := fmt.Sprintf("kmx7y3p5e2kq8g2n%010d", i)
	body := "~m1 " + strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 9)[:310] + fmt.Sprintf("%08d", i)
	return Record{
		Channel: fmt.Sprintf("#shop.orders.%d", i%8),
		Time:    t,
		MsgID:   id,
		Nick:    "orders-x7k2p1",
		Tags:    map[string]string{"time": t.Format("2006-01-02T15:04:05.000Z"), "msgid": id},
		Body:    body,
	}
}

// BenchmarkAppend measures recording throughput: one Append per line, as
// the recorder does, group-committed, with and without fsync.
func BenchmarkAppend(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		name := "fsync"
		if noSync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) {
			path := testPath(b)
			s, err := Open(Options{Path: path, NoSync: noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			recs := make([]Record, 1024)
			for i := range recs {
				recs[i] = benchRecord(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				r := recs[i%len(recs)]
				if err := s.Append(r); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkStoreSize writes 100,000 realistic lines and reports the file
// size per record and the encoded size per record.
func BenchmarkStoreSize(b *testing.B) {
	const n = 100000
	for range b.N {
		path := testPath(b)
		s, err := Open(Options{Path: path, NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if err := s.Append(benchRecord(i)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		s, err = Open(Options{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		open := time.Since(start)
		st := s.Stats()
		s.Close()
		b.ReportMetric(float64(fi.Size())/n, "file-bytes/record")
		b.ReportMetric(float64(st.Bytes)/n, "encoded-bytes/record")
		b.ReportMetric(float64(open.Milliseconds()), "open-verify-ms/100k")
	}
}

// BenchmarkScan measures reading a channel back in Seq order (what
// replay does).
func BenchmarkScan(b *testing.B) {
	const n = 100000
	s, err := Open(Options{Path: testPath(b), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		r := benchRecord(i)
		r.Channel = "#shop.orders"
		if err := s.Append(r); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	got := 0
	for range b.N {
		if err := s.Scan("#shop.orders", 0, func(Record) bool { got++; return true }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(got)/time.Since(start).Seconds(), "records/s")
}

func TestScanBack(t *testing.T) {
	s := openT(t, Options{Path: testPath(t)})
	const n = 1000
	appendN(t, s, "#a", 1, n)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	collect := func(before uint64, stop uint64) []uint64 {
		var got []uint64
		if err := s.ScanBack("#a", before, func(r Record) bool {
			if want := testRecord("#a", r.Seq); r.MsgID != want.MsgID {
				t.Fatalf("record %d holds %q", r.Seq, r.MsgID)
			}
			got = append(got, r.Seq)
			return r.Seq > stop
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// From the end across chunk boundaries, to the first record.
	got := collect(0, 0)
	if len(got) != n || got[0] != n || got[n-1] != 1 {
		t.Fatalf("ScanBack from the end: %d records, %v..%v", len(got), got[:3], got[len(got)-3:])
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]-1 {
			t.Fatalf("record %d after %d", got[i], got[i-1])
		}
	}
	// Before a record, stopping early.
	if got := collect(500, 100); len(got) != 400 || got[0] != 499 || got[399] != 100 {
		t.Fatalf("ScanBack before 500: %d records from %d", len(got), got[0])
	}
	// Before a Seq past the end: from the last record; before the first:
	// nothing; an unknown channel: nothing.
	if got := collect(5000, 999); len(got) != 2 || got[0] != n {
		t.Fatalf("ScanBack before 5000: %v", got)
	}
	if got := collect(1, 0); len(got) != 0 {
		t.Fatalf("ScanBack before 1: %v", got)
	}
	if err := s.ScanBack("#none", 0, func(Record) bool { t.Fatal("record in an unknown channel"); return false }); err != nil {
		t.Fatal(err)
	}
}

// TestReadRange: one page's read. It hands on the records of a range in
// order, stops where take says, and reports how far it is complete and
// the channel's last Seq, also across records removed by retention and
// past the end.
func TestReadRange(t *testing.T) {
	// Retention by age far longer than the records' age: only Trim with a
	// "now" of the test's choosing removes them.
	const maxAge = 100 * 365 * 24 * time.Hour
	s := openT(t, Options{Path: testPath(t), MaxAge: maxAge})
	appendN(t, s, "#a", 1, 100)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	read := func(from, to uint64, max int) (seqs []uint64, through, last uint64) {
		t.Helper()
		through, last, err := s.ReadRange("#A", from, to, func(r Record) bool {
			if len(seqs) == max {
				return false
			}
			if !recordsEqual(r, testRecord("#a", r.Seq)) {
				t.Fatalf("record %d: %+v", r.Seq, r)
			}
			seqs = append(seqs, r.Seq)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return seqs, through, last
	}
	cases := []struct {
		name          string
		from, to      uint64
		max           int
		first, n      uint64 // records read: first..first+n-1
		through, last uint64
	}{
		{"a range", 10, 19, 100, 10, 10, 19, 100},
		{"cut by take", 10, 19, 4, 10, 4, 13, 100},
		{"from 0 is from 1", 0, 5, 100, 1, 5, 5, 100},
		{"to the end and past it", 95, 200, 100, 95, 6, 100, 100},
		{"past the end", 150, 200, 100, 0, 0, 149, 100},
		{"nothing taken", 10, 19, 0, 0, 0, 9, 100},
	}
	for _, c := range cases {
		seqs, through, last := read(c.from, c.to, c.max)
		ok := uint64(len(seqs)) == c.n && through == c.through && last == c.last
		for i, seq := range seqs {
			ok = ok && seq == c.first+uint64(i)
		}
		if !ok {
			t.Errorf("%s: read %v through %d of %d; want %d from %d through %d of %d", c.name, seqs, through, last, c.n, c.first, c.through, c.last)
		}
	}
	// Records removed by retention: a range over the hole is complete
	// through its end.
	if removed, err := s.Trim(baseTime.Add(50*time.Millisecond + maxAge)); err != nil || removed != 49 {
		t.Fatalf("Trim removed %d, %v; want records 1..49", removed, err)
	}
	if seqs, through, last := read(1, 30, 100); len(seqs) != 0 || through != 30 || last != 100 {
		t.Errorf("a removed range: read %v through %d of %d; want nothing, through 30 of 100", seqs, through, last)
	}
	if seqs, through, _ := read(0, ^uint64(0), 100); len(seqs) != 51 || seqs[0] != 50 || through != 100 {
		t.Errorf("after retention: read %d records from %v through %d; want 50..100", len(seqs), seqs[:1], through)
	}
	// An unknown channel: nothing, last 0.
	if _, last, err := s.ReadRange("#none", 1, 10, func(Record) bool { t.Fatal("a record in an unknown channel"); return false }); err != nil || last != 0 {
		t.Errorf("an unknown channel: last %d, %v", last, err)
	}
}

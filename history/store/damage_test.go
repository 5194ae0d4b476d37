package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshbot/meshbot/envelope"
)

// What Open and Salvage do with damaged files (docs/HISTORY-STORE.md).

// damageValue rewrites one stored record value with bbolt directly.
func damageValue(t *testing.T, path, ch string, seq uint64, edit func([]byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(recPrefix + ch))
		v := bytes.Clone(b.Get(seqKey(seq)))
		return b.Put(seqKey(seq), edit(v))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptRecordKeepsPrefix(t *testing.T) {
	path := testPath(t)
	s := openT(t, Options{Path: path})
	appendN(t, s, "#a", 1, 100)
	appendN(t, s, "#b", 1, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damageValue(t, path, "#a", 50, func(v []byte) []byte { v[len(v)/2] ^= 1; return v })

	s, err := Open(Options{Path: path})
	if s == nil || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: store %v, err %v", s, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	t.Log(err)
	var de *DamageError
	if !errors.As(err, &de) || de.Channel != "#a" || de.Seq != 50 || de.Kept != 49 || de.Dropped != 51 {
		t.Fatalf("damage %+v", de)
	}
	if msg := err.Error(); !strings.Contains(msg, "#a") || !strings.Contains(msg, "record 50") || !strings.Contains(msg, "checksum") {
		t.Fatalf("message %q", msg)
	}
	expectChannel(t, s, "#a", 1, 49)
	expectChannel(t, s, "#b", 1, 100)
	if _, exact := s.SeekOffset("#a", testRecord("#a", 70).Offset()); exact {
		t.Fatal("dropped record still in the msgid index")
	}
	if got := s.SeekTime("#a", testRecord("#a", 70).Time); got != 50 {
		t.Fatalf("SeekTime past the kept prefix = %d, want 50", got)
	}
	// Appending continues at the first dropped Seq; a reopen is clean.
	appendN(t, s, "#a", 50, 60)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, Options{Path: path})
	expectChannel(t, s, "#a", 1, 60)
}

func TestCorruptOtherWays(t *testing.T) {
	cases := []struct {
		name string
		edit func([]byte) []byte
		seq  uint64
	}{
		{"truncated value", func(v []byte) []byte { return v[:len(v)-10] }, 10},
		{"wrong seq inside", func(v []byte) []byte {
			r, _ := DecodeRecord(v)
			r.Seq++
			b, _ := EncodeRecord(nil, &r)
			return b
		}, 10},
		{"first record", func(v []byte) []byte { v[0] = 9; return v }, 1},
		{"last record", func(v []byte) []byte { v[len(v)-1] ^= 0xff; return v }, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := testPath(t)
			s := openT(t, Options{Path: path})
			appendN(t, s, "#a", 1, 20)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			damageValue(t, path, "#a", c.seq, c.edit)
			s, err := Open(Options{Path: path})
			var de *DamageError
			if s == nil || !errors.As(err, &de) || de.Seq != c.seq || de.Dropped != int64(21-c.seq) {
				t.Fatalf("Open: %v %v", s, err)
			}
			defer s.Close()
			expectChannel(t, s, "#a", 1, c.seq-1)
		})
	}
	t.Run("gap", func(t *testing.T) {
		path := testPath(t)
		s := openT(t, Options{Path: path})
		appendN(t, s, "#a", 1, 20)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(recPrefix + "#a")).Delete(seqKey(8)) })
		db.Close()
		s, err = Open(Options{Path: path})
		var de *DamageError
		if s == nil || !errors.As(err, &de) || de.Seq != 8 || de.Kept != 7 || de.Dropped != 12 {
			t.Fatalf("Open: %v %+v", err, de)
		}
		defer s.Close()
		expectChannel(t, s, "#a", 1, 7)
	})
}

// Indexes are derived data: lost ones are rebuilt silently; a lost next
// Seq is reported (it is written with the records) and recomputed.
func TestIndexRepair(t *testing.T) {
	path := testPath(t)
	s := openT(t, Options{Path: path})
	appendN(t, s, "#a", 1, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(timePrefix + "#a")); err != nil {
			return err
		}
		// A stray msgid entry pointing past the records.
		return tx.Bucket([]byte(midPrefix+"#a")).Put([]byte("stray"), seqKey(999))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = Open(Options{Path: path})
	if err != nil {
		t.Fatalf("Open with indexes to repair: %v", err)
	}
	if got := s.SeekTime("#a", testRecord("#a", 150).Time); got != 150 {
		t.Fatalf("SeekTime after rebuild = %d", got)
	}
	if _, exact := s.SeekOffset("#a", envelope.Offset{MsgID: "stray"}); exact {
		t.Fatal("stray msgid entry kept")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, _ = bolt.Open(path, 0o600, nil)
	_ = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Delete([]byte(nextPrefix + "#a")) })
	db.Close()
	s, err = Open(Options{Path: path})
	var de *DamageError
	if s == nil || !errors.As(err, &de) || de.Dropped != 0 || de.Seq != 301 {
		t.Fatalf("Open with the next Seq lost: %v", err)
	}
	t.Log(err)
	defer s.Close()
	expectChannel(t, s, "#a", 1, 300)
	appendN(t, s, "#a", 301, 301)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.FileBytes == 0 || st.Channels["#a"].Last != 301 {
		t.Fatalf("stats %+v", st)
	}
}

// Damage written into the file itself, as a disk would: flip a byte inside
// a record's body where it lies in the file.
func TestCorruptRawFile(t *testing.T) {
	path := testPath(t)
	s := openT(t, Options{Path: path})
	appendN(t, s, "#a", 1, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	target := testRecord("#a", 123).Body
	i := bytes.Index(data, []byte(target))
	if i < 0 || bytes.Contains(data[i+1:], []byte(target)) {
		t.Fatalf("record body found at %d (want exactly once)", i)
	}
	data[i+len(target)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Path: path})
	var de *DamageError
	if s == nil || !errors.As(err, &de) || de.Channel != "#a" || de.Seq != 123 || de.Dropped != 178 {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	expectChannel(t, s, "#a", 1, 122)
}

func TestTruncatedFileAndSalvage(t *testing.T) {
	path := testPath(t)
	s := openT(t, Options{Path: path})
	chans := []string{"#a", "#b", "#c"}
	const n = 4000
	for _, ch := range chans {
		appendN(t, s, ch, 1, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{Path: path})
	if s2 != nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), "Salvage") {
		t.Fatalf("Open of a truncated file: %v %v", s2, err)
	}
	t.Log(err)

	out := filepath.Join(t.TempDir(), "salvaged.db")
	kept, err := Salvage(path, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("salvaged %d of %d records", kept, 3*n)
	if kept == 0 || kept > 3*n {
		t.Fatalf("salvaged %d", kept)
	}
	s3 := openT(t, Options{Path: out})
	total := 0
	for _, ch := range s3.Channels() {
		f, _ := s3.First(ch)
		l, _ := s3.Last(ch)
		expectChannel(t, s3, ch, f.Seq, l.Seq)
		total += int(l.Seq - f.Seq + 1)
	}
	if total != kept {
		t.Fatalf("store holds %d, Salvage said %d", total, kept)
	}
	if _, err := Salvage(path, out); err == nil {
		t.Fatal("Salvage overwrote an existing file")
	}
}

func TestSalvageIntactAndDamaged(t *testing.T) {
	path := testPath(t)
	s := openT(t, Options{Path: path})
	appendN(t, s, "#a", 1, 500)
	appendN(t, s, "#b", 1, 20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "copy.db")
	if kept, err := Salvage(path, out); err != nil || kept != 520 {
		t.Fatalf("Salvage of an intact store: %d %v", kept, err)
	}
	// A damaged record: pass 1 stops there; the raw pass may find an
	// older, intact copy of it in a freed page (bbolt is copy-on-write)
	// and continue. Either way every record kept is intact.
	damageValue(t, path, "#a", 200, func(v []byte) []byte { v[5] ^= 1; return v })
	out2 := filepath.Join(t.TempDir(), "copy2.db")
	kept, err := Salvage(path, out2)
	if err != nil || kept < 199+20 {
		t.Fatalf("Salvage of a damaged store: %d %v", kept, err)
	}
	t.Logf("kept %d of 520 records", kept)
	s2 := openT(t, Options{Path: out2})
	l, _ := s2.Last("#a")
	expectChannel(t, s2, "#a", 1, l.Seq)
	expectChannel(t, s2, "#b", 1, 20)
	// With the old copy gone too (overwritten in place), the prefix is
	// what is kept.
	path3 := testPath(t)
	s3 := openT(t, Options{Path: path3})
	appendN(t, s3, "#a", 1, 500)
	if err := s3.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path3)
	target := testRecord("#a", 200).Body
	if i := bytes.Index(data, []byte(target)); i < 0 || bytes.Count(data, []byte(target)) != 1 {
		t.Fatalf("record 200 found %d times", bytes.Count(data, []byte(target)))
	} else {
		data[i] ^= 1
	}
	if err := os.WriteFile(path3, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out3 := filepath.Join(t.TempDir(), "copy3.db")
	if kept, err := Salvage(path3, out3); err != nil || kept != 199 {
		t.Fatalf("Salvage with record 200 lost: %d %v", kept, err)
	}
}

func TestGarbageFiles(t *testing.T) {
	dir := t.TempDir()
	valid := filepath.Join(dir, "valid.db")
	s := openT(t, Options{Path: valid})
	appendN(t, s, "#a", 1, 200)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(valid)
	files := map[string][]byte{
		"random":       bytes.Repeat([]byte("garbage!"), 10000),
		"tiny":         []byte("x"),
		"zeroed metas": append(make([]byte, 2*4096), data[min(len(data), 2*4096):]...),
		"half page":    data[:4096+100],
	}
	// Pages scrambled after the metas: bbolt may panic or fault reading them.
	scrambled := bytes.Clone(data)
	for i := 2 * 4096; i < len(scrambled); i += 97 {
		scrambled[i] ^= 0x5a
	}
	files["scrambled"] = scrambled
	for name, b := range files {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".db")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{Path: p})
			if err == nil || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v", err)
			}
			if s != nil {
				s.Close()
			}
			t.Log(err)
			kept, err := Salvage(p, p+".salvaged")
			t.Logf("salvage: %d %v", kept, err)
		})
	}
}

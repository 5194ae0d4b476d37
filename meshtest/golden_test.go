package meshtest_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshbot/meshbot/meshtest"
)

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name, want, got, diff string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"changed line", "a\nb\nc\n", "a\nB\nc\n", "@@ -1 +1 @@\n  a\n- b\n+ B\n  c\n"},
		{"added at end", "a\n", "a\nb\n", "@@ -1 +1 @@\n  a\n+ b\n"},
		{"removed at start", "x\na\nb\n", "a\nb\n", "@@ -1 +1 @@\n- x\n  a\n  b\n"},
		{"no final newline", "a\n", "a", "@@ -1 +1 @@\n- a\n+ a (no newline at end)\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\nX\n3\n4\n5\n6\n7\nY\n9\n",
			"@@ -1 +1 @@\n  1\n- 2\n+ X\n  3\n  4\n@@ -6 +6 @@\n  6\n  7\n- 8\n+ Y\n  9\n"},
		{"moved line", "a\nb\nc\n", "b\nc\na\n", "@@ -1 +1 @@\n- a\n  b\n  c\n+ a\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := meshtest.Diff(tc.want, tc.got); got != tc.diff {
				t.Errorf("Diff:\n%s\nwant:\n%s", got, tc.diff)
			}
		})
	}
}

// fakeTB records what Golden reports.
type fakeTB struct {
	testing.TB
	name   string
	errors []string
	fatal  bool
	logs   []string
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return f.name }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	f.fatal = true
	panic(f)
}
func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fakeTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

// golden runs meshtest.Golden against a fake test named name.
func golden(name, path, got string) (f *fakeTB) {
	f = &fakeTB{name: name}
	defer func() {
		if r := recover(); r != nil && r != f {
			panic(r)
		}
	}()
	meshtest.Golden(f, path, got)
	return f
}

func TestGolden(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.golden")
	const want = "# header\n+0.100s publish a x\n+0.200s publish a y\n"
	if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	if f := golden("TestX", path, want); len(f.errors) > 0 {
		t.Errorf("equal text failed: %v", f.errors)
	}
	f := golden("TestX/sub_case", path, strings.Replace(want, "publish a y", "publish a z", 1))
	if len(f.errors) != 1 || f.fatal {
		t.Fatalf("a difference reports one error, not fatal: %+v", f)
	}
	for _, part := range []string{path, "(-want +got)", "- +0.200s publish a y", "+ +0.200s publish a z", "  +0.100s publish a x",
		"go test -run '^TestX$/^sub_case$' -update"} {
		if !strings.Contains(f.errors[0], part) {
			t.Errorf("the report lacks %q:\n%s", part, f.errors[0])
		}
	}
	f = golden("TestY", filepath.Join(dir, "missing.golden"), want)
	if !f.fatal || !strings.Contains(f.errors[0], "-run '^TestY$' -update") {
		t.Errorf("a missing golden file is fatal and says how to create it: %+v", f)
	}
}

// TestGoldenUpdate writes golden files with -update (set here), creating
// their directory. Not parallel: it sets the package's flag.
func TestGoldenUpdate(t *testing.T) {
	if err := flag.Set("update", "true"); err != nil {
		t.Fatal(err)
	}
	defer flag.Set("update", "false")
	if !meshtest.Updating() {
		t.Fatal("Updating is false after -update")
	}
	path := filepath.Join(t.TempDir(), "testdata", "new.golden")
	if f := golden("TestZ", path, "new text\n"); len(f.errors) > 0 {
		t.Fatalf("update failed: %v", f.errors)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "new text\n" {
		t.Fatalf("golden file after -update: %q, %v", b, err)
	}
}

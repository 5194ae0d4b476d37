package meshtest

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// update is the Go convention for golden files: `go test -update`
// rewrites them from what the tests produce. A test package that imports
// meshtest gets the flag; it must not define its own -update (read this
// one with flag.Lookup("update") instead).
var update = flag.Bool("update", false, "rewrite golden files (meshtest.Golden) with what the tests produce")

// Updating reports whether the tests run with -update.
func Updating() bool { return *update }

// Golden compares got with the golden file at path (by convention under
// the test's testdata/). When they differ the test fails with a readable
// diff (-want +got) and the command that accepts the change. With
// -update it writes got to path instead (creating its directory) and
// passes; a missing file fails the test with the same hint.
func Golden(t testing.TB, path string, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("meshtest: wrote %s", path)
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("meshtest: golden file %s does not exist; create it with: go test -run '%s' -update", path, runPattern(t.Name()))
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(want) == got {
		return
	}
	t.Errorf("meshtest: %s differs from what the test produced (-want +got):\n%s\nIf the change is intended, accept it with: go test -run '%s' -update",
		path, Diff(string(want), got), runPattern(t.Name()))
}

// runPattern is the -run pattern that selects exactly the test named name
// (subtests included: one anchored element per level).
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

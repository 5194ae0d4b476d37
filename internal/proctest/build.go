package proctest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds building the binary (a cold build cache compiles the
// dependencies too).
const buildTimeout = 5 * time.Minute

var built struct {
	once sync.Once
	dir  string // temporary directory holding the binary
	path string
	err  error
}

// Binary returns the path of the meshbot binary built for this test binary,
// building it on the first call. A failed build fails the test with the
// compiler's output.
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() { built.dir, built.path, built.err = build() })
	if built.err != nil {
		t.Fatalf("proctest: %v", built.err)
	}
	return built.path
}

// Main runs the tests of m, removes the binary built for them and exits.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		if err := os.RemoveAll(built.dir); err != nil {
			fmt.Fprintf(os.Stderr, "proctest: removing %s: %v\n", built.dir, err)
		}
	}
	os.Exit(code)
}

func build() (dir, path string, err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		if goroot := os.Getenv("GOROOT"); goroot != "" {
			goTool = filepath.Join(goroot, "bin", "go")
		} else {
			return "", "", fmt.Errorf("building meshbot: no go command: %w", err)
		}
	}
	dir, err = os.MkdirTemp("", "meshbot-proctest-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "meshbot")
	args := []string{"build", "-o", path}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/meshbot")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = root
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(dir)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (after %v)", ctx.Err(), time.Since(start).Round(time.Second))
		}
		return "", "", fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, out)
	}
	return dir, path, nil
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod in %s or above", wd)
		}
		dir = parent
	}
}

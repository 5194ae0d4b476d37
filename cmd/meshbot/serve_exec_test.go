package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// TestServeExec runs handlers written as programs: a shell one-liner
// answering requests once per request, a Python program speaking JSON
// lines, and an anycast worker whose failures are retried and
// dead-lettered, with its fencing token in its environment.
func TestServeExec(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "ex"}
	dir := t.TempDir()
	jobsLog := filepath.Join(dir, "jobs.log")

	upper := startCLI(t, environ, "serve", "--service", "upper", "--instance", "1", "--handle", "upper",
		"--exec", `tr a-z A-Z; test "$MESHBOT_KIND $MESHBOT_METHOD" = "request upper"`)
	py := startCLI(t, environ, "serve", "--service", "py", "--instance", "1", "--handle", "reverse", "--exec-mode", "lines",
		"--exec", `python3 -u -c '
import sys, json
for line in sys.stdin:
    c = json.loads(line)
    print(json.dumps({"id": c["id"], "result": c["payload"][::-1] + " via " + c["method"]}))
'`)
	worker := startCLI(t, environ, "serve", "--service", "worker", "--instance", "1", "--subscribe", "jobs", "--anycast",
		"--max-attempts", "2", "--retry-delay", "100ms",
		"--exec", `read p; echo "$p $MESHBOT_ATTEMPT $MESHBOT_TOKEN" >> `+jobsLog+`; [ "$p" != poison ] || { echo "cannot digest $p" >&2; exit 4; }`)
	dead := startCLI(t, environ, "tail", "jobs._dead")
	for _, b := range []*background{upper, py, worker} {
		waitFor(t, "serve", b.out, "ready ", 30*time.Second)
	}
	waitFor(t, "tail", dead.errbuf, "watching", 30*time.Second)

	if r := runCLI(t, environ, "", "req", "upper", "upper", "hello"); r.code != 0 || r.stdout != "HELLO\n" {
		t.Errorf("req upper: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, environ, "", "req", "py", "reverse", "stressed"); r.code != 0 || r.stdout != "desserts via reverse\n" {
		t.Errorf("req py: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	for _, p := range []string{"good", "poison"} {
		if r := runCLI(t, environ, "", "pub", "jobs", p); r.code != 0 {
			t.Fatalf("pub: %s", r.stderr)
		}
	}
	waitFor(t, "dead letters", dead.out, "DEAD LETTER", 30*time.Second)
	if !strings.Contains(dead.out.String(), "attempts=2") || !strings.Contains(dead.out.String(), "exit status 4: cannot digest poison") {
		t.Errorf("dead letter:\n%s", dead.out)
	}
	b, err := os.ReadFile(jobsLog)
	if err != nil {
		t.Fatal(err)
	}
	runs := string(b)
	if !regexp.MustCompile(`(?m)^good 1 [1-9]\d*$`).MatchString(runs) ||
		len(regexp.MustCompile(`(?m)^poison [12] [1-9]\d*$`).FindAllString(runs, -1)) != 2 {
		t.Errorf("the worker's runs (payload, attempt, token):\n%s", runs)
	}
}

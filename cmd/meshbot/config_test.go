package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// TestConfigContexts: the saved settings of a context connect a command;
// the file's default context applies without --context; the environment
// and flags win over the context; unknown contexts and settings are
// errors that say what exists.
func TestConfigContexts(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	writeFile(t, path, `context = "local"

[contexts.local]
server = "`+srv.Addr()+`"
namespace = "cfg"
require_signed = false
console_account = "alice,bob" # serve and history only: other commands pass it by

[contexts.nowhere]
server = "127.0.0.1:1"
`)
	check := func(environ map[string]string, args ...string) (checkReport, result) {
		t.Helper()
		r := runCLI(t, environ, "", append([]string{"check", "--json", "--settle", "0"}, args...)...)
		var rep checkReport
		if r.code == 0 {
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatal(err)
			}
		}
		return rep, r
	}
	environ := map[string]string{"MESHBOT_CONFIG": path}
	if rep, r := check(environ); r.code != 0 || rep.Server != srv.Addr() || rep.Namespace != "cfg" {
		t.Errorf("default context: exit %d, server %q, namespace %q\n%s", r.code, rep.Server, rep.Namespace, r.stderr)
	}
	if rep, r := check(environ, "--namespace", "flag"); r.code != 0 || rep.Namespace != "flag" {
		t.Errorf("the flag should win: exit %d, namespace %q\n%s", r.code, rep.Namespace, r.stderr)
	}
	if rep, r := check(map[string]string{"MESHBOT_CONFIG": path, "MESHBOT_NAMESPACE": "env"}); r.code != 0 || rep.Namespace != "env" {
		t.Errorf("the environment should win: exit %d, namespace %q\n%s", r.code, rep.Namespace, r.stderr)
	}
	if _, r := check(environ, "--context", "nowhere"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach the IRC server at 127.0.0.1:1") {
		t.Errorf("--context nowhere: exit %d\n%s", r.code, r.stderr)
	}
	if _, r := check(map[string]string{"MESHBOT_CONFIG": path, "MESHBOT_CONTEXT": "nowhere"}); r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("MESHBOT_CONTEXT=nowhere: exit %d\n%s", r.code, r.stderr)
	}
	if _, r := check(environ, "--context", "prod"); r.code != 1 || !strings.Contains(r.stderr, `no context "prod" in `+path+" (contexts: local, nowhere)") {
		t.Errorf("--context prod: exit %d\n%s", r.code, r.stderr)
	}
	writeFile(t, path, "[contexts.x]\nserver = \"127.0.0.1:1\"\nsurver = \"typo\"\n")
	if _, r := check(environ, "--context", "x"); r.code != 1 || !strings.Contains(r.stderr, `context "x": unknown setting "surver"`) {
		t.Errorf("a typo: exit %d\n%s", r.code, r.stderr)
	}
	writeFile(t, path, "context = \"local\"\n[contexts.local\n")
	if _, r := check(environ); r.code != 1 || !strings.Contains(r.stderr, "config "+path+": toml:") {
		t.Errorf("a broken file: exit %d\n%s", r.code, r.stderr)
	}
}

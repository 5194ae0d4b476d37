package main

import (
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// exampleArgs splits one example line of --help into arguments, the way
// a shell would for the simple lines examples use: words, '…' quoting, a
// trailing # comment. It returns nil for lines that are not a plain
// meshbot command (pipes, redirections, comments).
func exampleArgs(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "meshbot ") {
		return nil
	}
	var args []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == '#' && !inWord:
			i = len(line)
		case c == '|' || c == '<' || c == '>' || c == '$' || c == '&':
			return nil
		case c == ' ' || c == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args[1:]
}

// TestHelpExamplesWorkAgainstDemo runs the demo, then the one-shot
// examples of req and pub --help as given, against it: what a new user
// copies from the help works. (Examples that name another namespace,
// signing keys, or an error on purpose are left out.)
func TestHelpExamplesWorkAgainstDemo(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	demo := startCLI(t, nil, "demo", "--server", srv.Addr())
	waitFor(t, "demo", demo.out, "[audit-2] recorded order #1 ", 30*time.Second)
	// The demo's mesh is signed: a user first runs the export line it
	// prints.
	environ := demoKeyEnv(t, demo.out.String())
	environ["MESHBOT_SERVER"] = srv.Addr()
	ran := map[string]int{}
	for _, cmd := range []string{"req", "pub"} {
		help := runCLI(t, nil, "", cmd, "--help")
		for _, line := range strings.Split(help.stdout, "\n") {
			args := exampleArgs(line)
			if args == nil || strings.Contains(line, "--namespace") || strings.Contains(line, "key") ||
				strings.Contains(line, "exit 1") {
				continue
			}
			r := runCLI(t, environ, "", args...)
			if r.code != 0 {
				t.Errorf("%s: exit %d\n%s%s", strings.TrimSpace(line), r.code, r.stdout, r.stderr)
			}
			ran[cmd]++
			if cmd == "req" && !strings.Contains(r.stdout, `"total":`) {
				t.Errorf("%s: no price in %q", strings.TrimSpace(line), r.stdout)
			}
		}
	}
	if ran["req"] == 0 || ran["pub"] == 0 {
		t.Errorf("examples run: %v", ran)
	}
	// The error example fails as it says.
	r := runCLI(t, environ, "", "req", "pricing", "quote", `{"item":"unicorn","qty":1}`)
	if r.code != 1 || !strings.Contains(r.stderr, "with error 400: we do not sell \"unicorn\"") {
		t.Errorf("unicorn: exit %d, %q", r.code, r.stderr)
	}
}

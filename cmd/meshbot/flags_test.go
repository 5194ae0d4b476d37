package main

import (
	"github.com/meshbot/meshbot/internal/meshtest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func closedAddr(t *testing.T) string { return meshtest.ClosedAddr(t) }

// TestFlagEnvPrecedence: flag > environment > default, seen in which
// server a command tries to reach.
func TestFlagEnvPrecedence(t *testing.T) {
	t.Parallel()
	flagAddr, envAddr := closedAddr(t), closedAddr(t)
	for _, tc := range []struct {
		name    string
		environ map[string]string
		args    []string
		want    string
	}{
		{"flag", nil, []string{"pub", "t", "x", "--server", flagAddr}, flagAddr},
		{"env", map[string]string{"MESHBOT_SERVER": envAddr}, []string{"pub", "t", "x"}, envAddr},
		{"flag beats env", map[string]string{"MESHBOT_SERVER": envAddr}, []string{"pub", "t", "x", "--server", flagAddr}, flagAddr},
		{"empty env is unset", map[string]string{"MESHBOT_SERVER": ""}, []string{"req", "s", "m", "--server", flagAddr}, flagAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.environ, "", tc.args...)
			want := "meshbot: cannot reach the IRC server at " + tc.want + ": connection refused"
			if r.code != 1 || !strings.HasPrefix(r.stderr, want) {
				t.Errorf("exit %d, stderr %q; want 1, %q", r.code, r.stderr, want)
			}
		})
	}
}

// TestErrors: bad calls exit 1 with one clear message (and a pointer to
// --help for usage errors), never a stack trace.
func TestErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badKeys := filepath.Join(dir, "bad.keys")
	writeFile(t, badKeys, "# comment\nhmac k1 c2hvcnQ\n")
	privRing := filepath.Join(dir, "priv.keys")
	writeFile(t, privRing, "ed25519-private k1 orders AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
	for _, tc := range []struct {
		name    string
		environ map[string]string
		args    []string
		want    string
		usage   bool
	}{
		{"unknown command", nil, []string{"publish"}, `meshbot: unknown command "publish" for "meshbot"`, true},
		{"unknown flag", nil, []string{"pub", "t", "x", "--bogus"}, "meshbot: unknown flag: --bogus", true},
		{"missing args", nil, []string{"req", "pricing"}, "meshbot: req: missing SERVICE METHOD [PAYLOAD|-]", true},
		{"too many args", nil, []string{"pub", "a", "b", "c"}, "meshbot: pub: too many arguments (3); want TOPIC [PAYLOAD|-]", true},
		{"bad log level", nil, []string{"decode", "x", "--log-level", "loud"}, `meshbot: --log-level "loud": want debug, info, warn or error`, true},
		{"bad env value", map[string]string{"MESHBOT_TLS": "maybe"}, []string{"pub", "t", "x"}, `meshbot: MESHBOT_TLS="maybe" (for --tls): `, false},
		{"bad server", nil, []string{"pub", "t", "x", "--server", "localhost"}, `meshbot: --server "localhost": want host:port`, true},
		{"reserved topic", nil, []string{"pub", "_hb", "x"}, "meshbot: mesh: invalid topic: topic \"_hb\": segments starting with '_' are reserved", false},
		{"half sasl", map[string]string{"MESHBOT_SASL_USER": "u"}, []string{"pub", "t", "x"}, "meshbot: SASL needs both --sasl-user and --sasl-pass", true},
		{"require-signed without keys", nil, []string{"tail", "t", "--require-signed"}, "meshbot: --require-signed needs keys", true},
		{"short hmac key", nil, []string{"decode", "x", "--keyring", badKeys}, "bad.keys:2: hmac key k1 is 5 bytes, want at least 16", false},
		{"private key in keyring", nil, []string{"decode", "x", "--keyring", privRing}, "priv.keys:1: a keyring holds public keys", false},
		{"missing key file", nil, []string{"pub", "t", "x", "--hmac-key-file", filepath.Join(dir, "nope")}, "meshbot: key file: open ", false},
		{"two signing keys", nil, []string{"pub", "t", "x", "--hmac-key-file", "a", "--ed25519-key-file", "b"}, "exclude each other", true},
		{"other namespace channel", nil, []string{"tail", "#other.t"}, `channel #other.t is not in namespace "mesh"`, true},
		{"demo server and ircd", nil, []string{"demo", "--server", "127.0.0.1:1", "--ircd", "ngircd"}, "meshbot: demo: --server uses a running server", true},
		{"demo bad ircd", nil, []string{"demo", "--ircd", "irc2"}, `unknown IRC server "irc2"`, true},
		{"keygen without out", nil, []string{"keygen", "hmac"}, "meshbot: keygen: --out FILE is required", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.environ, "", tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tc.want)
			}
			if hint := strings.Contains(r.stderr, "--help' for usage."); hint != tc.usage {
				t.Errorf("usage hint shown: %v, want %v: %q", hint, tc.usage, r.stderr)
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Count(r.stderr, "\n") > 2 {
				t.Errorf("stderr is not one clear message: %q", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout: %q", r.stdout)
			}
		})
	}
}

// TestHelp: every command has a help text with examples, and names the
// environment variables of its flags.
func TestHelp(t *testing.T) {
	t.Parallel()
	root, _ := newRoot(env{})
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" || sub.Parent().Name() == "completion" {
				continue
			}
			r := runCLI(t, nil, "", append(strings.Fields(sub.CommandPath())[1:], "--help")...)
			if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "Usage:") {
				t.Errorf("%s --help: exit %d, no examples or usage:\n%s", sub.CommandPath(), r.code, r.stdout)
			}
			walk(sub)
		}
	}
	walk(root)
	r := runCLI(t, nil, "", "tail", "--help")
	for _, want := range []string{"[$MESHBOT_SERVER]", "[$MESHBOT_NAMESPACE]", "[$MESHBOT_SASL_PASS]", "[$MESHBOT_KEYRING]", "--raw", "--json", "--metrics-addr", `(default "127.0.0.1:6667")`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("tail --help lacks %q", want)
		}
	}
	r = runCLI(t, nil, "", "demo", "--help")
	if strings.Contains(r.stdout, "[$MESHBOT_SERVER]") || !strings.Contains(r.stdout, "[$MESH_IRCD]") {
		t.Errorf("demo --help: --server must not fall back to MESHBOT_SERVER, --ircd to MESH_IRCD:\n%s", r.stdout)
	}
}

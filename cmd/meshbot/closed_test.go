package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// TestJoinRefusedCLI: a channel with a key the tool does not have makes
// pub and tail fail at once with the server's reason, never hang; with
// the key (--channel-key) they work.
func TestJoinRefusedCLI(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	person := dialIRC(t, srv.Addr(), "keeper")
	person.send("JOIN #jk.orders")
	person.expect("366")
	person.send("MODE #jk.orders +k door")
	person.expect("MODE")
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "jk", "MESHBOT_ALLOW_UNSIGNED": "1"}
	for _, args := range [][]string{{"pub", "orders", "hello"}, {"tail", "orders"}} {
		start := time.Now()
		r := runCLI(t, environ, "", args...)
		if r.code == 0 || !strings.Contains(r.stderr, "cannot join #jk.orders: bad channel key (+k)") {
			t.Errorf("%s: exit %d, stderr %q", args[0], r.code, r.stderr)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s failed after %v, not at once", args[0], d)
		}
	}
	// A mesh whose channels are keyed (the tools set the key up and use it).
	keyed := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "jk2", "MESHBOT_ALLOW_UNSIGNED": "1", "MESHBOT_CHANNEL_KEY": "door2"}
	tail := startCLI(t, keyed, "tail", "orders")
	waitFor(t, "tail", tail.errbuf, "watching", 20*time.Second)
	if r := runCLI(t, keyed, "", "pub", "orders", "through the door"); r.code != 0 {
		t.Fatalf("pub with the key: exit %d %s", r.code, r.stderr)
	}
	waitFor(t, "tail", tail.out, "through the door", 10*time.Second)
	outsider := dialIRC(t, srv.Addr(), "outsider")
	outsider.send("JOIN #jk2.orders")
	outsider.expect("475")
}

// TestEncryptedCLI: keys made by keygen; a publisher and a tail with the
// mesh's keys see the payload, an IRC client and the recorder-less line
// only "event+encrypted"; a tail without the payload key refuses it.
// serve without keys warns that the mesh is unsigned, unless
// --allow-unsigned.
func TestEncryptedCLI(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"keygen", "hmac", "--out", filepath.Join(dir, "mesh.hmac")},
		{"keygen", "payload", "--out", filepath.Join(dir, "mesh.payload")},
	} {
		if r := runCLI(t, nil, "", args...); r.code != 0 {
			t.Fatalf("%v: exit %d %s", args, r.code, r.stderr)
		}
	}
	r := runCLI(t, nil, "", "keygen", "x25519", "--service", "meshbot", "--out", filepath.Join(dir, "meshbot.x25519"))
	if r.code != 0 || !strings.HasPrefix(r.stdout, "x25519 meshbot-x") {
		t.Fatalf("keygen x25519: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	// The keyring of the mesh: what verifies, opens, and the DM keys (tools
	// that only read, like tail, take every key from it).
	ring := r.stdout
	for _, f := range []string{"mesh.hmac", "mesh.payload"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		ring += string(b)
	}
	if err := os.WriteFile(filepath.Join(dir, "mesh.keyring"), []byte(ring), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "enc",
		"MESHBOT_HMAC_KEY_FILE": filepath.Join(dir, "mesh.hmac"), "MESHBOT_PAYLOAD_KEY_FILE": filepath.Join(dir, "mesh.payload"),
		"MESHBOT_KEYRING": filepath.Join(dir, "mesh.keyring"), "MESHBOT_REQUIRE_ENCRYPTED": "1"}
	tail := startCLI(t, keys, "tail", "orders")
	waitFor(t, "tail", tail.errbuf, "watching", 20*time.Second)
	person := dialIRC(t, srv.Addr(), "watcher")
	person.send("JOIN #enc.orders")
	person.expect("366")
	if r := runCLI(t, keys, "", "pub", "orders", "secret-4111"); r.code != 0 {
		t.Fatalf("pub: exit %d %s", r.code, r.stderr)
	}
	waitFor(t, "tail", tail.out, "secret-4111", 10*time.Second)
	// Without the payload key, a tail refuses what it cannot open.
	blind := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "enc", "MESHBOT_KEYRING": filepath.Join(dir, "mesh.hmac")}
	btail := startCLI(t, blind, "tail", "orders")
	waitFor(t, "tail without the key", btail.errbuf, "watching", 20*time.Second)
	if r := runCLI(t, keys, "", "pub", "orders", "secret-4112"); r.code != 0 {
		t.Fatalf("pub: exit %d %s", r.code, r.stderr)
	}
	waitFor(t, "tail without the key", btail.out, "REJECTED unknown-key", 10*time.Second)
	if strings.Contains(btail.out.String(), "secret-4112") {
		t.Errorf("a tail without the payload key showed it:\n%s", btail.out)
	}
	line := person.expect("PRIVMSG #enc.orders")
	if !strings.Contains(line, "event+encrypted orders") || strings.Contains(line, "secret-4111") {
		t.Errorf("an IRC client saw %q", line)
	}
	// serve warns when it runs unsigned, not when told it is intended.
	plain := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "plain"}
	s := startCLI(t, plain, "serve", "--service", "open")
	waitFor(t, "serve", s.errbuf, "runs unsigned", 20*time.Second)
	s2 := startCLI(t, plain, "serve", "--service", "quiet", "--allow-unsigned")
	waitFor(t, "serve", s2.out, "ready", 20*time.Second)
	if strings.Contains(s2.errbuf.String(), "unsigned") {
		t.Errorf("serve --allow-unsigned warned:\n%s", s2.errbuf)
	}
}

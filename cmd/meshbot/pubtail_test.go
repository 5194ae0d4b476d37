package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// TestPubTail publishes with `pub` and watches with three `tail`s (text,
// JSON, raw) on a real server, with a person chatting in the channel and a
// garbage mesh line, then decodes what `tail --raw` recorded.
func TestPubTail(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "pt"}

	text := startCLI(t, environ, "tail", "orders.created", "_hb", "--metrics-addr", "127.0.0.1:0")
	jsonTail := startCLI(t, environ, "tail", "#pt.orders.created", "--json")
	raw := startCLI(t, environ, "tail", "orders.created", "--raw")
	for _, b := range []*background{text, jsonTail, raw} {
		waitFor(t, "tail stderr", b.errbuf, "watching", 20*time.Second)
	}
	if !strings.Contains(text.errbuf.String(), "#pt.orders.created #pt._hb") {
		t.Errorf("tail header does not name the channels:\n%s", text.errbuf)
	}

	// pub: payload as an argument, then binary from stdin.
	r := runCLI(t, environ, "", "pub", "orders.created", `{"order":1}`, "--content-type", "application/json")
	if r.code != 0 {
		t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
	}
	ack := regexp.MustCompile(`^published orders.created id=([0-9a-f]{32}) msgid=\S+ lines=1\n$`)
	m := ack.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("pub printed %q", r.stdout)
	}
	short := m[1][:8]
	if r := runCLI(t, environ, "\x00\x01\x02\xff", "pub", "orders.created", "-", "--count", "2"); r.code != 0 || strings.Count(r.stdout, "published") != 2 {
		t.Fatalf("pub from stdin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A person, and a line that claims to be a mesh line but is not.
	person := dialIRC(t, srv.Addr(), "alice")
	person.send("JOIN #pt.orders.created")
	person.expect("JOIN")
	person.send("PRIVMSG #pt.orders.created :hello \x02bots\x02")
	person.send("PRIVMSG #pt.orders.created :~m1 event orders.created 1a2b3c4d not*base64")

	eventLine := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  orders.created +meshbot-[a-z0-9]+ +event +` + short + `  \{"order":1\}  ct=application/json$`)
	waitFor(t, "tail", text.out, "REJECTED", 10*time.Second)
	out := text.out.String()
	for _, want := range []*regexp.Regexp{
		eventLine,
		regexp.MustCompile(`(?m) event +[0-9a-f]{8}  hex:000102ff \(4 B\)$`),
		regexp.MustCompile(`(?m)  orders.created +<alice> hello bots$`),
		regexp.MustCompile(`(?m)  orders.created +alice +REJECTED malformed: .*not base64url.*\[~m1 event orders.created 1a2b3c4d\]$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("tail output does not match %s:\n%s", want, out)
		}
	}

	// Metrics of the tail's node.
	addr := regexp.MustCompile(`metrics at (http://\S+/metrics)`).FindStringSubmatch(text.errbuf.String())
	if addr == nil {
		t.Fatalf("no metrics address in:\n%s", text.errbuf)
	}
	resp, err := http.Get(addr[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^meshbot_lines_in_total\{.*service="meshbot"\} [1-9]`).Match(body) ||
		!strings.Contains(string(body), `meshbot_rejected_total{`) {
		t.Errorf("metrics lack the node's counters:\n%s", body)
	}

	// JSON: one object per line.
	waitFor(t, "tail --json", jsonTail.out, `"type":"rejected"`, 10*time.Second)
	var first lineView
	if err := json.Unmarshal([]byte(strings.SplitN(jsonTail.out.String(), "\n", 2)[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Type != typeMesh || first.Envelope == nil || first.Envelope.Short != short ||
		first.Envelope.PayloadText == nil || *first.Envelope.PayloadText != `{"order":1}` || first.Envelope.ContentType != "application/json" {
		t.Errorf("first JSON line: %+v", first)
	}

	// Raw: what decode reads back.
	waitFor(t, "tail --raw", raw.out, "not*base64", 10*time.Second)
	r = runCLI(t, nil, raw.out.String(), "decode", "-")
	if r.code != 1 { // the garbage line is rejected
		t.Errorf("decode of the raw log: exit %d, want 1", r.code)
	}
	if !regexp.MustCompile(`line 1: mesh line \((tag|body) carrier\) from meshbot-`).MatchString(r.stdout) {
		t.Errorf("decode output lacks the first event:\n%s", r.stdout)
	}
	for _, want := range []string{
		"id            " + m[1],
		`payload       11 B, text: {"order":1}`,
		"not a mesh line from alice to #pt.orders.created",
		"rejected mesh line (malformed) from alice",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("decode output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Each line once, however many events it holds (pub may send its two
	// events from stdin in one batch line): three envelopes.
	if n := strings.Count(r.stdout, ": mesh line ("); n != 3 {
		t.Errorf("decode of the raw log: %d envelopes, want 3:\n%s", n, r.stdout)
	}
	if want := "1 of " + strconv.Itoa(strings.Count(raw.out.String(), "\n")) + " lines rejected"; !strings.Contains(r.stderr, want) {
		t.Errorf("decode stderr: %q, want %q", r.stderr, want)
	}

	// Ctrl-C: a clean stop with a summary.
	if code := text.stop(t); code != 0 {
		t.Errorf("tail exit %d after the interrupt\n%s", code, text.errbuf)
	}
	// (_hb may carry heartbeats too.)
	if want := regexp.MustCompile(`\d+ lines: \d+ envelopes, 0 fragments, 1 rejected, 1 human`); !want.MatchString(text.errbuf.String()) {
		t.Errorf("tail summary: want %q in\n%s", want, text.errbuf)
	}
}

// TestPubTailSigned signs with keys made by keygen: a tail without the key
// rejects the envelope, one with the keyring shows it signed.
func TestPubTailSigned(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	dir := t.TempDir()
	keyring := filepath.Join(dir, "mesh.keyring")
	r := runCLI(t, nil, "", "keygen", "ed25519", "--service", "orders", "--key-id", "k1", "--out", filepath.Join(dir, "orders.key"))
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ed25519 k1 orders ") {
		t.Fatalf("keygen: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, keyring, r.stdout)

	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "sig"}
	trusting := startCLI(t, environ, "tail", "orders.created", "--keyring", keyring, "--require-signed")
	blind := startCLI(t, environ, "tail", "orders.created")
	waitFor(t, "tail", trusting.errbuf, "watching", 20*time.Second)
	waitFor(t, "tail", blind.errbuf, "watching", 20*time.Second)

	// The key names the service: no --service needed.
	r = runCLI(t, environ, "", "pub", "orders.created", "signed", "--ed25519-key-file", filepath.Join(dir, "orders.key"))
	if r.code != 0 {
		t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, environ, "", "pub", "orders.created", "unsigned")
	if r.code != 0 {
		t.Fatalf("pub: exit %d\n%s", r.code, r.stderr)
	}
	waitFor(t, "trusting tail", trusting.out, "REJECTED unsigned", 10*time.Second)
	if !regexp.MustCompile(`(?m) orders-[a-z0-9]+ +event +[0-9a-f]{8}  signed  signed=ed25519:k1$`).MatchString(trusting.out.String()) {
		t.Errorf("trusting tail:\n%s", trusting.out)
	}
	waitFor(t, "blind tail", blind.out, "unsigned", 10*time.Second)
	if !strings.Contains(blind.out.String(), "REJECTED unknown-key") {
		t.Errorf("tail without keys should reject the signed envelope:\n%s", blind.out)
	}

	r = runCLI(t, environ, "", "pub", "orders.created", "x", "--ed25519-key-file", filepath.Join(dir, "orders.key"), "--service", "billing")
	if r.code != 1 || !strings.Contains(r.stderr, `signs for service "orders", not "billing"`) {
		t.Errorf("pub with another service's key: exit %d, %q", r.code, r.stderr)
	}
}

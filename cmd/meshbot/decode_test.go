package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
)

var testHMACKey = []byte("0123456789abcdef0123456789abcdef")

// testEnvelope is a claim of group "workers" with most fields set, signed
// with HMAC.
func testEnvelope(t *testing.T, payload []byte) (*envelope.Envelope, []byte) {
	t.Helper()
	e := envelope.New(envelope.KindClaim, envelope.Sender{Service: "audit", Instance: "a1", Incarnation: 7}, "workers", payload, time.Unix(1700000000, 5))
	e.Correlation = envelope.NewID()
	e.Epoch, e.LeaseMillis, e.Attempt = 3, 30000, 2
	e.Headers.ContentType = "text/plain"
	sealed, err := envelope.Seal(e, envelope.NewHMACSigner("mesh-1", testHMACKey))
	if err != nil {
		t.Fatal(err)
	}
	return e, sealed
}

func rawLine(t *testing.T, l envelope.Line) string {
	t.Helper()
	tags := map[string]string{"msgid": "m1", "time": "2026-01-02T03:04:05.000Z"}
	for k, v := range l.Tags {
		tags[k] = v
	}
	m := ircmsg.MakeMessage(tags, "audit-a1!audit@127.0.0.1", "PRIVMSG", "#mesh.orders.created", l.Body)
	line, err := m.Line()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(line, "\r\n")
}

func TestDecode(t *testing.T) {
	t.Parallel()
	event := fixedID(t, "4776bf3e")
	items := itemsPayload(t, []claims.Item{{Event: event, Epoch: 3, Attempt: 2}})
	e, sealed := testEnvelope(t, items)
	tagLines, err := envelope.EncodeLines(e, sealed, envelope.CarrierTag, envelope.Limits{BodyBytes: 400})
	if err != nil || len(tagLines) != 1 {
		t.Fatalf("tag lines: %v %v", tagLines, err)
	}
	bodyLines, err := envelope.EncodeLines(e, sealed, envelope.CarrierBody, envelope.Limits{BodyBytes: 400})
	if err != nil || len(bodyLines) != 1 {
		t.Fatalf("body lines: %v %v", bodyLines, err)
	}
	dir := t.TempDir()
	goodRing := filepath.Join(dir, "good")
	writeFile(t, goodRing, "# the mesh key\nhmac mesh-1 "+base64.StdEncoding.EncodeToString(testHMACKey)+"\n")
	badRing := filepath.Join(dir, "bad")
	writeFile(t, badRing, "hmac mesh-1 "+base64.RawURLEncoding.EncodeToString([]byte("another key of 32 bytes........."))+"\n")

	fields := []string{
		"  version       1\n",
		"  kind          claim (4)\n",
		"  id            " + e.ID.String() + " (short " + e.ID.Short() + ")\n",
		"  time          2023-11-14T22:13:20.000000005Z\n",
		"  sender        service audit, instance a1, incarnation 7\n",
		"  topic         workers (the anycast group)\n",
		"  correlation   " + e.Correlation.String() + "\n",
		"  payload       21 B, hex: " + hex.EncodeToString(items) + "\n",
		"  items         1 event (group workers)\n",
		"                  " + event.String() + "  epoch 3, attempt 2, takeover\n",
		"  content-type  text/plain\n",
		"  traceparent   -\n",
		"  epoch         3\n",
		"  lease         30s\n",
		"  attempt       2\n",
		"  deadline      -\n",
		"  error         -\n",
		`  auth          hmac-sha256, key "mesh-1"` + "\n",
	}
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"tag carrier", []string{"decode", rawLine(t, tagLines[0])}, 0, append([]string{
			"mesh line (tag carrier) from audit-a1 to #mesh.orders.created (msgid m1): envelope of " + strconv.Itoa(len(sealed)) + " B\n",
			"  signature     32 B, not checked (no --keyring)\n",
		}, fields...)},
		{"body carrier text", []string{"decode", bodyLines[0].Body}, 0, append([]string{
			"mesh line (body carrier): envelope of",
		}, fields...)},
		{"verified", []string{"decode", bodyLines[0].Body, "--keyring", goodRing}, 0, []string{
			"  signature     32 B, verified with the keyring\n",
		}},
		{"forged", []string{"decode", bodyLines[0].Body, "--keyring", badRing}, 1, append([]string{
			"rejected mesh line (forged): envelope: bad signature\n",
			"  signature     32 B, REJECTED: envelope: bad signature\n",
		}, fields...)},
		{"human", []string{"decode", ":bob!b@h PRIVMSG #mesh.orders.created :hi all"}, 0, []string{
			`not a mesh line from bob to #mesh.orders.created: "hi all"` + "\n",
		}},
		{"bare text", []string{"decode", "just words"}, 0, []string{`not a mesh line: "just words"`}},
		{"not a privmsg", []string{"decode", ":bob!b@h JOIN #mesh.orders.created"}, 0, []string{
			"not a mesh line: a JOIN, not a PRIVMSG from bob\n",
		}},
		{"garbage mesh line", []string{"decode", "~m1 event orders.created 1a2b3c4d AAAAAAAA"}, 1, []string{
			"rejected mesh line (malformed): envelope: malformed",
		}},
		{"bad base64", []string{"decode", "@+meshbot/e=%%% :x PRIVMSG #c :mesh event t 1a2b3c4d (3 B)"}, 1, []string{
			"rejected mesh line (malformed) from x to #c: envelope: malformed: byte '%' at 0 is not base64url\n",
			"  it reads: mesh event t 1a2b3c4d (3 B)\n",
		}},
		{"newer line format", []string{"decode", "~m9 event t 1a2b3c4d AAAA"}, 1, []string{"rejected mesh line (version)", `line format "~m9"`}},
		{"not IRC", []string{"decode", "@"}, 1, []string{"not an IRC line"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, "", tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			for _, w := range tc.wants {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
			if r.code == 1 && r.stderr != "" {
				t.Errorf("a rejected line is explained on stdout; stderr has %q", r.stderr)
			}
		})
	}
}

// TestDecodeFragments: one fragment alone says what it is; all of them on
// stdin reassemble the envelope.
func TestDecodeFragments(t *testing.T) {
	t.Parallel()
	e, sealed := testEnvelope(t, []byte(strings.Repeat("x", 3000)))
	lines, err := envelope.EncodeLines(e, sealed, envelope.CarrierTag, envelope.Limits{TagBytes: 1200, BodyBytes: 400})
	if err != nil || len(lines) < 3 {
		t.Fatalf("%d lines, %v", len(lines), err)
	}
	n := strconv.Itoa(len(lines))
	r := runCLI(t, nil, "", "decode", rawLine(t, lines[1]))
	if want := "fragment 2/" + n + " of envelope " + e.ID.Short() + " (tag carrier, "; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("exit %d, output %q; want %q", r.code, r.stdout, want)
	}

	var input strings.Builder
	for _, l := range lines {
		input.WriteString(rawLine(t, l) + "\r\n")
	}
	r = runCLI(t, nil, input.String(), "decode", "-")
	last := "line " + n + ": mesh line (tag carrier) from audit-a1 to #mesh.orders.created (msgid m1): envelope of " + strconv.Itoa(len(sealed)) + " B, reassembled from " + n + " fragments\n"
	if r.code != 0 || !strings.Contains(r.stdout, "line 1: fragment 1/"+n) || !strings.Contains(r.stdout, last) ||
		!strings.Contains(r.stdout, "payload       3000 B, text: xxx") {
		t.Errorf("exit %d, output:\n%s", r.code, r.stdout)
	}

	// JSON: one object per line, the last one whole.
	r = runCLI(t, nil, input.String(), "decode", "--json")
	out := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(out) != len(lines) {
		t.Fatalf("%d JSON lines for %d lines:\n%s", len(out), len(lines), r.stdout)
	}
	var first, end lineView
	if err := json.Unmarshal([]byte(out[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out[len(out)-1]), &end); err != nil {
		t.Fatal(err)
	}
	if first.Type != typeFragment || first.Fragment.Index != 1 || first.Fragment.Short != e.ID.Short() {
		t.Errorf("first: %+v", first)
	}
	if end.Type != typeMesh || end.Signature != sigUnchecked || end.Fragments != len(lines) || end.Envelope.Epoch != 3 ||
		end.Envelope.Correlation != e.Correlation.String() || end.Envelope.Sender.Service != "audit" || !end.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("last: %+v %+v", end, end.Envelope)
	}
}

// TestDecodeBatch: a batch line (§3.9) is shown as one view per envelope,
// each with its own signature state; a forged one is shown rejected with
// its fields, the others are accepted.
func TestDecodeBatch(t *testing.T) {
	t.Parallel()
	var envs []*envelope.Envelope
	var sealed [][]byte
	for i, s := range []envelope.Signer{envelope.NewHMACSigner("mesh-1", testHMACKey), nil, envelope.NewHMACSigner("mesh-1", []byte("another key of 32 bytes........."))} {
		e := envelope.New(envelope.KindEvent, envelope.Sender{Service: "audit", Instance: "a1"}, "orders", []byte("event-"+strconv.Itoa(i)), time.Unix(1700000000, 0))
		b, err := envelope.Seal(e, s)
		if err != nil {
			t.Fatal(err)
		}
		envs, sealed = append(envs, e), append(sealed, b)
	}
	l, err := envelope.EncodeBatchLine(envs, sealed, envelope.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ring := filepath.Join(t.TempDir(), "ring")
	writeFile(t, ring, "hmac mesh-1 "+base64.StdEncoding.EncodeToString(testHMACKey)+"\n")
	line := rawLine(t, l)

	r := runCLI(t, nil, "", "decode", line, "--keyring", ring, "--json")
	out := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 1 || len(out) != 3 {
		t.Fatalf("exit %d, %d views, want 1 and 3:\n%s", r.code, len(out), r.stdout)
	}
	for i, want := range []struct{ typ, sig, reason string }{
		{typeMesh, "verified", ""}, {typeMesh, "unsigned", ""}, {typeRejected, "", "forged"},
	} {
		var v lineView
		if err := json.Unmarshal([]byte(out[i]), &v); err != nil {
			t.Fatal(err)
		}
		if v.Type != want.typ || v.Signature != want.sig || v.Reason != want.reason || v.Batch != strconv.Itoa(i+1)+"/3" ||
			v.Carrier != "tag" || v.Envelope == nil || v.Envelope.ID != envs[i].ID.String() || v.EnvelopeBytes != len(sealed[i]) || v.MsgID != "m1" {
			t.Errorf("view %d: %+v", i, v)
		}
	}

	// Without a keyring the signed ones are shown unchecked, forged or not.
	r = runCLI(t, nil, "", "decode", line)
	if r.code != 0 || strings.Count(r.stdout, "not checked (no --keyring)") != 2 ||
		!strings.Contains(r.stdout, "mesh line (tag carrier) from audit-a1 to #mesh.orders.created (msgid m1): envelope of "+strconv.Itoa(len(sealed[2]))+" B, envelope 3/3 of a batch\n") {
		t.Errorf("exit %d:\n%s", r.code, r.stdout)
	}
}

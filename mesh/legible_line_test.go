package mesh_test

import (
	"context"
	"crypto/rand"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestLinesPeopleRead: what a person's client shows of events (§3.2,
// §3.3), read by a bare client on the tag carrier (it asks for no
// capability, so it gets the text alone, as a client without
// message-tags does) or on the body carrier (ngIRCd): a payload's
// preview, cleaned of formatting and cut; a binary payload as its type;
// "[secret]" for a payload its publisher marked Secret; nothing of an
// encrypted payload. The subscriber still gets every payload whole.
func TestLinesPeopleRead(t *testing.T) {
	srv := ircdtest.Start(t)
	const topic = "orders.created"
	channel := mesh.Channel("t", topic)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	person, err := ircd.DialRaw(ctx, srv.Addr(), "dana")
	if err != nil {
		t.Fatal(err)
	}
	defer person.Quit(context.Background())
	if err := person.Send(ctx, "JOIN "+channel); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		for {
			m, err := person.Read(ctx)
			if err != nil {
				return
			}
			if m.Command == "PRIVMSG" && len(m.Params) == 2 && strings.EqualFold(m.Params[0], channel) {
				lines <- m.Params[1]
			}
			if m.Command == "366" { // end of NAMES: joined
				lines <- ""
			}
		}
	}()
	if l := <-lines; l != "" {
		t.Fatalf("before the join's end: %q", l)
	}

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keys := envelope.NewKeyring()
	if err := keys.AddPayloadKey("m1", key); err != nil {
		t.Fatal(err)
	}
	vaultCfg := testConfig(srv, "vault")
	vaultCfg.Keys, vaultCfg.Crypter = keys, envelope.NewCrypter("vault", keys)
	if err := vaultCfg.Crypter.UseMeshKey("m1"); err != nil {
		t.Fatal(err)
	}
	auditCfg := testConfig(srv, "audit")
	auditCfg.Keys, auditCfg.Crypter = keys, envelope.NewCrypter("audit", keys)
	nodes := connectAll(t, testConfig(srv, "orders"), vaultCfg, auditCfg)
	orders, vault, audit := nodes[0], nodes[1], nodes[2]
	got := newCollector()
	if _, err := audit.Subscribe(ctx, topic, got.handle); err != nil {
		t.Fatal(err)
	}
	if err := orders.WaitFor(ctx, "audit"); err != nil {
		t.Fatal(err)
	}

	const card = `{"card":"4111 1111 1111 1111"}`
	for _, tc := range []struct {
		name    string
		from    *mesh.Node
		payload string
		opts    []mesh.PublishOption
		kind    string
		text    string // what follows "(N B)"; "" for nothing; "…" at its end: cut there
	}{
		{"json", orders, `{"order":7,"item":"tea"}`, []mesh.PublishOption{mesh.WithContentType("application/json")}, "event", `{"order":7,"item":"tea"}`},
		{"formatting codes and line breaks", orders, "\x02urgent\x02 \x0304red\x03\r\nsecond line", nil, "event", "urgent red second line"},
		{"right-to-left override", orders, "total \u202e0.01\u202c EUR", nil, "event", "total 0.01 EUR"},
		{"binary", orders, "\x00\x01\x02\x03", []mesh.PublishOption{mesh.WithContentType("application/octet-stream")}, "event", "[binary application/octet-stream]"},
		{"very long", orders, strings.Repeat("abc ", 200), nil, "event", strings.Repeat("abc ", 40) + "…"},
		{"secret", orders, card, []mesh.PublishOption{mesh.Secret()}, "event", envelope.SecretMark},
		{"encrypted", vault, card, nil, "event" + envelope.EncryptedMark, ""},
	} {
		ack, err := tc.from.Publish(ctx, topic, []byte(tc.payload), tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var line string // the envelope's first line
		for i := range ack.Lines {
			select {
			case l := <-lines:
				if i == 0 {
					line = l
				}
			case <-ctx.Done():
				t.Fatalf("%s: %d lines of %d", tc.name, i, ack.Lines)
			}
		}
		// Tag carrier: "mesh KIND TOPIC ID[ [i/n]] (N B)[ TEXT]"; body
		// carrier: "~m2 KIND TOPIC ID[ i/n] (N B)[ TEXT] DATA".
		head := regexp.QuoteMeta(tc.kind+" "+topic+" "+ack.ID.Short()) + ` (?:\[?1/\d+\]? )?\(`
		re := regexp.MustCompile(`^mesh ` + head + `(\d+) B\)(?: (.*))?$`)
		if strings.HasPrefix(line, envelope.BodyMarker) {
			re = regexp.MustCompile(`^` + envelope.BodyMarker + ` ` + head + `(\d+) B\) (?:(.*) )?[A-Za-z0-9_-]+$`)
		}
		m := re.FindStringSubmatch(line)
		cut, whole := strings.CutSuffix(tc.text, "…")
		switch {
		case m == nil:
			t.Errorf("%s: line %q", tc.name, line)
		case tc.kind == "event" && m[1] != strconv.Itoa(len(tc.payload)): // encrypted: the ciphertext's size
			t.Errorf("%s: size %s B, want %d (line %q)", tc.name, m[1], len(tc.payload), line)
		case !whole && m[2] != tc.text,
			whole && (!strings.HasPrefix(m[2], cut) || !strings.HasSuffix(m[2], "…") || len(m[2]) > envelope.MaxPreview):
			t.Errorf("%s: a person reads %q, want %q (line %q)", tc.name, m[2], tc.text, line)
		case strings.Contains(line, "4111"):
			t.Errorf("%s: the line shows the card: %q", tc.name, line)
		}
	}
	got.waitFor(t, 7, 10*time.Second)
	got.mu.Lock()
	defer got.mu.Unlock()
	if got.seen[card] != 2 {
		t.Errorf("the subscriber got the secret and the encrypted payload %d times, want 2", got.seen[card])
	}
}

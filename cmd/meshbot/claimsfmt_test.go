package main

import (
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// encMarshal encodes what claims.EncodeItems refuses to.
func encMarshal(v any) ([]byte, error) { return cbor.Marshal(v) }

var fmtWorker = envelope.Sender{Service: "worker", Instance: "w1", Incarnation: 9}

// fixedID is an event id whose short form is short (8 hex digits).
func fixedID(t *testing.T, short string) envelope.ID {
	t.Helper()
	var id envelope.ID
	for i := range id {
		id[i] = byte(i + 1)
	}
	for i := 0; i < 4; i++ {
		var b byte
		for _, c := range short[2*i : 2*i+2] {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= byte(c - '0')
			default:
				b |= byte(c-'a') + 10
			}
		}
		id[i] = b
	}
	return id
}

func itemsPayload(t *testing.T, items []claims.Item) []byte {
	t.Helper()
	p, err := claims.EncodeItems(items)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tailLine renders env as tail prints it, seen in the channel of topic.
func tailLine(env *envelope.Envelope, topic string) string {
	v := observationView(mesh.Observation{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Channel: "#mesh." + topic, Topic: topic,
		From: "worker-w1", Mesh: true, Envelope: env,
	})
	return v.text()
}

func TestTailClaimLines(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	a, b, c := fixedID(t, "4776bf3e"), fixedID(t, "7c7828ce"), fixedID(t, "0a1b2c3d")

	claim := envelope.New(envelope.KindClaim, fmtWorker, "workers", itemsPayload(t, []claims.Item{
		{Event: a, Epoch: 1, Attempt: 1}, {Event: b, Epoch: 2, Attempt: 2}, {Event: c, Epoch: 1, Attempt: 1},
	}), now)
	claim.LeaseMillis = 30000
	takeover := envelope.New(envelope.KindClaim, fmtWorker, "workers", itemsPayload(t, []claims.Item{{Event: b, Epoch: 3, Attempt: 3}}), now)
	takeover.LeaseMillis = 10000
	var many []claims.Item
	for i := range 10 {
		many = append(many, claims.Item{Event: envelope.NewID(), Epoch: 1 + uint64(i%2), Attempt: 1})
	}
	big := envelope.New(envelope.KindClaim, fmtWorker, "workers", itemsPayload(t, many), now)
	ack := envelope.New(envelope.KindAck, fmtWorker, "workers", itemsPayload(t, []claims.Item{{Event: a, Epoch: 1}, {Event: b, Epoch: 2}}), now)
	nack := envelope.New(envelope.KindNack, fmtWorker, "workers", nil, now)
	nack.Correlation, nack.Epoch, nack.LeaseMillis = a, 2, 1500
	nack.Error = &envelope.Error{Message: "store refused: 503"}
	dead := envelope.New(envelope.KindDeadLetter, fmtWorker, "workers", nil, now)
	dead.Correlation, dead.Epoch, dead.Attempt = b, 6, 5
	dead.Error = &envelope.Error{Message: "worker/w1: boom; worker/w2: lease expired"}

	for _, tc := range []struct {
		name string
		env  *envelope.Envelope
		want string // a regexp the whole line must match
	}{
		{"claim", claim, `^03:04:05\.000  orders\.created +worker-w1 +claim  [0-9a-f]{8}  group=workers events=3 4776bf3e@1 7c7828ce@2\(attempt 2\) 0a1b2c3d@1  lease=30s  takeovers=1$`},
		{"takeover", takeover, `  claim  [0-9a-f]{8}  group=workers events=1 7c7828ce@3\(attempt 3\)  lease=10s  takeover$`},
		{"capped", big, `  claim  [0-9a-f]{8}  group=workers events=10( [0-9a-f]{8}@[12]){6} \+4 more  takeovers=5$`},
		{"ack", ack, `  ack    [0-9a-f]{8}  group=workers events=2 4776bf3e@1 7c7828ce@2$`},
		{"nack", nack, `  nack   [0-9a-f]{8}  group=workers event=4776bf3e@2  retry-in=1\.5s  reason="store refused: 503"$`},
		{"dead", dead, `  dead   [0-9a-f]{8}  group=workers event=7c7828ce@6 attempts=5  reasons="worker/w1: boom; worker/w2: lease expired"$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tailLine(tc.env, "orders.created")
			if tc.name == "claim" {
				got = regexp.MustCompile(`^\d\d:\d\d:\d\d`).ReplaceAllString(got, "03:04:05") // local time zone
			}
			if !regexp.MustCompile(tc.want).MatchString(got) {
				t.Errorf("tail line\n  %s\ndoes not match\n  %s", got, tc.want)
			}
		})
	}

	// The JSON form carries the decoded items.
	b2, err := json.Marshal(observationView(mesh.Observation{Mesh: true, Envelope: claim, Topic: "orders.created"}))
	if err != nil {
		t.Fatal(err)
	}
	var back lineView
	if err := json.Unmarshal(b2, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Envelope.Items; len(got) != 3 || got[1] != (itemView{Event: b.String(), Short: "7c7828ce", Epoch: 2, Attempt: 2}) || back.Envelope.PayloadError != "" {
		t.Errorf("JSON items: %+v (error %q)", got, back.Envelope.PayloadError)
	}
}

func TestTailDeadLetter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	orig := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "1"}, "orders.created", []byte(`{"order":7}`), now)
	payload, err := claims.EncodeDeadLetter(&claims.DeadLetter{Topic: "orders.created", Group: "workers", Event: orig,
		Attempts: 5, Reasons: []string{"worker/w1: boom", "worker/w2: boom"}})
	if err != nil {
		t.Fatal(err)
	}
	ev := envelope.New(envelope.KindEvent, fmtWorker, claims.DeadTopic("orders.created"), payload, now)
	got := tailLine(ev, "orders.created._dead")
	want := `  event  ` + ev.ID.Short() + `  DEAD LETTER event=` + orig.ID.Short() + ` topic=orders.created group=workers attempts=5 reasons="worker/w1: boom; worker/w2: boom" payload={"order":7}$`
	if !regexp.MustCompile(regexp.QuoteMeta(want[:len(want)-1]) + "$").MatchString(got) {
		t.Errorf("dead letter line\n  %s\nwant it to end with\n  %s", got, want)
	}
	v := newEnvView(ev)
	if v.DeadLetter == nil || v.DeadLetter.Event.ID != orig.ID.String() || v.DeadLetter.Attempts != 5 || len(v.DeadLetter.Reasons) != 2 {
		t.Errorf("dead letter view: %+v", v.DeadLetter)
	}
	// An ordinary topic's event is not taken for a dead letter.
	plain := envelope.New(envelope.KindEvent, fmtWorker, "orders.created", payload, now)
	if v := newEnvView(plain); v.DeadLetter != nil || v.PayloadError != "" {
		t.Errorf("an event on orders.created decoded as a dead letter: %+v", v)
	}
}

// TestTailMalformedClaims: payloads that do not decode are marked, never a
// panic.
func TestTailMalformedClaims(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	tooMany := make([]claims.Item, claims.MaxItems+1)
	for i := range tooMany {
		tooMany[i] = claims.Item{Event: envelope.NewID(), Epoch: 1}
	}
	tooManyPayload, err := encMarshal(tooMany)
	if err != nil {
		t.Fatal(err)
	}
	zeroEpoch, err := encMarshal([]claims.Item{{Event: envelope.NewID()}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		kind    envelope.Kind
		topic   string
		payload []byte
		want    string
	}{
		{"empty claim", envelope.KindClaim, "workers", nil, "group=workers MALFORMED payload (0 B): claims: malformed payload"},
		{"text claim", envelope.KindClaim, "workers", []byte("hello"), "group=workers MALFORMED payload (5 B): claims: malformed payload"},
		{"map ack", envelope.KindAck, "workers", []byte{0xa1, 0x01, 0x02}, "group=workers MALFORMED payload (3 B)"},
		{"truncated", envelope.KindAck, "workers", []byte{0x83, 0x50, 0x01}, "MALFORMED payload (3 B)"},
		{"too many items", envelope.KindClaim, "workers", tooManyPayload, "MALFORMED payload"},
		{"zero epoch", envelope.KindClaim, "workers", zeroEpoch, "MALFORMED payload"},
		{"odd group", envelope.KindClaim, "two words\x01", nil, `group="two words\x01" MALFORMED`},
		{"dead letter", envelope.KindEvent, "orders._dead", []byte("not cbor"), "MALFORMED dead letter (8 B): claims: malformed payload"},
		{"dead letter without event", envelope.KindEvent, "orders._dead", []byte{0xa1, 0x01, 0x61, 0x74}, "MALFORMED dead letter (4 B)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := envelope.New(tc.kind, fmtWorker, tc.topic, tc.payload, now)
			if got := tailLine(env, "orders"); !strings.Contains(got, tc.want) {
				t.Errorf("tail line\n  %s\nlacks\n  %s", got, tc.want)
			}
			v := newEnvView(env)
			if v.PayloadError == "" || v.Items != nil || v.DeadLetter != nil {
				t.Errorf("view: error %q, items %v, dead letter %v", v.PayloadError, v.Items, v.DeadLetter)
			}
			var b strings.Builder
			writeDecoded(&b, &lineView{Type: typeMesh, Envelope: v})
			if !strings.Contains(b.String(), "MALFORMED: claims: malformed payload") {
				t.Errorf("decode output lacks the marker:\n%s", b.String())
			}
		})
	}
	// Random payloads of every kind: never a panic.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		p := make([]byte, rng.IntN(64))
		for j := range p {
			p[j] = byte(rng.UintN(256))
		}
		if i%3 == 0 && len(p) > 0 {
			p[0] = 0x80 | byte(rng.UintN(0x20)) // an array head, to get further into the decoder
		}
		for _, k := range []envelope.Kind{envelope.KindClaim, envelope.KindAck, envelope.KindNack, envelope.KindDeadLetter, envelope.KindEvent} {
			env := envelope.New(k, fmtWorker, "t._dead", p, now)
			_ = tailLine(env, "t._dead")
			var b strings.Builder
			writeDecoded(&b, &lineView{Type: typeMesh, Envelope: newEnvView(env)})
		}
	}
}

// TestDecodeClaimLines: decode lists every item of a claim and shows a dead
// letter's event.
func TestDecodeClaimLines(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	a, b := fixedID(t, "4776bf3e"), fixedID(t, "7c7828ce")
	claim := envelope.New(envelope.KindClaim, fmtWorker, "workers", itemsPayload(t, []claims.Item{{Event: a, Epoch: 1, Attempt: 1}, {Event: b, Epoch: 2, Attempt: 2}}), now)
	claim.LeaseMillis = 30000
	nack := envelope.New(envelope.KindNack, fmtWorker, "workers", nil, now)
	nack.Correlation, nack.Epoch, nack.LeaseMillis = a, 2, 1000
	nack.Error = &envelope.Error{Message: "boom"}
	orig := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "1"}, "orders.created", []byte("order 7"), now)
	dl, err := claims.EncodeDeadLetter(&claims.DeadLetter{Topic: "orders.created", Group: "workers", Event: orig, Attempts: 3, Reasons: []string{"w1: boom", "w2: boom"}})
	if err != nil {
		t.Fatal(err)
	}
	dead := envelope.New(envelope.KindEvent, fmtWorker, "orders.created._dead", dl, now)

	for _, tc := range []struct {
		name  string
		env   *envelope.Envelope
		wants []string
	}{
		{"claim", claim, []string{
			"  topic         workers (the anycast group)\n",
			"  items         2 events (group workers)\n",
			"                  " + a.String() + "  epoch 1, attempt 1\n",
			"                  " + b.String() + "  epoch 2, attempt 2, takeover\n",
			"  lease         30s\n",
		}},
		{"nack", nack, []string{
			"  correlation   " + a.String() + "\n",
			"  retry-in      1s\n",
			`  error         0 "boom"` + "\n",
		}},
		{"dead letter", dead, []string{
			"  dead letter   event " + orig.ID.String() + " of topic orders.created, group workers, given up after 3 attempts\n",
			`  reasons       "w1: boom"; "w2: boom"` + "\n",
			"  original      event from orders/1, sent 2023-11-14T22:13:20Z; payload 7 B, text: order 7\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := envelope.Seal(tc.env, nil)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := envelope.EncodeLines(tc.env, sealed, envelope.CarrierBody, envelope.Limits{BodyBytes: 4000})
			if err != nil || len(lines) != 1 {
				t.Fatalf("%d lines, %v", len(lines), err)
			}
			r := runCLI(t, nil, "", "decode", lines[0].Body)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, w := range tc.wants {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("decode output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

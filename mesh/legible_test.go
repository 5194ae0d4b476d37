package mesh

import (
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/state"
)

// §3.2: the note people read of each kind of line that is not an event:
// who beats and how loaded it is, which events a claim, ack or nack
// refers to, what a dead letter gave up on, what a state update writes.
func TestHumanNotes(t *testing.T) {
	sender := envelope.Sender{Service: "billing", Instance: "2"}
	at := time.Unix(1_700_000_000, 0)
	ids := make([]envelope.ID, 5)
	for i := range ids {
		ids[i] = envelope.ID{byte(0x10 + i), 0xab, 0xcd, 0xef}
	}
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	env := func(kind envelope.Kind, topic string, payload []byte, set func(*envelope.Envelope)) *envelope.Envelope {
		e := envelope.New(kind, sender, topic, payload, at)
		if set != nil {
			set(e)
		}
		return e
	}
	beat := must(heartbeat.Encode(&heartbeat.Beat{Service: "billing", Instance: "2", Incarnation: 7, IntervalMillis: 1000, Load: 0.25,
		Subs:    []heartbeat.Sub{{Topic: "orders.created", Group: "billing"}, {Topic: "refunds"}},
		Methods: []string{"charge", "refund"}, Kicked: []heartbeat.Sub{{Topic: "audit"}}}))
	quiet := must(heartbeat.Encode(&heartbeat.Beat{Service: "orders", Instance: "1", Incarnation: 7, IntervalMillis: 1000}))
	one := must(claims.EncodeItems([]claims.Item{{Event: ids[0], Epoch: 2, Attempt: 3}}))
	many := must(claims.EncodeItems([]claims.Item{{Event: ids[0], Epoch: 1}, {Event: ids[1], Epoch: 1}, {Event: ids[2], Epoch: 1}, {Event: ids[3], Epoch: 1}, {Event: ids[4], Epoch: 1}}))
	original := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "1"}, "orders.created", []byte(`{"card":"4111"}`), at)
	original.ID = ids[0]
	dead := must(claims.EncodeDeadLetter(&claims.DeadLetter{Topic: "orders.created", Group: "billing", Event: original, Attempts: 5, Reasons: []string{"boom", "bang"}}))
	update := must(state.EncodePayload(&state.Update{Version: 12, Puts: []state.KeyPut{{Key: "tea", Version: 3, Value: []byte("secret value")}, {Key: "coffee", Version: 1}, {Key: "scone", Version: 1}, {Key: "bagel", Version: 2}},
		Deletes: []state.KeyDelete{{Key: "muffin", Version: 4}}}))

	for _, tc := range []struct {
		name string
		env  *envelope.Envelope
		want string
	}{
		{"heartbeat", env(envelope.KindHeartbeat, "_hb", beat, nil),
			"billing/2 load 0.25, subscribes billing:orders.created refunds, answers charge refund, kicked from audit"},
		{"quiet heartbeat", env(envelope.KindHeartbeat, "_hb", quiet, nil), "orders/1 load 0.00"},
		{"claim", env(envelope.KindClaim, "billing", one, func(e *envelope.Envelope) { e.LeaseMillis = 30_000 }),
			"for 10abcdef (epoch 2, attempt 3, lease 30s)"},
		{"claims batched", env(envelope.KindClaim, "billing", many, nil), "for 10abcdef 11abcdef 12abcdef +2 more"},
		{"ack", env(envelope.KindAck, "billing", one, nil), "done 10abcdef"},
		{"acks batched", env(envelope.KindAck, "billing", many, nil), "done 10abcdef 11abcdef 12abcdef +2 more"},
		{"nack", env(envelope.KindNack, "billing", nil, func(e *envelope.Envelope) {
			e.Correlation, e.Epoch, e.LeaseMillis = ids[1], 4, 1500
			e.Error = &envelope.Error{Code: 500, Message: "card declined"}
		}), "failed 11abcdef (epoch 4), retry in 1.5s: card declined"},
		{"release", env(envelope.KindNack, "billing", nil, func(e *envelope.Envelope) {
			e.Correlation, e.Epoch = ids[2], 7
			e.Error = &envelope.Error{Code: claims.CodeReleased}
		}), "released 12abcdef (epoch 7)"},
		{"dead letter marker", env(envelope.KindDeadLetter, "billing", nil, func(e *envelope.Envelope) {
			e.Correlation, e.Attempt = ids[3], 5
			e.Error = &envelope.Error{Code: 500, Message: "bang"}
		}), "gave up on 13abcdef after 5 attempts: bang"},
		{"dead letter event: never the payload", env(envelope.KindEvent, "orders.created._dead", dead, nil),
			"dead letter of 10abcdef (orders.created, group billing) after 5 attempts: bang"},
		{"state update: keys and versions, never values", env(envelope.KindState, "prices", update, nil),
			"v12 put tea@3 coffee@1 scone@1 +1 more delete muffin@4"},
		{"an event: its preview, no note", env(envelope.KindEvent, "orders.created", []byte("hello"), nil), ""},
		{"a malformed heartbeat: no note", env(envelope.KindHeartbeat, "_hb", []byte("\xff\x00"), nil), ""},
		{"malformed claims: no note", env(envelope.KindClaim, "billing", []byte("nonsense"), nil), ""},
		{"an oversized state update: no note", env(envelope.KindState, "prices", make([]byte, maxStateNote+1), nil), ""},
	} {
		got := humanNote(tc.env)
		if got != tc.want {
			t.Errorf("%s: note %q, want %q", tc.name, got, tc.want)
		}
		if strings.Contains(got, "4111") || strings.Contains(got, "secret value") {
			t.Errorf("%s: the note shows a payload: %q", tc.name, got)
		}
	}
}

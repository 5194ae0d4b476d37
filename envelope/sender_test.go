package envelope

import (
	"errors"
	"strings"
	"testing"
)

func TestNickMatches(t *testing.T) {
	s := Sender{Service: "shop", Instance: "a1b2c3"}
	for _, tc := range []struct {
		source string
		want   bool
	}{
		{"shop-a1b2c3", true},
		{"Shop-A1B2C3", true}, // IRC nicks compare without case
		{"shop-a1b2c3!~shop@127.0.0.1", true},
		{"shop-a1b2c", false},
		{"shop-a1b2c3x", false},
		{"shopa1b2c3", false},
		{"intruder", false},
		{"shop_a1b2c3", false},
		{"", false},
		{"xshop-a1b2c3", false},
	} {
		if got := NickMatches(tc.source, s); got != tc.want {
			t.Errorf("NickMatches(%q) = %v, want %v", tc.source, got, tc.want)
		}
	}
	if NickMatches("-", Sender{}) {
		t.Error("an empty sender matches a nick")
	}
	// Services may hold '-': the nick is still service + "-" + instance.
	if !NickMatches("order-svc-x9", Sender{Service: "order-svc", Instance: "x9"}) {
		t.Error("a service with '-' does not match its nick")
	}
}

// §4.4: an envelope whose sender is not the nick that sent its line is
// rejected and counted, signed or not; with an account binding the
// account tag must be the service's account.
func TestDecoderBindsSenderToNick(t *testing.T) {
	_, hm, ring := testKeys(t)
	for _, signer := range []Signer{nil, hm} {
		name := "unsigned"
		if signer != nil {
			name = "hmac"
		}
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(DecoderConfig{Verifier: &Verifier{Keys: ring}, BindSender: true, Guard: NewGuard(0, 0)})
			e := sampleEnvelope() // orders/a1b2c3
			sealed, err := Seal(e, signer)
			if err != nil {
				t.Fatal(err)
			}
			line := lineOf(t, e, sealed)
			if _, _, err := d.Decode("intruder", nil, line.Body, t0); !errors.Is(err, ErrWrongSender) {
				t.Fatalf("from another nick: %v, want ErrWrongSender", err)
			}
			if !strings.Contains(errText(d, "intruder", line.Body), "intruder claims to be orders/a1b2c3") {
				t.Errorf("the error does not name the nick and the claim")
			}
			// The rejection left no trace in the guard: the real sender's
			// line still goes through.
			envs, _, err := d.Decode("orders-a1b2c3!~orders@host", nil, line.Body, t0)
			if err != nil || len(envs) != 1 {
				t.Fatalf("from its own nick: %v", err)
			}
			st, _ := d.Stats()
			if st.Rejected.WrongSender != 2 || st.Accepted != 1 {
				t.Fatalf("counters %+v", st)
			}
		})
	}
}

func errText(d *Decoder, nick, body string) string {
	_, _, err := d.Decode(nick, nil, body, t0)
	return Reason(err) + ": " + err.Error()
}

func lineOf(t *testing.T, e *Envelope, sealed []byte) Line {
	t.Helper()
	lines, err := EncodeLines(e, sealed, CarrierBody, Limits{BodyBytes: 1 << 16})
	if err != nil || len(lines) != 1 {
		t.Fatalf("lines: %v %d", err, len(lines))
	}
	return lines[0]
}

func TestDecoderBindsAccounts(t *testing.T) {
	e := sampleEnvelope() // orders/a1b2c3
	sealed, _ := Seal(e, nil)
	body := lineOf(t, e, sealed).Body
	nick := "orders-a1b2c3"
	for _, tc := range []struct {
		name    string
		binding *AccountBinding
		tags    map[string]string
		ok      bool
	}{
		{"unbound", &AccountBinding{Accounts: map[string]string{"billing": "bill"}}, nil, true},
		{"bound, right account", &AccountBinding{Accounts: map[string]string{"orders": "ord"}}, map[string]string{TagAccount: "ord"}, true},
		{"bound, case differs", &AccountBinding{Accounts: map[string]string{"orders": "ord"}}, map[string]string{TagAccount: "ORD"}, true},
		{"bound, other account", &AccountBinding{Accounts: map[string]string{"orders": "ord"}}, map[string]string{TagAccount: "mallory"}, false},
		{"bound, not logged in", &AccountBinding{Accounts: map[string]string{"orders": "ord"}}, nil, false},
		{"bound, '*'", &AccountBinding{Accounts: map[string]string{"orders": "ord"}}, map[string]string{TagAccount: "*"}, false},
		{"same name", &AccountBinding{SameName: true}, map[string]string{TagAccount: "orders"}, true},
		{"same name, other", &AccountBinding{SameName: true}, map[string]string{TagAccount: "billing"}, false},
		{"explicit beats same name", &AccountBinding{SameName: true, Accounts: map[string]string{"orders": "ord"}}, map[string]string{TagAccount: "ord"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(DecoderConfig{BindSender: true, Accounts: tc.binding})
			_, _, err := d.Decode(nick, tc.tags, body, t0)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrWrongSender) {
				t.Fatalf("err %v, want ErrWrongSender", err)
			}
		})
	}
	// OpenFrom without tags (a snapshot page kept none) checks the nick
	// only; with tags it checks the account too.
	d := NewDecoder(DecoderConfig{BindSender: true, Accounts: &AccountBinding{SameName: true}})
	if _, err := d.OpenFrom(nick, nil, sealed, t0); err != nil {
		t.Fatalf("OpenFrom without tags: %v", err)
	}
	if _, err := d.OpenFrom(nick, map[string]string{}, sealed, t0); !errors.Is(err, ErrWrongSender) {
		t.Fatalf("OpenFrom with tags and no account: %v", err)
	}
	if _, err := d.OpenFrom("other-x1", nil, sealed, t0); !errors.Is(err, ErrWrongSender) {
		t.Fatalf("OpenFrom from another nick: %v", err)
	}
	// Open has no line: it cannot bind.
	if _, err := d.Open(sealed, t0); err != nil {
		t.Fatalf("Open: %v", err)
	}
}

// Every envelope of a batch line is bound to the line's nick.
func TestBatchBoundToNick(t *testing.T) {
	own := sampleEnvelope()
	other := New(KindEvent, Sender{Service: "billing", Instance: "zz"}, "orders.created", []byte("x"), t0)
	s1, _ := Seal(own, nil)
	s2, _ := Seal(other, nil)
	l, err := EncodeBatchLine([]*Envelope{own, other}, [][]byte{s1, s2}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(DecoderConfig{BindSender: true})
	envs, _, err := d.Decode("orders-a1b2c3", l.Tags, l.Body, t0)
	if len(envs) != 1 || envs[0].ID != own.ID || !errors.Is(err, ErrWrongSender) {
		t.Fatalf("got %d envelopes, %v", len(envs), err)
	}
}

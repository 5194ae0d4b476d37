package state

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// §8.2: a state payload round-trips, and what breaks the rules is refused.
func TestPayloadRoundTrip(t *testing.T) {
	u := &Update{Version: 7, Puts: []KeyPut{{Key: "a", Version: 3, Value: []byte("x")}, {Key: "empty", Version: 1}},
		Deletes: []KeyDelete{{Key: "b", Version: 9}}, Whole: true}
	b, err := EncodePayload(u)
	if err != nil {
		t.Fatal(err)
	}
	var got Update
	if err := DecodePayload(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != 7 || !got.Whole || len(got.Puts) != 2 || len(got.Deletes) != 1 {
		t.Fatalf("got %+v", got)
	}
	if got.Puts[1].Value == nil || len(got.Puts[1].Value) != 0 {
		t.Errorf("an empty value decodes as %#v, want an empty byte string", got.Puts[1].Value)
	}
	if u.Puts[1].Value != nil {
		t.Error("EncodePayload changed its argument")
	}
	// The same update always encodes to the same bytes.
	again, _ := EncodePayload(&got)
	if !bytes.Equal(b, again) {
		t.Errorf("re-encoding differs:\n%x\n%x", b, again)
	}
}

func TestPayloadRefused(t *testing.T) {
	cases := map[string]*Update{
		"version 0":     {Puts: []KeyPut{{Key: "a", Version: 1}}},
		"no key":        {Version: 1},
		"key twice":     {Version: 1, Puts: []KeyPut{{Key: "a", Version: 1}}, Deletes: []KeyDelete{{Key: "a", Version: 2}}},
		"key version 0": {Version: 1, Puts: []KeyPut{{Key: "a"}}},
		"empty key":     {Version: 1, Puts: []KeyPut{{Key: "", Version: 1}}},
		"control char":  {Version: 1, Puts: []KeyPut{{Key: "a\nb", Version: 1}}},
		"long key":      {Version: 1, Puts: []KeyPut{{Key: strings.Repeat("k", MaxKeyLen+1), Version: 1}}},
	}
	for name, u := range cases {
		if _, err := EncodePayload(u); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: EncodePayload: %v, want ErrMalformed", name, err)
		}
	}
	// A whole-state update of nothing is an empty domain: allowed.
	if _, err := EncodePayload(&Update{Version: 1, Whole: true}); err != nil {
		t.Errorf("empty whole: %v", err)
	}
	// Unknown keys are ignored; a bad CBOR type is refused.
	if err := DecodePayload([]byte{0xa2, 0x01, 0x01, 0x18, 0x63, 0x01}, &Update{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("no ops with an unknown key: %v, want ErrMalformed (no key)", err)
	}
	var u Update
	if err := DecodePayload([]byte{0xa3, 0x01, 0x01, 0x04, 0xf5, 0x18, 0x63, 0x01}, &u); err != nil || !u.Whole {
		t.Errorf("unknown key 99: %v %+v", err, u)
	}
	if err := DecodePayload([]byte{0xa1, 0x01, 0x61, 0x78}, &Update{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("text version: %v", err)
	}
}

// §8.1: domain names and their owners.
func TestDomainNames(t *testing.T) {
	good := map[string]string{"cfg": "cfg", "cfg.flags": "cfg", "a-b_c.x1.y": "a-b_c", "9lives": "9lives"}
	for d, owner := range good {
		if err := ValidDomain(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
		if Owner(d) != owner {
			t.Errorf("Owner(%s) = %s", d, Owner(d))
		}
		if got, ok := DomainOfTopic(Topic(d)); !ok || got != d {
			t.Errorf("DomainOfTopic(Topic(%s)) = %s, %v", d, got, ok)
		}
	}
	for _, d := range []string{"", "Cfg", "cfg.", ".cfg", "cfg..x", "_cfg", "cfg._state", "cfg.-x", "c fg", strings.Repeat("a", MaxDomainLen+1)} {
		if err := ValidDomain(d); !errors.Is(err, ErrDomainName) {
			t.Errorf("%q: %v, want ErrDomainName", d, err)
		}
	}
	if _, ok := DomainOfTopic("cfg.events"); ok {
		t.Error("a plain topic is not a domain's")
	}
}

// DecodeUpdate checks the envelope around the payload.
func TestDecodeUpdate(t *testing.T) {
	u := &Update{ID: envelope.NewID(), Domain: "cfg.x", Writer: envelope.Sender{Service: "cfg", Instance: "a", Incarnation: 3},
		SentAt: time.Now().UnixNano(), Version: 2, Puts: []KeyPut{{Key: "k", Version: 1, Value: []byte("v")}}}
	env, err := u.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeUpdate(env, "cfg-a", "cfg", nil)
	if err != nil {
		t.Fatal(err)
	}
	got.From, got.FromService = "", ""
	if !reflect.DeepEqual(got, u) {
		t.Errorf("got %+v\nwant %+v", got, u)
	}
	env.Kind = envelope.KindEvent
	if _, err := DecodeUpdate(env, "", "", nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("event kind: %v", err)
	}
	env.Kind, env.Topic = envelope.KindState, "Bad"
	if _, err := DecodeUpdate(env, "", "", nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad domain: %v", err)
	}
}

// Pages and requests round-trip; their limits hold.
func TestPageWire(t *testing.T) {
	req := &PageRequest{Domain: "cfg", After: "a", Until: "z", Have: []envelope.ID{envelope.NewID()}, MaxBytes: 100}
	b, err := EncodePageRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePageRequest(b)
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("request: %v %+v", err, got)
	}
	p := &Page{Updates: []Sealed{{Envelope: []byte{1, 2}, Nick: "cfg-a"}}, Last: "m", Version: 4, Keys: 2, Then: []string{"q"}}
	b, err = EncodePage(p)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := DecodePage(b)
	if err != nil || !reflect.DeepEqual(gp, p) {
		t.Fatalf("page: %v %+v", err, gp)
	}
	if _, err := DecodePage([]byte{0xa1, 0x01, 0x81, 0x82, 0x40, 0x60}); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty update: %v", err)
	}
	if _, err := EncodePageRequest(&PageRequest{Domain: "Bad"}); err == nil {
		t.Error("bad domain accepted")
	}
}

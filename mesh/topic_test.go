package mesh

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopic(t *testing.T) {
	cases := []struct {
		topic string
		ok    bool
	}{
		{"orders", true},
		{"orders.created", true},
		{"a-b_c.d9", true},
		{"", false},
		{"Orders", false},         // case mapping: lower case only
		{"orders created", false}, // space
		{"orders..created", false},
		{".orders", false},
		{"orders.", false},
		{"orders._dead", true},    // the dead-letter topic of orders
		{"orders._dead.x", false}, // reserved segment
		{"_dead", false},
		{"orders._hb", false},
		{"_hb", false},
		{"a[b]", false}, // rfc1459 folds [] onto {}
		{"a,b", false},  // JOIN separator
		{strings.Repeat("x", 60), false},
	}
	for _, c := range cases {
		err := ValidateTopic("mesh", c.topic, 50)
		if (err == nil) != c.ok {
			t.Errorf("%q: err = %v, want ok=%v", c.topic, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%q: %v does not wrap ErrInvalidTopic", c.topic, err)
		}
	}
	// "#mesh." is 6 bytes: 58 more fill CHANNELLEN 64 exactly.
	if err := ValidateTopic("mesh", strings.Repeat("x", 58), 64); err != nil {
		t.Errorf("a 64-byte channel with CHANNELLEN 64: %v", err)
	}
	if err := ValidateTopic("mesh", strings.Repeat("x", 59), 64); err == nil {
		t.Error("a 65-byte channel with CHANNELLEN 64 was accepted")
	}
}

func TestNicks(t *testing.T) {
	nick, err := Nick("pricing", "a1b2c3", 30)
	if err != nil || nick != "pricing-a1b2c3" {
		t.Fatalf("%q %v", nick, err)
	}
	if _, err := Nick(strings.Repeat("s", 30), "a1b2c3", 30); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("over-long nick: %v", err)
	}
	for nick, want := range map[string]string{
		"pricing-a1b2c3":    "pricing/a1b2c3",
		"my-svc-x9":         "my-svc/x9",
		"Pricing-A1B2C3":    "pricing/a1b2c3",
		"human":             "",
		"-x":                "",
		"pricing-":          "",
		"pricing-a1_b":      "",
		"weechat_user-1234": "weechat_user/1234",
	} {
		s, i, ok := ParseNick(nick)
		got := ""
		if ok {
			got = s + "/" + i
		}
		if got != want {
			t.Errorf("ParseNick(%q) = %q, want %q", nick, got, want)
		}
	}
	if topic, ok := TopicOf("mesh", "#Mesh.Orders.Created"); !ok || topic != "orders.created" {
		t.Errorf("TopicOf: %q %v", topic, ok)
	}
	if _, ok := TopicOf("mesh", "#other.orders"); ok {
		t.Error("TopicOf accepted another namespace")
	}
}

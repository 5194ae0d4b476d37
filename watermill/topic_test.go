package meshwatermill

import (
	"strings"
	"testing"
	"testing/quick"

	"github.com/meshbot/meshbot/mesh"
)

func TestDefaultTopicMapper(t *testing.T) {
	m := DefaultTopicMapper("shop") // channel "#shop.<topic>": 34 bytes of topic
	for _, tc := range []struct {
		in, want string // want "" means: rewritten, with the hash suffix
		prefix   string // the readable part of a rewritten topic
	}{
		{in: "orders.created", want: "orders.created"},
		{in: "a-b_c.d", want: "a-b_c.d"},
		{in: "orders._dead", want: "orders._dead"},
		{in: "Orders.Created", prefix: "orders.created-"},
		{in: "events/order:created", prefix: "events-order-created-"},
		{in: "a..b", prefix: "a.b-"},
		{in: "_private", prefix: "-private-"},
		{in: "x._hidden.y", prefix: "x.-hidden.y-"},
		{in: "", prefix: "t-"},
		{in: "топик", prefix: "------"},
		{in: "topic-a2c81f0e-5dc5-4c1a-9a3d-0e6f2b8c7d11", prefix: "topic-a2c81f0e-5dc5-4c1a-9a-"},
	} {
		got := m(tc.in)
		if err := mesh.ValidateTopic("shop", got, MaxChannelLen); err != nil {
			t.Errorf("%q -> %q: %v", tc.in, got, err)
		}
		if tc.want != "" {
			if got != tc.want {
				t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
			}
			continue
		}
		if !strings.HasPrefix(got, tc.prefix) || len(got) != len(tc.prefix)+hashLen {
			t.Errorf("%q -> %q, want %q plus %d hex digits", tc.in, got, tc.prefix, hashLen)
		}
		if m(tc.in) != got {
			t.Errorf("%q maps differently twice", tc.in)
		}
	}
}

// TestDefaultTopicMapperProperties: any name maps to a valid topic whose
// channel and dead-letter channel fit MaxChannelLen, the same way every
// time; names that differ (case included) map apart, and valid topics
// that fit are kept.
func TestDefaultTopicMapperProperties(t *testing.T) {
	for _, ns := range []string{"m", "shop", "a-rather-long-namespace"} {
		m := DefaultTopicMapper(ns)
		valid := func(s string) bool {
			got := m(s)
			return mesh.ValidateTopic(ns, got, MaxChannelLen) == nil &&
				len(mesh.Channel(ns, mesh.DeadLetterTopic(got))) <= MaxChannelLen &&
				m(s) == got
		}
		if err := quick.Check(valid, &quick.Config{MaxCount: 2000}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
		distinct := func(s string) bool {
			u, l := strings.ToUpper(s), strings.ToLower(s)
			return u == l || m(u) != m(l)
		}
		if err := quick.Check(distinct, &quick.Config{MaxCount: 2000}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
		kept := func(segs []uint8) bool {
			var parts []string
			for _, s := range segs {
				parts = append(parts, string(rune('a'+s%26))+strings.Repeat("x", int(s%5)))
			}
			topic := strings.Join(parts, ".")
			if topic == "" || len(mesh.Channel(ns, mesh.DeadLetterTopic(topic))) > MaxChannelLen {
				return true
			}
			return m(topic) == topic
		}
		if err := quick.Check(kept, nil); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
}

func TestGroupName(t *testing.T) {
	for in, want := range map[string]string{
		"billing":  "billing",
		"cg_12-ab": "cg_12-ab",
		"Billing":  "Billing", // a valid group: groups keep their case
	} {
		if got := groupName(in); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"has space", "a,b", strings.Repeat("g", 70)} {
		got := groupName(in)
		if mesh.ValidateGroup(got) != nil || got == in {
			t.Errorf("%q -> %q: want a valid rewritten group", in, got)
		}
	}
}

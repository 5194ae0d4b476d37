package envelope

import (
	"strings"
	"testing"
	"time"
)

func TestOffsetString(t *testing.T) {
	tm := time.Date(2026, 11, 23, 8, 19, 43, 921e6, time.UTC)
	cases := []struct {
		o Offset
		s string
	}{
		{OffsetAt(tm, "01HX/y"), "2026-11-23T08:19:43.921Z/01HX/y"},
		{OffsetAt(tm, ""), "2026-11-23T08:19:43.921Z"},
		{OffsetAt(tm.Truncate(time.Second), "m"), "2026-11-23T08:19:43Z/m"},
		{Offset{}, ""},
	}
	for _, c := range cases {
		if got := c.o.String(); got != c.s {
			t.Errorf("String() = %q, want %q", got, c.s)
		}
		o, err := ParseOffset(c.s)
		if err != nil || o != c.o {
			t.Errorf("ParseOffset(%q) = %v, %v", c.s, o, err)
		}
	}
	if o, err := ParseOffset("2026-11-23T09:19:43.921+01:00/"); err != nil || o != OffsetAt(tm, "") {
		t.Errorf("zone and empty msgid: %v %v", o, err)
	}
	for _, s := range []string{"yesterday", "2026-11-23/x", "2026-11-23T08:19:43Z/a b", "1960-01-01T00:00:00Z/x",
		"2026-11-23T08:19:43Z/" + strings.Repeat("x", MaxMsgIDLen+1)} {
		if _, err := ParseOffset(s); err == nil {
			t.Errorf("ParseOffset(%q) accepted", s)
		}
	}
}

func TestOffsetOrder(t *testing.T) {
	a, a2 := Offset{Time: 10, MsgID: "a"}, Offset{Time: 10, MsgID: "b"}
	b, bare := Offset{Time: 11, MsgID: "c"}, Offset{Time: 10}
	cases := []struct {
		o, p Offset
		want bool
	}{
		{a, b, true}, {b, a, false}, {a, a, false},
		{a, a2, true}, {a2, a, true}, // same time, different lines: "not yet" both ways
		{a, bare, false}, {bare, a, true}, {Offset{}, a, true},
	}
	for _, c := range cases {
		if got := c.o.Before(c.p); got != c.want {
			t.Errorf("%v.Before(%v) = %v, want %v", c.o, c.p, got, c.want)
		}
	}
	if (Offset{}).At() != (time.Time{}) || !(Offset{}).IsZero() || a.IsZero() {
		t.Error("zero offset")
	}
	if err := (Offset{MsgID: "x"}).Valid(); err == nil {
		t.Error("an offset without time is valid")
	}
}

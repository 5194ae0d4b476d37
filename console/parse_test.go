package console

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    Command
		err     error
		usageOf string
	}{
		{line: "help", want: Command{Name: "help"}},
		{line: "  HELP   req ", want: Command{Name: "help", Args: []string{"req"}}},
		{line: "status", want: Command{Name: "status"}},
		{line: "members pricing", want: Command{Name: "members", Args: []string{"pricing"}}},
		{line: "methods", want: Command{Name: "methods"}},
		{line: `req pricing quote {"item": "tea", "qty": 2}`, want: Command{Name: "req", Args: []string{"pricing", "quote"}, Payload: `{"item": "tea", "qty": 2}`}},
		{line: "req pricing ping", want: Command{Name: "req", Args: []string{"pricing", "ping"}}},
		{line: "req\tpricing\tquote\tx  y ", want: Command{Name: "req", Args: []string{"pricing", "quote"}, Payload: "x  y"}},
		{line: "pub orders.created hello world", want: Command{Name: "pub", Args: []string{"orders.created"}, Payload: "hello world"}},
		{line: "claims orders.created billing", want: Command{Name: "claims", Args: []string{"orders.created", "billing"}}},
		{line: "state prices tea", want: Command{Name: "state", Args: []string{"prices", "tea"}}},
		{line: "quote coffee", err: ErrUnknown},
		{line: "", err: ErrUnknown},
		{line: "req pricing", usageOf: "req"},
		{line: "pub orders.created", usageOf: "pub"},
		{line: "claims", usageOf: "claims"},
		{line: "status now", usageOf: "status"},
		{line: "members a b", usageOf: "members"},
		{line: "members " + strings.Repeat("x", 200), usageOf: "members"},
	} {
		got, err := Parse(tc.line)
		var ue *UsageError
		switch {
		case tc.usageOf != "":
			if !errors.As(err, &ue) || !strings.HasPrefix(ue.Usage, tc.usageOf+" ") && ue.Usage != tc.usageOf {
				t.Errorf("%q: %v, want a usage error of %s", tc.line, err, tc.usageOf)
			}
		case tc.err != nil:
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: %v, want %v", tc.line, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.line, err)
		case got.Name != tc.want.Name || strings.Join(got.Args, "|") != strings.Join(tc.want.Args, "|") || got.Payload != tc.want.Payload:
			t.Errorf("%q: %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

func TestAddressed(t *testing.T) {
	for _, tc := range []struct {
		line       string
		cmd        string
		forMe, all bool
	}{
		{"status", "status", true, true},
		{"STATUS", "STATUS", true, true},
		{"pricing-1 status", "status", true, false},
		{"PRICING status", "status", true, false},
		{"* members", "members", true, true},
		{"billing-1 status", "", false, false},
		{"hello bots", "", false, false},
		{"", "", false, false},
	} {
		cmd, forMe, all := Addressed(tc.line, "pricing-1", "pricing")
		if cmd != tc.cmd || forMe != tc.forMe || all != tc.all {
			t.Errorf("%q: %q %v %v, want %q %v %v", tc.line, cmd, forMe, all, tc.cmd, tc.forMe, tc.all)
		}
	}
}

// FuzzParse: whatever a person types, Parse does not panic, reads at most
// 1 KiB, and what it accepts is a known command with its arguments'
// counts, arguments without spaces, valid UTF-8.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"help", "status", `req pricing quote {"item":"tea","qty":2}`, "pub t x", "claims t g",
		"state d k", "members x y", "\x00\xff req", "req \u202e a b", strings.Repeat("req ", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(line)
		if err != nil {
			var ue *UsageError
			if !errors.Is(err, ErrUnknown) && !errors.As(err, &ue) {
				t.Fatalf("%q: unexpected error %v", line, err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("%q: an error of %d bytes", line, len(err.Error()))
			}
			return
		}
		sp, ok := lookup(c.Name)
		if !ok {
			t.Fatalf("%q: unknown command %q accepted", line, c.Name)
		}
		if len(c.Args) < sp.min || len(c.Args) > sp.max {
			t.Fatalf("%q: %d arguments for %s", line, len(c.Args), c.Name)
		}
		for _, a := range c.Args {
			if a == "" || strings.ContainsAny(a, " \t") || len(a) > 128 || !utf8.ValidString(a) {
				t.Fatalf("%q: argument %q", line, a)
			}
		}
		if c.Payload != "" && !sp.payload || len(c.Payload) > maxLine || !utf8.ValidString(c.Payload) {
			t.Fatalf("%q: payload %q", line, c.Payload)
		}
		_, _, _ = Addressed(line, "pricing-1", "pricing")
	})
}

package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

func TestMatchTopic(t *testing.T) {
	for _, tc := range []struct {
		pattern, topic string
		want           bool
	}{
		{"orders.*", "orders.created", true},
		{"orders.*", "orders.eu.paid", false},
		{"orders.*", "orders", false},
		{"orders.>", "orders.created", true},
		{"orders.>", "orders.eu.paid", true},
		{"orders.>", "orders", false},
		{"*.created", "orders.created", true},
		{"*.created", "created", false},
		{">", "orders", true},
		{">", "a.b.c", true},
		{">", "_hb", false},
		{"orders.*", "orders._dead", false},
		{"orders.>", "orders.created._dead", false},
		{"*._dead", "jobs._dead", true},
		{"jobs", "jobs", true},
		{"jobs", "jobs2", false},
	} {
		if got := matchTopic(tc.pattern, tc.topic); got != tc.want {
			t.Errorf("matchTopic(%q, %q) = %v, want %v", tc.pattern, tc.topic, got, tc.want)
		}
	}
	for _, bad := range []string{"orders.>.x", "orders.cr*", "orders..*", "a>"} {
		if isPattern(bad) && checkPattern(bad) == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

// TestTailPatterns watches topics by pattern and the whole namespace,
// printing payloads only: topics that exist when tail starts (found in
// heartbeats and LIST) and one that appears later are followed; "*"
// stays within one segment; heartbeats stay out.
func TestTailPatterns(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "pa"}
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service = srv.Addr(), "pa", "shop"
	shop := meshtest.Connect(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nop := func(context.Context, *mesh.Message) error { return nil }
	for _, topic := range []string{"orders.created", "orders.eu.paid"} {
		if _, err := shop.Subscribe(ctx, topic, nop); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a heartbeat announces the subscriptions

	one := startCLI(t, environ, "tail", "orders.*", "--payload", "--rescan", "200ms")
	deep := startCLI(t, environ, "tail", "orders.>", "--payload", "--rescan", "200ms")
	all := startCLI(t, environ, "tail", "--all", "--payload", "--rescan", "200ms")
	for _, b := range []*background{one, deep, all} {
		waitFor(t, "tail", b.errbuf, "watching", 30*time.Second)
	}
	if !strings.Contains(one.errbuf.String(), "matching orders.* (1 found so far)") ||
		!strings.Contains(deep.errbuf.String(), "matching orders.> (2 found so far)") {
		t.Errorf("headers:\n%s%s", one.errbuf, deep.errbuf)
	}

	// A topic that appears while they watch.
	if _, err := shop.Subscribe(ctx, "orders.paid", nop); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*background{one, deep, all} {
		waitFor(t, "tail", b.errbuf, "now watching #pa.orders.paid too", 20*time.Second)
	}
	for _, topic := range []string{"orders.created", "orders.eu.paid", "orders.paid"} {
		if _, err := shop.Publish(ctx, topic, []byte(`{"on":"`+topic+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "tail orders.*", one.out, "orders.paid", 10*time.Second)
	waitFor(t, "tail orders.>", deep.out, "orders.paid", 10*time.Second)
	waitFor(t, "tail --all", all.out, "orders.paid", 10*time.Second)
	for _, tc := range []struct {
		b    *background
		want []string
	}{
		{one, []string{`{"on":"orders.created"}`, `{"on":"orders.paid"}`}},
		{deep, []string{`{"on":"orders.created"}`, `{"on":"orders.eu.paid"}`, `{"on":"orders.paid"}`}},
		{all, []string{`{"on":"orders.created"}`, `{"on":"orders.eu.paid"}`, `{"on":"orders.paid"}`}},
	} {
		time.Sleep(200 * time.Millisecond)
		got := strings.Split(strings.TrimSpace(tc.b.out.String()), "\n")
		if strings.Join(slices.Sorted(slices.Values(got)), "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("payloads:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

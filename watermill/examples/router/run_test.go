package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// TestRun runs the example against a real server: every order is billed
// exactly once across the two instances, the flaky ones after a retry,
// and the two poison orders (an error, a panic) reach the poison queue
// with their reason once the retries are spent.
func TestRun(t *testing.T) {
	srv := ircdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := Run(ctx, Options{Server: srv.Addr(), Namespace: "shop", Orders: 12}, &out); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"billed order-1", "billed order-10-flaky (after a retry)", "billed order-2", "billed order-3",
		"billed order-4", "billed order-5-flaky (after a retry)", "billed order-6", "billed order-7",
		"billed order-8", "billed order-9",
		"poisoned order-bad: card declined",
		`poisoned order-panic: panic occurred: "nil price"`,
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), out.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i])
		}
	}
}

package mesh_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestRequestAnswerRefused: a node that requires signatures asks a service
// that trusts the mesh's keys but was given no key to sign with, so it
// answers unsigned. The request does not end in a bare timeout: it says
// the answer was refused, and why.
func TestRequestAnswerRefused(t *testing.T) {
	srv := ircdtest.Start(t)
	m := meshtest.NewMode(meshtest.HMACRequired)
	strict := m.Config(testConfig(srv, "strict"))
	lax := testConfig(srv, "lax")
	lax.Keys = m.Keys() // verifies the request, cannot sign the answer
	nodes := connectAll(t, lax, strict)
	responder, asker := nodes[0], nodes[1]
	if err := responder.Handle("echo", func(_ context.Context, r *mesh.Request) ([]byte, error) { return r.Payload, nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The lax node's heartbeats are refused too: it is only present.
	deadline := time.Now().Add(5 * time.Second)
	for len(asker.Present("lax")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	rctx, rcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer rcancel()
	_, err := asker.Request(rctx, "lax", "echo", []byte("hi"))
	if !errors.Is(err, mesh.ErrAnswerRefused) || !errors.Is(err, envelope.ErrUnsigned) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request answered unsigned: %v, want ErrAnswerRefused wrapping ErrUnsigned", err)
	}
	if !strings.Contains(err.Error(), responder.Nick()) {
		t.Errorf("the error does not name the instance asked: %v", err)
	}
}

package mesh_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// A node that asks its own service, with no other instance, is answered
// by its own handler: the answer, or the handler's error as a
// *RemoteError with its code (no line to itself, which would only come
// back as its own echo).
func TestRequestSelf(t *testing.T) {
	srv := ircdtest.Start(t)
	n := connect(t, testConfig(srv, "upper"))
	if err := n.Handle("up", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		if len(r.Payload) == 0 {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "empty")
		}
		return []byte(strings.ToUpper(string(r.Payload))), nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitFor(ctx, "upper"); err != nil {
		t.Fatal(err)
	}
	out, err := n.Request(ctx, "upper", "up", []byte("tea"))
	if err != nil || string(out) != "TEA" {
		t.Fatalf("self request: %q, %v", out, err)
	}
	_, err = n.Request(ctx, "upper", "up", nil)
	var re *mesh.RemoteError
	if !errors.As(err, &re) || re.Code != mesh.CodeBadRequest || re.Service != "upper" || re.Instance != n.Instance() {
		t.Fatalf("self request error: %v", err)
	}
	if _, err = n.Request(ctx, "upper", "down", []byte("x")); !errors.As(err, &re) || re.Code != mesh.CodeNoHandler {
		t.Fatalf("no handler: %v", err)
	}
	if s := n.Stats(); s.RequestsServed != 2 || s.LinesOut == 0 {
		t.Errorf("stats: served %d", s.RequestsServed)
	}
}

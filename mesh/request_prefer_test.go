package mesh_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestRequestPrefer: a request with Prefer goes to the named instance,
// whatever its key picks, while that instance is live; once it is gone
// the request goes where its key sends it.
func TestRequestPrefer(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "kv"), testConfig(srv, "kv"), testConfig(srv, "client"))
	for _, n := range nodes[:2] {
		id := n.Service() + "/" + n.Instance()
		n.Handle("who", func(context.Context, *mesh.Request) ([]byte, error) { return []byte(id), nil })
	}
	client := nodes[2]
	waitPresent(t, client, "kv", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ask := func(opts ...mesh.RequestOption) string {
		t.Helper()
		out, err := client.Request(ctx, "kv", "who", nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	byKey := ask(mesh.WithKey("k"))
	other := nodes[0]
	if other.Service()+"/"+other.Instance() == byKey {
		other = nodes[1]
	}
	otherID := other.Service() + "/" + other.Instance()
	for range 5 {
		if got := ask(mesh.WithKey("k"), mesh.Prefer(otherID)); got != otherID {
			t.Fatalf("preferring %s, the request went to %s", otherID, got)
		}
	}
	if got := ask(mesh.WithKey("k")); got != byKey {
		t.Fatalf("without a preference the key's instance %s should answer, got %s", byKey, got)
	}
	if err := other.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, client, "kv", 1)
	if got := ask(mesh.WithKey("k"), mesh.Prefer(otherID)); got != byKey {
		t.Fatalf("with the preferred instance gone, %s answered, want %s", got, byKey)
	}
}

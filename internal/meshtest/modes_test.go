package meshtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestModes: in each mode two services exchange an event; in the signed
// modes a node of the same mesh without its keys is refused.
func TestModes(t *testing.T) {
	srv := ircdtest.Start(t)
	meshtest.ForEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cfg := func(service string) mesh.Config {
			c := mesh.DefaultConfig()
			c.Server, c.Namespace, c.Service = srv.Addr(), "modes"+m.Name[:3], service
			return m.Config(c)
		}
		stranger := mesh.DefaultConfig()
		stranger.Server, stranger.Namespace, stranger.Service = srv.Addr(), "modes"+m.Name[:3], "stranger"
		nodes := meshtest.ConnectAll(t, cfg("reader"), cfg("writer"), stranger)
		got := make(chan string, 10)
		if _, err := nodes[0].Subscribe(ctx, "t", func(_ context.Context, msg *mesh.Message) error {
			got <- msg.Sender.Service
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := nodes[2].Publish(ctx, "t", []byte("from a stranger")); err != nil {
			t.Fatal(err)
		}
		if _, err := nodes[1].Publish(ctx, "t", []byte("from the mesh")); err != nil {
			t.Fatal(err)
		}
		var from []string
		for len(from) < 1 || (len(from) < 2 && !m.Signed()) {
			select {
			case s := <-got:
				from = append(from, s)
			case <-ctx.Done():
				t.Fatalf("got events from %v", from)
			}
		}
		select {
		case s := <-got:
			from = append(from, s)
		case <-time.After(300 * time.Millisecond):
		}
		want := 2
		if m.RequireSigned() {
			want = 1 // the stranger's unsigned event is refused
		}
		if len(from) != want {
			t.Fatalf("events from %v, want %d", from, want)
		}
	})
}

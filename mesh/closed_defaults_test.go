package mesh_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// warnings collects the warnings a node logs.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, r.Message)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) count(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// TestSecureDefaults (docs/PROTOCOL.md §4.4): running unsigned is a
// visible choice. A node without keys warns once at start that anyone
// who takes a service's nick can speak for it, unless AllowUnsigned says
// it is intended; a node that signs and has the mesh's keys requires
// signatures (an unsigned event from a stranger is refused) without being
// told; one that signs without keys to check with is refused at once.
func TestSecureDefaults(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	key := make([]byte, 32)
	keys := envelope.NewKeyring()
	keys.AddHMAC("mesh", key)
	logged := func(cfg mesh.Config) (mesh.Config, *warnings) {
		w := &warnings{}
		cfg.Namespace, cfg.Logger = "sd", slog.New(w)
		return cfg, w
	}
	open, openW := logged(testConfig(srv, "open"))
	quiet, quietW := logged(testConfig(srv, "quiet"))
	quiet.AllowUnsigned = true
	signed, signedW := logged(testConfig(srv, "signed"))
	signed.Signer, signed.Keys = envelope.NewHMACSigner("mesh", key), keys
	peer := signed
	peer.Service, peer.Logger = "peer", nil
	nodes := connectAll(t, open, quiet, signed, peer)
	openNode, signedNode, peerNode := nodes[0], nodes[2], nodes[3]

	if n := openW.count("runs unsigned"); n != 1 {
		t.Errorf("a node without keys warned %d times that it runs unsigned (%q); want once", n, openW.msgs)
	}
	if n := quietW.count("unsigned"); n != 0 {
		t.Errorf("a node with AllowUnsigned warned: %q", quietW.msgs)
	}
	if n := signedW.count("unsigned"); n != 0 {
		t.Errorf("a signing node with the mesh's keys warned: %q", signedW.msgs)
	}
	// A node that signs without keys could check neither the others'
	// signatures nor its own echoes (no publish would be confirmed).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	blind := testConfig(srv, "blind")
	blind.Signer = envelope.NewHMACSigner("mesh", key)
	if n, err := mesh.Connect(ctx, blind); !errors.Is(err, mesh.ErrInvalidConfig) || !strings.Contains(err.Error(), "needs Keys") {
		if n != nil {
			_ = n.Close(ctx)
		}
		t.Errorf("a signing node without Keys: %v; want ErrInvalidConfig", err)
	}

	// The signing node requires signatures: the open node's unsigned
	// event is refused, a signed one taken.
	got := newSeen()
	if _, err := signedNode.Subscribe(ctx, "orders", got.handle); err != nil {
		t.Fatal(err)
	}
	unsigned, err := openNode.Publish(ctx, "orders", []byte("unsigned"))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := peerNode.Publish(ctx, "orders", []byte("signed"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "the signed event", func() bool { return got.has(ok.ID) })
	waitUntil(t, 5*time.Second, "the unsigned event refused", func() bool { return signedNode.Stats().RejectedBy["unsigned"] > 0 })
	if got.has(unsigned.ID) {
		t.Error("a signing node with keys took an unsigned event")
	}
}

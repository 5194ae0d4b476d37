package mesh_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// rotNode is a node of the rotation test with keys of its own: its
// keyring and Crypter are what a deployment would reload.
type rotNode struct {
	cfg  mesh.Config
	keys *envelope.Keyring
	c    *envelope.Crypter
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestKeyRotationUnderLoad (docs/KEYS.md): while a shop publishes events
// and an audit asks the shop for quotes, without pause, the mesh payload
// key and the shop's X25519 key are rotated the way the docs say —
// receivers trust the new key first, senders switch, the old key goes
// once nothing in flight uses it. Nothing is lost: every event arrives
// once, every request is answered, and lines carried both the old and the
// new key.
func TestKeyRotationUnderLoad(t *testing.T) {
	srv := ircdtest.Start(t)
	hmacKey := randomBytes(32)
	meshKey1, meshKey2 := randomBytes(32), randomBytes(32)
	shopDH1, _ := ecdh.X25519().GenerateKey(rand.Reader)
	shopDH2, _ := ecdh.X25519().GenerateKey(rand.Reader)
	auditDH, _ := ecdh.X25519().GenerateKey(rand.Reader)
	node := func(service string, own *ecdh.PrivateKey, ownID string) *rotNode {
		keys := envelope.NewKeyring()
		keys.AddHMAC("h", hmacKey)
		must(t, keys.AddPayloadKey("m1", meshKey1))
		must(t, keys.AddX25519Public("shop-x1", "shop", shopDH1.PublicKey().Bytes()))
		must(t, keys.AddX25519Public("audit-x1", "audit", auditDH.PublicKey().Bytes()))
		c := envelope.NewCrypter(service, keys)
		must(t, c.UseMeshKey("m1"))
		must(t, c.AddX25519(ownID, own))
		cfg := testConfig(srv, service)
		cfg.Namespace, cfg.Signer, cfg.Keys, cfg.Crypter, cfg.RequireEncrypted = "rot", envelope.NewHMACSigner("h", hmacKey), keys, c, true
		return &rotNode{cfg: cfg, keys: keys, c: c}
	}
	shopN, auditN := node("shop", shopDH1, "shop-x1"), node("audit", auditDH, "audit-x1")
	nodes := connectAll(t, shopN.cfg, auditN.cfg)
	shop, audit := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	watcher := dialRaw(t, srv, "keywatch")
	watcher.send("JOIN #rot.orders")
	watcher.waitFor(" 366 ")
	lines := watcher.watch(t)

	got := newSeen()
	if _, err := audit.Subscribe(ctx, "orders", got.handle); err != nil {
		t.Fatal(err)
	}
	shop.Handle("quote", func(_ context.Context, r *mesh.Request) ([]byte, error) { return r.Payload, nil })
	waitPresent(t, audit, "shop", 1)

	// The load: events and requests, until stop.
	stop := make(chan struct{})
	var (
		wg        sync.WaitGroup
		published []envelope.ID
		answered  atomic.Int64
		failed    atomic.Int64
	)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ack, err := shop.Publish(ctx, "orders", fmt.Appendf(nil, "event-%d", i))
			if err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			published = append(published, ack.ID)
		}
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			want := fmt.Sprintf("quote-%d", i)
			out, err := audit.Request(ctx, "shop", "quote", []byte(want))
			if err != nil || string(out) != want {
				failed.Add(1)
				t.Errorf("request %d: %q %v", i, out, err)
				continue
			}
			answered.Add(1)
		}
	})
	step := func(what string) {
		time.Sleep(700 * time.Millisecond) // load goes on meanwhile
		t.Logf("%s (%d events delivered, %d requests answered)", what, len(got.all()), answered.Load())
	}

	step("under the first keys")
	// 1. Every receiver trusts the new keys: the new mesh key; the shop
	//    holds its new X25519 private key (it opens DMs to either, and
	//    still encrypts with the old one).
	must(t, auditN.keys.AddPayloadKey("m2", meshKey2))
	must(t, shopN.keys.AddPayloadKey("m2", meshKey2))
	must(t, shopN.c.AddX25519("shop-x2", shopDH2))
	step("receivers trust the new keys")
	// 2. The others learn the shop's new public key: the audit encrypts
	//    to it, and will open what the shop sends with it.
	must(t, auditN.keys.AddX25519Public("shop-x2", "shop", shopDH2.PublicKey().Bytes()))
	step("the new public key is known")
	// 3. The shop switches: the new mesh key, its new X25519 key.
	must(t, shopN.c.UseMeshKey("m2"))
	must(t, shopN.c.UseX25519("shop-x2"))
	step("senders use the new keys")
	// 4. The old keys go.
	for _, n := range []*rotNode{shopN, auditN} {
		n.keys.Remove("m1")
		n.keys.Remove("shop-x1")
	}
	shopN.c.RemoveX25519("shop-x1")
	step("old keys removed")
	close(stop)
	wg.Wait()

	// Nothing lost: every event once, every request answered.
	last := published[len(published)-1]
	waitUntil(t, 20*time.Second, "the last event", func() bool { return got.has(last) })
	for i, id := range published {
		if n := got.count(id); n != 1 {
			t.Errorf("event %d (%s) delivered %d times", i, id.Short(), n)
		}
	}
	if failed.Load() != 0 || answered.Load() == 0 {
		t.Errorf("requests: %d answered, %d failed", answered.Load(), failed.Load())
	}
	if st := audit.Stats(); st.Rejected != 0 {
		t.Errorf("the audit rejected %d lines: %v", st.Rejected, st.RejectedBy)
	}
	// The channel carried both keys.
	byKey := map[string]int{}
	for _, msg := range lines.all() {
		f, isMesh, err := envelope.ParseLine(msg.AllTags(), msg.Params[len(msg.Params)-1])
		if !isMesh || err != nil || f.Count != 1 {
			continue
		}
		data, _ := base64.RawURLEncoding.DecodeString(f.Data)
		parts, _ := envelope.SplitBatch(data)
		for _, p := range parts {
			if env, err := envelope.Unmarshal(p, 0); err == nil && env.Crypt != nil {
				byKey[env.Crypt.KeyID]++
			}
		}
	}
	if byKey["m1"] == 0 || byKey["m2"] == 0 {
		t.Errorf("events by key %v: want both m1 and m2", byKey)
	}
	t.Logf("%d events (by key %v), %d requests, rotated with nothing lost", len(published), byKey, answered.Load())
	if strings.Contains(fmt.Sprint(byKey), "shop-x") {
		t.Errorf("a channel event used a DM key: %v", byKey)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

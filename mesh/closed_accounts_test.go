package mesh_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// closedAccounts are the accounts of the closed-mesh tests' server: the
// mesh's services, and someone else's.
var closedAccounts = map[string]string{
	"shop":    "shop-pass-1",
	"audit":   "audit-pass-2",
	"late":    "late-pass-3",
	"mallory": "mallory-pass-4",
}

// accountServer starts the MESH_IRCD server with closedAccounts. ngIRCd
// has no accounts (no SASL): these tests run on InspIRCd (with
// atheme-services) and ergo.
func accountServer(t *testing.T) *ircd.Server {
	t.Helper()
	if spec := ircdtest.Spec(t); !ircd.HasAccounts(spec.Kind) {
		t.Skipf("%s=%s has no accounts (no SASL): account binding and invite-only meshes need a server with accounts (InspIRCd with atheme-services, ergo)", ircd.EnvVar, spec)
	}
	return ircdtest.StartWithAccounts(t, closedAccounts)
}

// TestClosedMeshAccounts runs the account tests against one server.
func TestClosedMeshAccounts(t *testing.T) {
	t.Parallel()
	srv := accountServer(t)
	t.Run("Binding", func(t *testing.T) { t.Parallel(); testAccountBinding(t, srv) })
	t.Run("InviteOnly", func(t *testing.T) { t.Parallel(); testInviteOnly(t, srv) })
}

// loggedIn is a config of service logged in to account.
func loggedIn(srv *ircd.Server, ns, service, account string) mesh.Config {
	c := testConfig(srv, service)
	c.Namespace, c.AllowUnsigned = ns, true
	if account != "" {
		c.SASLUser, c.SASLPassword = account, closedAccounts[account]
	}
	return c
}

// testAccountBinding (docs/PROTOCOL.md §4.4): an unsigned mesh whose
// services are bound to their accounts. A node of the shop service logged
// in to another account, and a raw client holding a shop nick without
// logging in (also with an account tag of its own making), are refused —
// their events, their heartbeats — while the shop's own lines, events and
// requests, go through: identity from the server, with no keys to
// distribute.
func testAccountBinding(t *testing.T, srv *ircd.Server) {
	bind := &envelope.AccountBinding{SameName: true}
	shopCfg := loggedIn(srv, "ab", "shop", "shop")
	shopCfg.Instance, shopCfg.Accounts = "1", bind
	auditCfg := loggedIn(srv, "ab", "audit", "audit")
	auditCfg.Accounts = bind
	impostor := loggedIn(srv, "ab", "shop", "mallory") // its own config binds nothing
	impostor.Instance = "2"
	nodes := connectAll(t, shopCfg, auditCfg, impostor)
	shop, audit, evil := nodes[0], nodes[1], nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := newSeen()
	if _, err := audit.Subscribe(ctx, "orders", got.handle); err != nil {
		t.Fatal(err)
	}
	shop.Handle("price", func(_ context.Context, r *mesh.Request) ([]byte, error) { return []byte("42"), nil })

	if _, err := evil.Publish(ctx, "orders", []byte("from mallory's account")); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, srv, "shop-3")
	raw.send("JOIN #ab.orders")
	raw.waitFor(" 366 ")
	unbound := envelope.New(envelope.KindEvent, envelope.Sender{Service: "shop", Instance: "3", Incarnation: 1}, "orders", []byte("not logged in"), time.Now())
	sealed, _ := envelope.Seal(unbound, nil)
	tags := ircdtest.Probe(t, srv).Has("message-tags")
	raw.sendEnvelope(t, "#ab.orders", sealed, tags)
	// A client cannot give itself an account: the server keeps only the
	// client-only tags (+...) of what a client sends.
	forged := envelope.New(envelope.KindEvent, envelope.Sender{Service: "shop", Instance: "3", Incarnation: 1}, "orders", []byte("forged account tag"), time.Now())
	sealed, _ = envelope.Seal(forged, nil)
	raw.sendEnvelopeTagged(t, "#ab.orders", sealed, tags, "account=shop")
	raw.sync(t)
	ack, err := shop.Publish(ctx, "orders", []byte("from the shop"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the shop's event", func() bool { return got.has(ack.ID) })
	time.Sleep(200 * time.Millisecond)
	for _, m := range got.all() {
		if m.ID != ack.ID {
			t.Errorf("delivered %q from %s", m.Payload, m.From)
		}
	}
	if r := audit.Stats().RejectedBy["wrong-sender"]; r < 3 {
		t.Errorf("wrong-sender rejections %d, want at least 3 (%v)", r, audit.Stats().RejectedBy)
	}
	// Requests to the shop's own instance are answered; the impostor's
	// heartbeats were refused, so it is no member to ask.
	// (Its beats went out when it connected, before the shop's: once the
	// shop is a member, the impostor would be one too.)
	waitUntil(t, 10*time.Second, "the shop's instance a member", func() bool {
		return slices.ContainsFunc(audit.Members("shop"), func(m heartbeat.Member) bool { return strings.HasSuffix(m.Nick, "-1") })
	})
	if members := audit.Members("shop"); len(members) != 1 {
		t.Errorf("shop members seen by audit: %+v; want only shop-1", members)
	}
	if out, err := audit.Request(ctx, "shop", "price", nil); err != nil || string(out) != "42" {
		t.Fatalf("request to the shop: %q %v", out, err)
	}
	// A node whose own account is not its service's is refused before it
	// connects (or, not logged in, once the server says so): every other
	// node would refuse its lines.
	bad := loggedIn(srv, "ab", "shop", "mallory")
	bad.Accounts = bind
	if _, err := mesh.Connect(ctx, bad); !errors.Is(err, mesh.ErrInvalidConfig) {
		t.Errorf("a bound node logging in to another account: %v", err)
	}
	anon := loggedIn(srv, "ab", "shop", "")
	anon.Accounts = bind
	if _, err := mesh.Connect(ctx, anon); !errors.Is(err, mesh.ErrInvalidConfig) || !strings.Contains(err.Error(), "not logged in") {
		t.Errorf("a bound node not logged in: %v", err)
	}
}

// testInviteOnly (docs/PROTOCOL.md §4.7): a keyed, invite-only mesh. The
// first member sets +i, +k and an invite exception (+I) per account of
// the mesh on every channel it creates; members logged in to those
// accounts join, and the mesh works; an outsider — logged in to another
// account, even with the key — cannot join (473), read or post (404).
// After the first member left, a member joins still, an outsider not. On
// ergo, which has no account extban, the first member refuses to start.
func testInviteOnly(t *testing.T, srv *ircd.Server) {
	bind := &envelope.AccountBinding{Accounts: map[string]string{"shop": "shop", "audit": "audit", "late": "late"}}
	cfg := func(service string) mesh.Config {
		c := loggedIn(srv, "io", service, service)
		c.Accounts, c.InviteOnly, c.ChannelKey = bind, true, "io-door-3"
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if ircdtest.Spec(t).Kind == ircd.Ergo {
		// ergo matches invite exceptions against nick!user@host only
		// (EXTBAN=,m): the node refuses to close channels it could not
		// open to the mesh's accounts, at once and before any +i.
		n, err := mesh.Connect(ctx, cfg("shop"))
		if n != nil {
			_ = n.Close(ctx)
		}
		if !errors.Is(err, mesh.ErrInvalidConfig) || !strings.Contains(err.Error(), "name no accounts") {
			t.Errorf("InviteOnly on ergo: %v; want ErrInvalidConfig naming the missing account extban", err)
		}
		return
	}
	first := connect(t, cfg("shop"))
	if _, err := first.Publish(ctx, "orders", []byte("first")); err != nil {
		t.Fatal(err)
	}
	audit := connect(t, cfg("audit"))
	got := newSeen()
	if _, err := audit.Subscribe(ctx, "orders", got.handle); err != nil {
		t.Fatal(err)
	}
	ack, err := first.Publish(ctx, "orders", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the event", func() bool { return got.has(ack.ID) })

	// An outsider with an account (not the mesh's) and even the key.
	out := dialRaw(t, srv, "outsider")
	out.send("PRIVMSG NickServ :IDENTIFY mallory " + closedAccounts["mallory"])
	time.Sleep(500 * time.Millisecond)
	for _, ch := range []string{"#io.orders", "#io._hb"} {
		out.send("JOIN " + ch + " io-door-3")
		out.expectNumeric(t, "473", ch)
	}
	out.send("PRIVMSG #io.orders :~m1 event orders 00000000 AAAA")
	out.expectNumeric(t, "404", "#io.orders")

	// The invite exceptions name exactly the mesh's accounts.
	masks := inviteList(t, out, srv, "#io.orders")
	for _, acct := range []string{"audit", "late", "shop"} {
		if !slices.ContainsFunc(masks, func(m string) bool { return strings.HasSuffix(strings.ToLower(m), ":"+acct) }) {
			t.Errorf("no invite exception for %s in %v", acct, masks)
		}
	}

	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	_ = first.Close(cctx)
	ccancel()
	late := connect(t, cfg("late"))
	lack, err := late.Publish(ctx, "orders", []byte("late"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the late member's event", func() bool { return got.has(lack.ID) })
	out.send("JOIN #io.orders io-door-3")
	out.expectNumeric(t, "473", "#io.orders")
}

// inviteList reads channel's +I list as seen by a member (a node's view
// is not exported): a mesh member's raw connection logged in to audit.
func inviteList(t *testing.T, _ *rawClient, srv *ircd.Server, channel string) []string {
	t.Helper()
	c := dialRaw(t, srv, "reader")
	c.send("PRIVMSG NickServ :IDENTIFY audit " + closedAccounts["audit"])
	time.Sleep(500 * time.Millisecond)
	c.send("JOIN " + channel + " io-door-3")
	c.waitFor(" 366 ")
	c.send("MODE " + channel + " I")
	var masks []string
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the invite list: %v", err)
		}
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == "346" {
			masks = append(masks, f[4])
		}
		if len(f) > 1 && f[1] == "347" {
			return masks
		}
	}
}

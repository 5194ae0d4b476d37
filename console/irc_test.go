//go:build unix

package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/console"
	"github.com/meshbot/meshbot/internal/iitest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

const ns = "ct"

func nodeConfig(addr, service string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service, cfg.Instance = addr, ns, service, "1"
	cfg.KeepAlive, cfg.KeepAliveTimeout = 500*time.Millisecond, 2*time.Second
	cfg.AllowUnsigned = true
	return cfg
}

// quote prices {"item":"tea","qty":2}: pricing's method in these tests.
func quote(_ context.Context, r *mesh.Request) ([]byte, error) {
	var o struct {
		Item  string `json:"item"`
		Qty   int    `json:"qty"`
		Total string `json:"total,omitempty"`
	}
	if err := json.Unmarshal(r.Payload, &o); err != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "not an order: %v", err)
	}
	price, ok := map[string]int{"tea": 350, "coffee": 420}[o.Item]
	if !ok {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "we do not sell %q", o.Item)
	}
	o.Total = fmt.Sprintf("%d.%02d", price*o.Qty/100, price*o.Qty%100)
	return json.Marshal(o)
}

// handled records the events a subscription handled, by payload.
type handled struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (h *handled) handle(_ context.Context, m *mesh.Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[string(m.Payload)] = true
	return nil
}

func (h *handled) has(p string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[p]
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// containsLine reports whether a line of ls contains every part.
func containsLine(ls []string, parts ...string) bool {
	for _, l := range ls {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// answer has person say text to nick and returns the lines of the answer
// (ii writes a NOTICE as `-!- "TEXT")`), once one contains want.
func answer(t *testing.T, person *iitest.Client, nick, text, want string) []string {
	t.Helper()
	out := strings.ToLower(nick) + "/out"
	before := len(person.Lines(out))
	person.Say(nick, text)
	ls := person.WaitLines(out, 20*time.Second, fmt.Sprintf("answer of %s to %q containing %q", nick, text, want), func(ls []string) bool {
		return len(ls) > before && containsLine(ls[before:], want)
	})
	var got []string
	for _, l := range ls[before:] {
		if i := strings.Index(l, `-!- "`); i >= 0 {
			got = append(got, strings.TrimSuffix(l[i+len(`-!- "`):], `")`))
		}
	}
	return got
}

// TestConsoleFromIRCClient: a person with a real IRC client (ii) reads the
// mesh and talks to it, as docs/CONSOLE.md says: event lines carry the
// payload, claims and acks name their event; status, members and methods
// answer anyone; req answers a channel operator and refuses a stranger;
// CTCP VERSION answers; +m pauses a topic (a publish fails clearly, or
// waits with WaitWhilePaused; -m lets them through); a KICKed service
// stops receiving the topic and shows as kicked in members, until an
// operator's INVITE (an INVITE from anyone else does not bring it back).
func TestConsoleFromIRCClient(t *testing.T) {
	srv := ircdtest.Start(t)
	hb, topic := mesh.HeartbeatChannel(ns), "orders.created"
	channel := mesh.Channel(ns, topic)

	// alice makes the mesh's channels before the bots: their operator.
	alice := iitest.Start(t, srv, "alice")
	eve := iitest.Start(t, srv, "eve")
	alice.Join(hb, 15*time.Second)
	alice.Join(channel, 5*time.Second)

	pricingCfg := nodeConfig(srv.Addr(), "pricing")
	patientCfg := nodeConfig(srv.Addr(), "orders") // waits while a topic is paused
	patientCfg.Instance, patientCfg.WaitWhilePaused = "2", true
	nodes := meshtest.ConnectAll(t, nodeConfig(srv.Addr(), "orders"), pricingCfg, nodeConfig(srv.Addr(), "billing"), patientCfg)
	orders, pricing, billing, patient := nodes[0], nodes[1], nodes[2], nodes[3]
	for _, n := range nodes {
		c := console.Attach(n, console.Config{})
		t.Cleanup(c.Stop)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pricing.Handle("quote", quote); err != nil {
		t.Fatal(err)
	}
	got := &handled{seen: map[string]bool{}}
	if _, err := billing.SubscribeAnycast(ctx, topic, got.handle, mesh.Group("billing")); err != nil {
		t.Fatal(err)
	}
	if err := orders.WaitFor(ctx, "pricing", "billing"); err != nil {
		t.Fatal(err)
	}
	eve.Join(hb, 10*time.Second)
	eve.Join(channel, 5*time.Second)

	// (1) Legible lines: the event's payload; the claim and the ack name
	// the event they refer to, from the nick that holds it.
	const order = `{"order":1,"item":"tea"}`
	ack, err := orders.Publish(ctx, topic, []byte(order), mesh.WithContentType("application/json"))
	if err != nil {
		t.Fatal(err)
	}
	short := ack.ID.Short()
	alice.WaitLines(channel+"/out", 10*time.Second, "the event, its claim and its ack", func(ls []string) bool {
		return containsLine(ls, "<orders-1> ", "event orders.created "+short+" (24 B) "+order) &&
			containsLine(ls, "<billing-1> ", "claim billing ", " for "+short+" (epoch 1, attempt 1, lease 30s)") &&
			containsLine(ls, "<billing-1> ", "ack billing ", " done "+short)
	})
	alice.WaitLines(hb+"/out", 5*time.Second, "a legible heartbeat", func(ls []string) bool {
		return containsLine(ls, "<pricing-1> ", "hb pricing ", "pricing/1 load 0.00", "answers quote")
	})

	// (2) Reading is open: eve asks (once the bots asked about have heard
	// the beats that announce billing's group and pricing's method).
	waitFor(t, 10*time.Second, "the beats announcing billing's group and pricing's method", func() bool {
		subs, methods := false, false
		for _, m := range pricing.Members("billing") {
			subs = subs || len(m.Beat.Subs) == 1
		}
		for _, m := range orders.Members("pricing") {
			methods = methods || len(m.Beat.Methods) == 1
		}
		return subs && methods
	})
	if a := answer(t, eve, "billing-1", "status", "billing-1: service billing"); !containsLine(a, "orders.created: anycast (group billing)") {
		t.Errorf("status: %q", a)
	}
	if a := answer(t, eve, "pricing-1", "members", "live instances"); !containsLine(a, "billing-1 alive", "subscribes billing:orders.created") || !containsLine(a, "pricing-1 alive", "answers quote") {
		t.Errorf("members: %q", a)
	}
	answer(t, eve, "orders-1", "methods", "the mesh's services answer pricing: quote")
	answer(t, eve, "pricing-1", "methods", "pricing-1 answers: quote")
	answer(t, eve, "pricing-1", "\x01VERSION\x01", "VERSION meshbot")

	// (3) Acting: a channel operator of the mesh's channels may, a
	// stranger may not.
	answer(t, alice, "billing-1", `req pricing quote {"item":"tea","qty":2}`, `pricing answered quote in `)
	answer(t, alice, "billing-1", `req pricing quote {"item":"tea","qty":2}`, `{"item":"tea","qty":2,"total":"7.00"}`)
	answer(t, alice, "pricing-1", `quote {"item":"unicorn","qty":1}`, `pricing/1 answered quote with error 400: we do not sell "unicorn"`)
	answer(t, eve, "billing-1", `req pricing quote {"item":"tea","qty":2}`, "refused: req acts on the mesh")

	// (4) +m pauses the topic: a publish fails with a clear error, or
	// waits with WaitWhilePaused; -m lets them through.
	if _, err := patient.Publish(ctx, topic, []byte(`{"order":"before"}`)); err != nil { // orders-2 is in the channel
		t.Fatal(err)
	}
	alice.Write(channel+"/in", "/MODE "+channel+" +m", 5*time.Second)
	waitFor(t, 5*time.Second, "orders-1 and orders-2 to see the topic paused", func() bool { return len(orders.Paused()) == 1 && len(patient.Paused()) == 1 })
	_, err = orders.Publish(ctx, topic, []byte(`{"order":2}`))
	if !errors.Is(err, mesh.ErrPaused) || !strings.Contains(err.Error(), "+m by alice") {
		t.Fatalf("publish to a paused topic: %v", err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := patient.Publish(ctx, topic, []byte(`{"order":"waited"}`))
		waited <- err
	}()
	answer(t, eve, "billing-1", "status", "PAUSED (+m by alice")
	select {
	case err := <-waited:
		t.Fatalf("a publish with WaitWhilePaused returned while the topic was paused: %v", err)
	default:
	}
	alice.Write(channel+"/in", "/MODE "+channel+" -m", 5*time.Second)
	waitFor(t, 5*time.Second, "orders-1 to see the topic resumed", func() bool { return len(orders.Paused()) == 0 })
	if _, err := orders.Publish(ctx, topic, []byte(`{"order":3}`)); err != nil {
		t.Fatalf("publish after -m: %v", err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("the publish that waited for -m: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publish that waited for -m did not return within 10 s of it")
	}
	waitFor(t, 10*time.Second, "billing to handle order 3 and the one that waited", func() bool {
		return got.has(`{"order":3}`) && got.has(`{"order":"waited"}`)
	})

	// (5) A KICKed service stops receiving the topic and shows as such.
	alice.Write(channel+"/in", "/KICK "+channel+" billing-1 :maintenance", 5*time.Second)
	waitFor(t, 5*time.Second, "billing-1 to know it was kicked", func() bool { return len(billing.Kicks()) == 1 })
	waitFor(t, 10*time.Second, "pricing-1 to hear billing-1's beat announcing the kick", func() bool {
		for _, m := range pricing.Members("billing") {
			if len(m.Beat.Kicked) == 1 {
				return true
			}
		}
		return false
	})
	answer(t, eve, "pricing-1", "members billing", "KICKED from orders.created")
	if _, err := orders.Publish(ctx, topic, []byte(`{"order":4}`)); err != nil {
		t.Fatal(err)
	}
	// eve, no operator, cannot undo the kick: on a channel without +i
	// any member may INVITE (ngIRCd, ergo; InspIRCd refuses her). Her
	// status question reaches billing-1 after her INVITE.
	eve.Write("in", "/INVITE billing-1 "+channel, 5*time.Second)
	answer(t, eve, "billing-1", "status", "KICKED by alice")
	time.Sleep(1500 * time.Millisecond)
	if got.has(`{"order":4}`) {
		t.Error("a kicked service received the topic")
	}
	if len(billing.Kicks()) != 1 {
		t.Error("an INVITE from someone who is no operator brought a kicked service back")
	}
	if ls := alice.Lines(channel + "/out"); containsLine(ls, "billing-1", "has joined") && strings.Count(strings.Join(ls, "\n"), "billing-1(") > 1 {
		t.Error("billing-1 joined again after the kick")
	}
	if _, err := billing.Publish(ctx, topic, []byte("x")); !errors.Is(err, mesh.ErrKicked) {
		t.Errorf("a kicked node's publish: %v", err)
	}
	// An INVITE brings it back.
	alice.Write("in", "/INVITE billing-1 "+channel, 5*time.Second)
	waitFor(t, 10*time.Second, "billing-1 back in the topic", func() bool { return len(billing.Kicks()) == 0 })
	waitFor(t, 10*time.Second, "billing-1 in its group again", func() bool {
		for _, m := range orders.Members("billing") {
			if len(m.Beat.Subs) == 1 && len(m.Beat.Kicked) == 0 {
				return true
			}
		}
		return false
	})
	if _, err := orders.Publish(ctx, topic, []byte(`{"order":5}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "billing to handle order 5", func() bool { return got.has(`{"order":5}`) })

	// (6) '!' in a channel: every bot answers in one line.
	eve.Write(hb+"/in", "!status", 5*time.Second)
	for _, nick := range []string{"orders-1", "pricing-1", "billing-1"} {
		eve.WaitLines(nick+"/out", 10*time.Second, "!status from "+nick, func(ls []string) bool {
			return containsLine(ls, `-!- "`+nick+": service ")
		})
	}
	bad := regexp.MustCompile(`^\d+ <(orders|pricing|billing)-1> [^m~]`) // bots say nothing but mesh lines in channels
	for _, ch := range []string{hb, channel} {
		for _, l := range alice.Lines(ch + "/out") {
			if bad.MatchString(l) {
				t.Errorf("%s: a bot said %q", ch, l)
			}
		}
	}
}

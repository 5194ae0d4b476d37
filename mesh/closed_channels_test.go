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

// expectNumeric reads the raw client's lines until one is the numeric num
// about channel, failing on the wrong outcome first (a JOIN echo).
func (c *rawClient) expectNumeric(t *testing.T, num, channel string) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %s about %s: %v", num, channel, err)
		}
		if strings.HasPrefix(line, "PING ") {
			c.send("PONG " + line[5:])
			continue
		}
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == num && strings.EqualFold(f[3], channel) {
			return
		}
		if len(f) > 2 && f[1] == "JOIN" && strings.EqualFold(strings.TrimPrefix(f[2], ":"), channel) {
			t.Fatalf("the outsider joined %s: %s", channel, line)
		}
	}
}

// TestChannelKey (docs/PROTOCOL.md §4.7): a mesh with a channel key. The
// first member sets +k on every channel it creates; members join with the
// key and the mesh works; an outsider cannot join (475), so cannot read,
// and cannot post from outside (404); a node with the wrong key, or none,
// fails Connect at once with a JoinError. After the first member left,
// the channels are still closed and members still join.
func TestChannelKey(t *testing.T) {
	srv := ircdtest.Start(t)
	cfg := func(service string) mesh.Config {
		c := testConfig(srv, service)
		c.Namespace, c.ChannelKey, c.AllowUnsigned = "kc", "mesh-door-7", true
		return c
	}
	first := connect(t, cfg("shop"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := first.Publish(ctx, "orders", []byte("first")); err != nil {
		t.Fatal(err)
	}
	audit := connect(t, cfg("audit"))
	col := newCollector()
	if _, err := audit.Subscribe(ctx, "orders", col.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Publish(ctx, "orders", []byte("one")); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, 1, 10*time.Second)

	out := dialRaw(t, srv, "outsider")
	for _, ch := range []string{"#kc.orders", "#kc._hb"} {
		out.send("JOIN " + ch)
		out.expectNumeric(t, "475", ch)
		out.send("JOIN " + ch + " guessed-key")
		out.expectNumeric(t, "475", ch)
	}
	out.send("PRIVMSG #kc.orders :~m1 event orders 00000000 AAAA")
	out.expectNumeric(t, "404", "#kc.orders")

	for name, key := range map[string]string{"wrong key": "not-the-key", "no key": ""} {
		c := cfg("intruder")
		c.ChannelKey = key
		start := time.Now()
		_, err := mesh.Connect(ctx, c)
		var je *mesh.JoinError
		if !errors.Is(err, mesh.ErrJoinRefused) || !errors.As(err, &je) || je.Numeric != "475" || je.Channel != "#kc._hb" {
			t.Fatalf("%s: Connect: %v, want a JoinError 475 on #kc._hb", name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: Connect failed after %v, not at once", name, d)
		}
	}

	// The first member leaves; the others keep the channels closed and
	// let members in.
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	_ = first.Close(cctx) // Close is safe twice: the test's cleanup closes it again
	ccancel()
	late := connect(t, cfg("late"))
	if _, err := late.Publish(ctx, "orders", []byte("late")); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, 2, 10*time.Second)
	out.send("JOIN #kc.orders")
	out.expectNumeric(t, "475", "#kc.orders")
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, m := range col.got {
		if m.From == "outsider" {
			t.Errorf("delivered a line from the outsider: %q", m.Payload)
		}
	}
}

// TestJoinRefusedAtOnce: every way a server refuses a join is an
// immediate error of Subscribe and Publish naming the channel and the
// reason, never a wait for a confirmation that does not come.
func TestJoinRefusedAtOnce(t *testing.T) {
	srv := ircdtest.Start(t)
	n := connect(t, testConfig(srv, "joiner"))
	person := dialRaw(t, srv, "chanowner")
	cases := []struct {
		topic, mode, numeric string
	}{
		{"keyed", "+k secret", "475"},
		{"invite", "+i", "473"},
		{"full", "+l 1", "471"},
		{"banned", "+b joiner-*!*@*", "474"},
	}
	for _, c := range cases {
		ch := mesh.Channel("t", c.topic)
		person.send("JOIN " + ch)
		person.waitFor(" 366 ")
		person.send("MODE " + ch + " " + c.mode)
		person.waitFor(" MODE ")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, c := range cases {
		for _, op := range []string{"subscribe", "publish"} {
			start := time.Now()
			var err error
			if op == "subscribe" {
				_, err = n.Subscribe(ctx, c.topic, newCollector().handle)
			} else {
				_, err = n.Publish(ctx, c.topic, []byte("x"))
			}
			var je *mesh.JoinError
			if !errors.As(err, &je) || !errors.Is(err, mesh.ErrJoinRefused) || je.Numeric != c.numeric || je.Channel != mesh.Channel("t", c.topic) {
				t.Errorf("%s %s (%s): %v, want a JoinError %s", op, c.topic, c.mode, err, c.numeric)
				continue
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s %s: refused after %v, not at once", op, c.topic, d)
			}
			t.Logf("%s %s: %v", op, c.topic, err)
		}
	}
	// The node still works.
	col := newCollector()
	if _, err := n.Subscribe(ctx, "open", col.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, "open", []byte("fine")); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, 1, 10*time.Second)
}

// TestOpenChannelRefused: in a closed mesh, a channel someone outside the
// mesh created and holds open (no key; the mesh's nodes are no operators)
// is refused with a JoinError after a few checks, and left; a node whose
// heartbeat channel is held open fails Connect.
func TestOpenChannelRefused(t *testing.T) {
	srv := ircdtest.Start(t)
	squat := dialRaw(t, srv, "squatter")
	for _, ch := range []string{"#sq.orders", "#sq2._hb"} {
		squat.send("JOIN " + ch)
		squat.waitFor(" 366 ")
	}
	cfg := func(ns string) mesh.Config {
		c := testConfig(srv, "shop")
		c.Namespace, c.ChannelKey, c.AllowUnsigned = ns, "mesh-door-7", true
		return c
	}
	n := connect(t, cfg("sq"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := n.Subscribe(ctx, "orders", newCollector().handle)
	var je *mesh.JoinError
	if !errors.As(err, &je) || je.Numeric != "" || !strings.Contains(je.Reason, "open to outsiders") {
		t.Fatalf("subscribe to a squatted channel: %v", err)
	}
	if _, err := n.Publish(ctx, "orders", []byte("secret")); !errors.Is(err, mesh.ErrJoinRefused) {
		t.Fatalf("publish to a squatted channel: %v", err)
	}
	if _, err := mesh.Connect(ctx, cfg("sq2")); !errors.Is(err, mesh.ErrJoinRefused) || !strings.Contains(err.Error(), "#sq2._hb") {
		t.Fatalf("Connect with a squatted heartbeat channel: %v", err)
	}
}

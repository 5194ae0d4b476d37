package mesh_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// rawClient is a hand-driven IRC connection for sending hostile lines.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, srv *ircd.Server, nick string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	// Without message-tags negotiated, servers strip the client tags a
	// client sends. (ngIRCd answers NAK; CAP END registers either way.)
	c.send("CAP REQ :message-tags")
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :raw test client")
	c.send("CAP END")
	c.waitFor(" 001 ")
	return c
}

func (c *rawClient) send(line string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", line); err != nil {
		c.t.Fatal(err)
	}
}

// waitFor reads lines until one contains s, answering PINGs.
func (c *rawClient) waitFor(s string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", s, err)
		}
		if strings.HasPrefix(line, "PING ") {
			c.send("PONG " + line[5:])
		}
		if strings.Contains(line, s) {
			return
		}
	}
}

// TestRejectForgedAndMalformed sends forged, malformed, truncated, unsigned
// and replayed mesh lines into a topic between valid events of a signed
// mesh. Every bad line is rejected and counted by reason; every valid event
// is delivered once, in order.
func TestRejectForgedAndMalformed(t *testing.T) {
	srv := ircdtest.Start(t)
	tags := ircdtest.Probe(t, srv).Has("message-tags")
	meshKey := []byte("the mesh key of this test")
	ring := envelope.NewKeyring()
	ring.AddHMAC("k1", meshKey)
	signed := func(service string) mesh.Config {
		cfg := testConfig(srv, service)
		cfg.Signer = envelope.NewHMACSigner("k1", meshKey)
		cfg.Keys = ring
		cfg.RequireSigned = true
		return cfg
	}
	nodes := connectAll(t, signed("orders"), signed("audit"))
	pub, sub := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	col := newCollector()
	if _, err := sub.Subscribe(ctx, "orders", col.handle); err != nil {
		t.Fatal(err)
	}

	// What an attacker or a broken client can produce.
	forge := func(signer envelope.Signer, mutate func(*envelope.Envelope)) envelope.Line {
		e := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "evil", Incarnation: 1}, "orders", []byte("forged"), time.Now())
		if mutate != nil {
			mutate(e)
		}
		sealed, err := envelope.Seal(e, signer)
		if err != nil {
			t.Fatal(err)
		}
		carrier := envelope.CarrierBody
		if tags {
			carrier = envelope.CarrierTag
		}
		lines, err := envelope.EncodeLines(e, sealed, carrier, envelope.Limits{BodyBytes: 400})
		if err != nil {
			t.Fatal(err)
		}
		return lines[0]
	}
	wrongKey := forge(envelope.NewHMACSigner("k1", []byte("guessed key")), nil)
	unknownKey := forge(envelope.NewHMACSigner("k9", meshKey), nil)
	unsigned := forge(nil, nil)
	newer := forge(envelope.NewHMACSigner("k1", meshKey), func(e *envelope.Envelope) { e.Version = envelope.MaxVersion + 1 })

	// The attacker holds the nick of the sender it forges (orders/evil):
	// its lines get past the sender binding (§4.4) to the signature check.
	raw := dialRaw(t, srv, "orders-evil")
	channel := mesh.Channel("t", "orders")
	raw.send("JOIN " + channel)
	raw.waitFor(" 366 ")
	privmsg := func(l envelope.Line) {
		line := "PRIVMSG " + channel + " :" + l.Body
		if len(l.Tags) > 0 {
			var parts []string
			for k, v := range l.Tags {
				parts = append(parts, k+"="+v)
			}
			line = "@" + strings.Join(parts, ";") + " " + line
		}
		raw.send(line)
	}
	tagged := func(data string) envelope.Line {
		if tags {
			return envelope.Line{Tags: map[string]string{envelope.TagData: data}, Body: "mesh event orders 00000000"}
		}
		return envelope.Line{Body: "~m1 event orders 00000000 " + data}
	}
	bad := []struct {
		reason string
		line   envelope.Line
	}{
		{"forged", wrongKey},
		{"unknown-key", unknownKey},
		{"unsigned", unsigned},
		{"version", newer},
		{"malformed", tagged("not*base64")},
		{"truncated", tagged(wrongKey.Tags[envelope.TagData][:min(30, len(wrongKey.Tags[envelope.TagData]))] + "AAAA")},
		{"malformed", tagged("AAAAAAAA")},
		{"version", envelope.Line{Body: "~m7 event orders 00000000 AAAA"}},
	}
	if !tags {
		// The body carrier's data is the text after the header.
		f := strings.Fields(wrongKey.Body)
		bad[5].line = tagged(f[len(f)-1][:30])
	}

	var want []string
	for i, b := range bad {
		p := fmt.Sprintf("valid-%d", i)
		if _, err := pub.Publish(ctx, "orders", []byte(p)); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
		privmsg(b.line)
	}
	// A replay: the attacker repeats a valid line it saw. Signed, so it
	// would verify, but from the attacker's nick: refused as from the
	// wrong sender (before the signature or the guard are even asked).
	var replayed envelope.Line
	obsDone := make(chan struct{})
	obs, err := sub.Observe(ctx, "orders", func(o mesh.Observation) {
		if o.Envelope != nil && string(o.Envelope.Payload) == "valid-0" {
			return
		}
		if o.Envelope != nil && string(o.Envelope.Payload) == "valid-last" && replayed.Body == "" {
			replayed = envelope.Line{Tags: map[string]string{}, Body: o.Body}
			for k, v := range o.Tags {
				if strings.HasPrefix(k, "+") {
					replayed.Tags[k] = v
				}
			}
			close(obsDone)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, "orders", []byte("valid-last")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "valid-last")
	select {
	case <-obsDone:
	case <-ctx.Done():
		t.Fatal("the observer did not see the last event")
	}
	obs.Stop()
	privmsg(replayed)
	if _, err := pub.Publish(ctx, "orders", []byte("valid-end")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "valid-end")
	raw.send("PRIVMSG " + channel + " :just a person talking")

	col.waitFor(t, len(want), 10*time.Second)
	waitUntil(t, 5*time.Second, "every bad line to be counted", func() bool {
		return sub.Stats().Rejected >= uint64(len(bad)+1) && sub.Stats().NotMesh >= 1
	})
	time.Sleep(100 * time.Millisecond) // anything wrongly delivered would show now
	col.mu.Lock()
	var got []string
	for _, m := range col.got {
		got = append(got, string(m.Payload))
	}
	col.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	st := sub.Stats()
	wantBy := map[string]uint64{"wrong-sender": 1}
	for _, b := range bad {
		wantBy[b.reason]++
	}
	for reason, n := range wantBy {
		if st.RejectedBy[reason] != n {
			t.Errorf("rejected as %s: %d, want %d (all: %v)", reason, st.RejectedBy[reason], n, st.RejectedBy)
		}
	}
	if st.Rejected != uint64(len(bad)+1) || st.NotMesh != 1 {
		t.Errorf("rejected %d (want %d), not-mesh %d (want 1)", st.Rejected, len(bad)+1, st.NotMesh)
	}
}

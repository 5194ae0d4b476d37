package mesh_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// seen records what a handler got: ids, and every message.
type seen struct {
	mu   sync.Mutex
	msgs []*mesh.Message
	ids  map[envelope.ID]int
}

func newSeen() *seen { return &seen{ids: map[envelope.ID]int{}} }

func (s *seen) handle(_ context.Context, m *mesh.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	s.ids[m.ID]++
	return nil
}

func (s *seen) has(id envelope.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id] > 0
}

func (s *seen) count(id envelope.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

func (s *seen) all() []*mesh.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*mesh.Message(nil), s.msgs...)
}

// capture reads the raw client's lines until it holds want mesh envelopes
// sent by from, and returns their sealed bytes (batches split).
func (c *rawClient) capture(t *testing.T, from string, want int) [][]byte {
	t.Helper()
	var out [][]byte
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(out) < want {
		raw, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("capturing %s's lines: %v (have %d of %d)", from, err, len(out), want)
		}
		if strings.HasPrefix(raw, "PING ") {
			c.send("PONG " + raw[5:])
			continue
		}
		msg, err := ircmsg.ParseLineStrict(strings.TrimRight(raw, "\r\n"), true, 0)
		if err != nil || msg.Command != "PRIVMSG" || msg.Nick() != from {
			continue
		}
		f, isMesh, err := envelope.ParseLine(msg.AllTags(), msg.Params[len(msg.Params)-1])
		if !isMesh || err != nil || f.Count != 1 {
			continue
		}
		data, err := base64.RawURLEncoding.DecodeString(f.Data)
		if err != nil {
			t.Fatal(err)
		}
		parts, err := envelope.SplitBatch(data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parts...)
	}
	return out
}

// sendEnvelope sends sealed bytes as one line to channel, in the carrier
// the server allows.
func (c *rawClient) sendEnvelope(t *testing.T, channel string, sealed []byte, tags bool) {
	t.Helper()
	c.sendEnvelopeTagged(t, channel, sealed, tags)
}

// sendEnvelopeTagged is sendEnvelope with more tags (key=value) on each
// line: tags the server may not let a client send.
func (c *rawClient) sendEnvelopeTagged(t *testing.T, channel string, sealed []byte, tags bool, extra ...string) {
	t.Helper()
	env, err := envelope.Unmarshal(sealed, 0)
	if err != nil { // a flipped bit may leave no envelope: send it as is
		env = envelope.New(envelope.KindEvent, envelope.Sender{Service: "x"}, "orders", nil, time.Now())
	}
	carrier := envelope.CarrierBody
	if tags {
		carrier = envelope.CarrierTag
	}
	lines, err := envelope.EncodeLines(env, sealed, carrier, envelope.Limits{TagBytes: envelope.DefaultTagBytes, BodyBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		line := "PRIVMSG " + channel + " :" + l.Body
		if len(l.Tags)+len(extra) > 0 {
			parts := append([]string(nil), extra...)
			for k, v := range l.Tags {
				parts = append(parts, k+"="+v)
			}
			line = "@" + strings.Join(parts, ";") + " " + line
		}
		c.send(line)
	}
}

// sync waits until the server processed every line this client sent.
func (c *rawClient) sync(t *testing.T) {
	t.Helper()
	c.send("PING :sync")
	c.waitFor("sync")
}

// TestForgedLines is the forged-line attack (docs/PROTOCOL.md §4.4): a
// plain IRC client joins the topic channel of a mesh (a shop publishing,
// an audit subscribing, two anycast workers), captures the shop's lines
// and sends them again — as they were (old lines replayed), with bits
// flipped, claiming another instance from a nick of the shop service,
// and new ones claiming the shop from its own nick. In every signed mode
// nothing it sends is delivered or processed; unsigned, nothing whose
// sender is not the nick that sent it is (what comes from the nick
// shop-2 as shop/2 is what an unsigned mesh cannot tell from the shop).
func TestForgedLines(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) { // each mode on a server of its own
		srv := ircdtest.Start(t)
		tags := ircdtest.Probe(t, srv).Has("message-tags")
		cfg := func(service, instance string) mesh.Config {
			c := testConfig(srv, service)
			c.Instance = instance
			c.HeartbeatInterval = 300 * time.Millisecond
			return m.Config(c)
		}
		nodes := connectAll(t, cfg("shop", "1"), cfg("audit", "1"), cfg("worker", "1"), cfg("worker", "2"))
		shop, audit := nodes[0], nodes[1]
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		got, worked := newSeen(), newSeen()
		if _, err := audit.Subscribe(ctx, "orders", got.handle); err != nil {
			t.Fatal(err)
		}
		for _, w := range nodes[2:] {
			if _, err := w.SubscribeAnycast(ctx, "orders", worked.handle); err != nil {
				t.Fatal(err)
			}
		}
		waitPresent(t, shop, "worker", 2)
		time.Sleep(500 * time.Millisecond) // the workers are ready to claim

		channel := mesh.Channel("t", "orders")
		mallory := dialRaw(t, srv, "mallory")
		spoof := dialRaw(t, srv, "shop-2") // a nick of the shop service
		for _, c := range []*rawClient{mallory, spoof} {
			c.send("JOIN " + channel)
			c.waitFor(" 366 ")
		}
		const legit = 10
		var legitIDs []envelope.ID
		for i := range legit {
			ack, err := shop.Publish(ctx, "orders", fmt.Appendf(nil, "legit-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			legitIDs = append(legitIDs, ack.ID)
		}
		captured := mallory.capture(t, shop.Nick(), legit)

		var sent int
		attack := func(c *rawClient, sealed []byte) {
			c.sendEnvelope(t, channel, sealed, tags)
			sent++
		}
		for _, s := range captured {
			attack(mallory, s) // replayed as is, from another nick
			attack(spoof, s)   // replayed from a nick of the service
			flipped := append([]byte(nil), s...)
			flipped[len(flipped)/2] ^= 0x10
			attack(mallory, flipped) // bits flipped
			env, err := envelope.Unmarshal(s, 0)
			if err != nil {
				t.Fatal(err)
			}
			env.Sender.Instance, env.ID = "2", envelope.NewID() // claims shop/2, signature kept
			reworked, err := envelope.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			attack(spoof, reworked)
		}
		for i := range 4 {
			own := envelope.New(envelope.KindEvent, envelope.Sender{Service: "shop", Instance: "2", Incarnation: 1}, "orders", fmt.Appendf(nil, "spoofed-%d", i), time.Now())
			b, _ := envelope.Seal(own, nil)
			attack(spoof, b) // new, unsigned, from the nick it claims
			claim := envelope.New(envelope.KindEvent, envelope.Sender{Service: "shop", Instance: "1", Incarnation: 1}, "orders", fmt.Appendf(nil, "impostor-%d", i), time.Now())
			b, _ = envelope.Seal(claim, nil)
			attack(mallory, b) // new, claiming the shop from another nick
		}
		mallory.sync(t)
		spoof.sync(t)
		end, err := shop.Publish(ctx, "orders", []byte("end"))
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, "the audit and the workers to take the last event", func() bool {
			return got.has(end.ID) && worked.has(end.ID)
		})
		time.Sleep(200 * time.Millisecond) // anything wrongly accepted would show now

		want := map[envelope.ID]bool{end.ID: true}
		for _, id := range legitIDs {
			want[id] = true
		}
		for what, s := range map[string]*seen{"audit": got, "workers": worked} {
			for _, msg := range s.all() {
				if !envelope.NickMatches(msg.From, msg.Sender) {
					t.Errorf("%s got %s as %s/%s from nick %s", what, msg.ID.Short(), msg.Sender.Service, msg.Sender.Instance, msg.From)
				}
				if m.Signed() && !want[msg.ID] {
					t.Errorf("%s got a forged event %s %q from %s", what, msg.ID.Short(), msg.Payload, msg.From)
				}
				if strings.HasPrefix(string(msg.Payload), "impostor-") {
					t.Errorf("%s got an event claiming the shop from another nick", what)
				}
			}
			for id := range want {
				if n := s.count(id); n != 1 {
					t.Errorf("%s got %s %d times, want once", what, id.Short(), n)
				}
			}
		}
		st := audit.Stats()
		// Replays and claims of shop/1 from other nicks: 2 per captured
		// envelope and 4 new ones, at least, are from the wrong sender.
		if min := uint64(2*len(captured) + 4); st.RejectedBy["wrong-sender"] < min {
			t.Errorf("wrong-sender rejections %d, want at least %d (all %v)", st.RejectedBy["wrong-sender"], min, st.RejectedBy)
		}
		if m.Signed() && st.Rejected < uint64(sent) {
			t.Errorf("rejected %d of %d forged envelopes (%v)", st.Rejected, sent, st.RejectedBy)
		}
		t.Logf("%s: %d forged envelopes sent; audit rejected %v", m.Name, sent, st.RejectedBy)
	})
}

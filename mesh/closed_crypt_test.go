package mesh_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// secretMark starts every secret payload of the encryption tests: none of
// it may reach the wire, an observer or a store in clear.
const secretMark = "card-4111-"

// watchRaw collects the lines an IRC client (not a mesh node) sees in a
// channel, until stop.
type watchRaw struct {
	mu    sync.Mutex
	lines []ircmsg.Message
	done  chan struct{}
}

func (c *rawClient) watch(t *testing.T) *watchRaw {
	w := &watchRaw{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			line, err := c.r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "PING ") {
				c.conn.Write([]byte("PONG " + line[5:]))
				continue
			}
			if msg, err := ircmsg.ParseLineStrict(strings.TrimRight(line, "\r\n"), true, 0); err == nil && msg.Command == "PRIVMSG" {
				w.mu.Lock()
				w.lines = append(w.lines, msg)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *watchRaw) all() []ircmsg.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ircmsg.Message(nil), w.lines...)
}

// checkSealedLine fails when the line shows a secret, and reports whether
// it carried an encrypted event (its summary says so, its data opens to
// nothing readable).
func checkSealedLine(t *testing.T, msg ircmsg.Message) bool {
	t.Helper()
	text := msg.Params[len(msg.Params)-1]
	f, isMesh, err := envelope.ParseLine(msg.AllTags(), text)
	if strings.Contains(text, secretMark) {
		t.Errorf("a line shows a secret in clear: %q", text)
	}
	if !isMesh || err != nil {
		return false
	}
	data, err := base64.RawURLEncoding.DecodeString(f.Data)
	if err != nil {
		return false
	}
	if bytes.Contains(data, []byte(secretMark)) {
		t.Errorf("the data of a line holds a secret in clear")
	}
	if f.Count != 1 {
		return false
	}
	parts, _ := envelope.SplitBatch(data)
	encrypted := false
	for _, p := range parts {
		env, err := envelope.Unmarshal(p, 0)
		if err != nil || env.Kind != envelope.KindEvent {
			continue
		}
		if !env.PayloadEncrypted() {
			t.Errorf("an event travels in clear: %s", env.Summary())
		}
		encrypted = true
	}
	if encrypted && !strings.Contains(text, "event"+envelope.EncryptedMark) {
		t.Errorf("the summary of an encrypted event does not say so: %q", text)
	}
	return encrypted
}

// TestEncryptedPayloads (docs/PROTOCOL.md §4.5): in an encrypted mesh,
// events are delivered in clear to subscribers, replayed in clear from a
// recorder, and taken over by another anycast worker when the one that
// claimed an event dies; requests and their answers travel encrypted too.
// An IRC client in the channel sees that each event is encrypted and
// never its content, and the recorder's store holds only ciphertext.
func TestEncryptedPayloads(t *testing.T) {
	srv := ircdtest.Start(t)
	m := historytest.NewMesh(srv, "ec", meshtest.NewMode(meshtest.Encrypted))
	cfg := func(service, instance string) mesh.Config {
		c := m.Config(service)
		c.Instance, c.HeartbeatInterval = instance, 300*time.Millisecond
		return c
	}
	rec := m.StartRecorderIn(t, t.TempDir(), "", "r", recorder.Config{})
	nodes := connectAll(t, cfg("shop", "1"), cfg("audit", "1"), cfg("worker", "1"), cfg("worker", "2"))
	shop, audit, workers := nodes[0], nodes[1], nodes[2:]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	watcher := dialRaw(t, srv, "watcher")
	watcher.send("JOIN " + m.Channel("orders"))
	watcher.waitFor(" 366 ")
	lines := watcher.watch(t)

	got := newSeen()
	if _, err := audit.Subscribe(ctx, "orders", got.handle); err != nil {
		t.Fatal(err)
	}
	// The workers: the first to start the takeover event holds it until
	// it is killed.
	var (
		mu      sync.Mutex
		holder  *mesh.Node
		started = make(chan struct{})
		done    = map[string]*mesh.Message{}
	)
	for _, w := range workers {
		if _, err := w.SubscribeAnycast(ctx, "orders", func(hctx context.Context, msg *mesh.Message) error {
			if string(msg.Payload) == secretMark+"takeover" {
				mu.Lock()
				first := holder == nil
				if first {
					holder = w
				}
				mu.Unlock()
				if first {
					close(started)
					<-hctx.Done()
					return hctx.Err()
				}
			}
			mu.Lock()
			done[string(msg.Payload)] = msg
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	shop.Handle("quote", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		return append([]byte(secretMark+"quote for "), r.Payload...), nil
	})
	historytest.WaitTopic(t, rec.Recorder, "orders")
	waitPresent(t, shop, "worker", 2)
	time.Sleep(500 * time.Millisecond) // the workers are ready

	const events = 20
	var sent []string
	for i := range events {
		p := fmt.Sprintf("%s%02d", secretMark, i)
		if _, err := shop.Publish(ctx, "orders", []byte(p)); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, p)
	}
	if _, err := shop.Publish(ctx, "orders", []byte(secretMark+"takeover")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no worker started the takeover event")
	}
	mesh.Crash(holder)
	waitUntil(t, 30*time.Second, "every event handled, the takeover one by the other worker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == events+1
	})
	mu.Lock()
	tk := done[secretMark+"takeover"]
	mu.Unlock()
	if tk.Claim == nil || tk.Claim.Epoch < 2 || tk.From != shop.Nick() {
		t.Errorf("the takeover: %+v", tk.Claim)
	}
	waitUntil(t, 10*time.Second, "the audit's events", func() bool { return len(got.all()) == events+1 })
	for i, msg := range got.all()[:events] {
		if string(msg.Payload) != sent[i] || !msg.Envelope.Encrypted() {
			t.Errorf("audit event %d: %q (encrypted %v)", i, msg.Payload, msg.Envelope.Encrypted())
		}
	}

	// A request and its answer, encrypted with the services' pair key.
	out, err := audit.Request(ctx, "shop", "quote", []byte(secretMark+"tea"))
	if err != nil || string(out) != secretMark+"quote for "+secretMark+"tea" {
		t.Fatalf("request: %q %v", out, err)
	}

	// Nothing was refused along the way (DMs echoed back included).
	for _, n := range []*mesh.Node{shop, audit} {
		if st := n.Stats(); st.Rejected != 0 {
			t.Errorf("%s rejected %d lines: %v", n.Nick(), st.Rejected, st.RejectedBy)
		}
	}

	// Replayed from the recorder, in clear, in order.
	var replayed []string
	if _, err := history.Replay(ctx, audit, "orders", history.ReplayOptions{}, func(r history.Replayed) error {
		if r.Envelope.Kind == envelope.KindEvent {
			if !r.Envelope.Encrypted() {
				t.Errorf("replayed event %s was not encrypted", r.Envelope.ID.Short())
			}
			replayed = append(replayed, string(r.Envelope.Payload))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(replayed) < events || fmt.Sprint(replayed[:events]) != fmt.Sprint(sent) {
		t.Errorf("replayed %v, want %v first", replayed, sent)
	}

	// What an IRC client saw, and what the recorder stored.
	encrypted := 0
	for _, msg := range lines.all() {
		if checkSealedLine(t, msg) {
			encrypted++
		}
	}
	if encrypted < events {
		t.Errorf("the watcher saw %d encrypted events, want %d", encrypted, events)
	}
	if err := rec.Store.Flush(); err != nil {
		t.Fatal(err)
	}
	stored := 0
	if err := rec.Store.Scan(m.Channel("orders"), 1, func(r store.Record) bool {
		msg := ircmsg.Message{Command: "PRIVMSG", Params: []string{r.Channel, r.Body}}
		msg.UpdateTags(r.Tags)
		if checkSealedLine(t, msg) {
			stored++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if stored < events {
		t.Errorf("the store holds %d encrypted events, want %d", stored, events)
	}
}

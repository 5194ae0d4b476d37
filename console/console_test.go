package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
	"github.com/meshbot/meshbot/mesh"
)

// fakeNode is the console's node in unit tests: what it answers is set
// by the test, what the console sends is recorded.
type fakeNode struct {
	mu      sync.Mutex
	notices map[string][][]string // by target: each Notice's lines
	opers   map[string]bool
	members []heartbeat.Member
	methods []string
	subs    []mesh.SubscriptionInfo
	request func(ctx context.Context, service, method string, payload []byte) ([]byte, error)
	publish func(ctx context.Context, topic string, payload []byte) (mesh.PubAck, error)
	whois   int
}

func newFake() *fakeNode {
	return &fakeNode{notices: map[string][][]string{}, opers: map[string]bool{}, methods: []string{"quote"},
		members: []heartbeat.Member{
			{Service: "pricing", Instance: "1", Nick: "pricing-1", State: heartbeat.Alive,
				Beat: heartbeat.Beat{Service: "pricing", Instance: "1", Methods: []string{"quote"}}},
			{Service: "billing", Instance: "1", Nick: "billing-1", State: heartbeat.Alive,
				Beat: heartbeat.Beat{Service: "billing", Instance: "1", Subs: []heartbeat.Sub{{Topic: "orders.created", Group: "billing"}}, Kicked: []heartbeat.Sub{{Topic: "x"}}}},
			{Service: "audit", Instance: "9", Nick: "audit-9", State: heartbeat.Dead},
		},
		subs: []mesh.SubscriptionInfo{{Topic: "orders.created", Mode: mesh.ModeAnycast, Group: "billing", QueueCap: 1024, Held: 1,
			Paused: &mesh.Pause{Topic: "orders.created", By: "alice", Since: time.Unix(0, 0)}}},
	}
}

func (f *fakeNode) Service() string                        { return "pricing" }
func (f *fakeNode) Instance() string                       { return "1" }
func (f *fakeNode) Nick() string                           { return "pricing-1" }
func (f *fakeNode) Namespace() string                      { return "mesh" }
func (f *fakeNode) Connected() bool                        { return true }
func (f *fakeNode) OnText(func(mesh.Text)) func()          { return func() {} }
func (f *fakeNode) AllMembers() []heartbeat.Member         { return f.members }
func (f *fakeNode) Methods() []string                      { return f.methods }
func (f *fakeNode) Subscriptions() []mesh.SubscriptionInfo { return f.subs }
func (f *fakeNode) Paused() []mesh.Pause                   { return nil }
func (f *fakeNode) Kicks() []mesh.Kick                     { return nil }
func (f *fakeNode) Stats() mesh.Stats {
	return mesh.Stats{Connected: true, RejectedBy: map[string]uint64{"forged": 2}}
}
func (f *fakeNode) Started() time.Time         { return time.Now().Add(-time.Minute) }
func (f *fakeNode) LastConnectionError() error { return nil }
func (f *fakeNode) Domains() []*mesh.Domain    { return nil }
func (f *fakeNode) Observe(context.Context, string, func(mesh.Observation), ...mesh.ObserveOption) (*mesh.Observer, error) {
	return nil, errors.New("not in tests")
}

func (f *fakeNode) Notice(_ context.Context, target string, lines ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notices[target] = append(f.notices[target], lines)
	return nil
}

func (f *fakeNode) IsIRCOperator(_ context.Context, nick string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.whois++
	return f.opers[nick], nil
}

func (f *fakeNode) Request(ctx context.Context, service, method string, payload []byte, _ ...mesh.RequestOption) ([]byte, error) {
	if f.request == nil {
		return []byte(`{"total":"7.00"}`), nil
	}
	return f.request(ctx, service, method, payload)
}

func (f *fakeNode) Publish(ctx context.Context, topic string, payload []byte, _ ...mesh.PublishOption) (mesh.PubAck, error) {
	if f.publish == nil {
		return mesh.PubAck{ID: envelope.NewID()}, nil
	}
	return f.publish(ctx, topic, payload)
}

// answers returns the answers target got so far.
func (f *fakeNode) answers(target string) [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.notices[target]...)
}

// ask has c take text from nick and returns the answer's lines, once the
// command ran (slow ones included).
func ask(t *testing.T, c *Console, f *fakeNode, tx mesh.Text) []string {
	t.Helper()
	before := len(f.answers(tx.From))
	c.onText(tx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if a := f.answers(tx.From); len(a) > before {
			return a[before]
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

func dm(from, text string) mesh.Text { return mesh.Text{From: from, Text: text} }

func newTestConsole(f *fakeNode, cfg Config) *Console {
	c := attach(f, cfg)
	// A clock 10 s further on at each read: never rate-limited. Slow
	// commands read it on their own goroutines, hence the lock.
	var mu sync.Mutex
	clock := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(10 * time.Second)
		return clock
	}
	return c
}

func TestReadCommands(t *testing.T) {
	f := newFake()
	c := newTestConsole(f, Config{})
	defer c.Stop()
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"help", []string{"pricing-1 is an instance of the mesh service pricing", "req SERVICE METHOD [PAYLOAD]", "quote PAYLOAD"}},
		{"help req", []string{"req SERVICE METHOD [PAYLOAD]: ask", "trusted people only"}},
		{"status", []string{"pricing-1: service pricing, instance 1, up ", "orders.created: anycast (group billing), queue 0/1024", "1 claim held", "PAUSED (+m by alice", "requests: answers quote", "lines rejected 0 (forged 2)"}},
		{"members", []string{"2 live instances (from heartbeats):", "billing-1 alive", "subscribes billing:orders.created", "KICKED from x", "pricing-1 alive", "answers quote"}},
		{"members pricing", []string{"1 live instances of pricing", "pricing-1 alive"}},
		{"members nobody", []string{"no live instance of nobody"}},
		{"methods", []string{"pricing-1 answers: quote (try: quote PAYLOAD, or req pricing quote PAYLOAD)", "pricing: quote"}},
		{"methods billing", []string{"no live instance of billing announces request methods"}},
		{"frobnicate", []string{`unknown command "frobnicate" (help lists the commands)`}},
		{"req pricing", []string{"missing arguments; usage: req SERVICE METHOD [PAYLOAD]"}},
	} {
		got := ask(t, c, f, dm("bob", tc.text))
		text := strings.Join(got, "\n")
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%q: answer lacks %q:\n%s", tc.text, w, text)
			}
		}
		if len(got) > maxLines {
			t.Errorf("%q: %d lines", tc.text, len(got))
		}
	}
	if f.whois != 0 {
		t.Errorf("reading asked WHOIS %d times", f.whois)
	}
}

// Acting needs trust: an allowed account, a channel operator, an IRC
// operator; everyone else is refused, clearly.
func TestWhoMayAct(t *testing.T) {
	f := newFake()
	f.opers["root"] = true
	c := newTestConsole(f, Config{Accounts: []string{"Alice"}})
	defer c.Stop()
	req := `req pricing quote {"item":"tea"}`
	for _, tc := range []struct {
		name string
		tx   mesh.Text
		ok   bool
	}{
		{"allowed account", mesh.Text{From: "al", Account: "alice", Text: req}, true},
		{"channel operator", mesh.Text{From: "chop", ChannelOperator: true, Text: req}, true},
		{"IRC operator", mesh.Text{From: "root", Text: req}, true},
		{"stranger", mesh.Text{From: "eve", Text: req}, false},
		{"another account", mesh.Text{From: "mallory", Account: "mallory", Text: req}, false},
		{"own method, stranger", mesh.Text{From: "eve2", Text: "quote coffee"}, false},
		{"pub, stranger", mesh.Text{From: "eve3", Text: "pub orders.created x"}, false},
	} {
		got := strings.Join(ask(t, c, f, tc.tx), "\n")
		switch {
		case tc.ok && !strings.Contains(got, `pricing answered quote in`) || tc.ok && !strings.Contains(got, `{"total":"7.00"}`):
			t.Errorf("%s: %q", tc.name, got)
		case !tc.ok && !strings.HasPrefix(got, "refused: ") || !tc.ok && !strings.Contains(got, "acts on the mesh"):
			t.Errorf("%s: %q, want a refusal", tc.name, got)
		}
	}
	if got := strings.Join(ask(t, c, f, mesh.Text{From: "mallory", Account: "mallory", Text: req}), ""); !strings.Contains(got, "you: logged in as mallory") {
		t.Errorf("the refusal does not say who they are: %q", got)
	}

	// Without IRC operators, root is a stranger.
	c2 := newTestConsole(f, Config{NoIRCOperators: true, NoChannelOperators: true})
	defer c2.Stop()
	for _, tx := range []mesh.Text{{From: "root", Text: req}, {From: "chop", ChannelOperator: true, Text: req}} {
		if got := strings.Join(ask(t, c2, f, tx), ""); !strings.HasPrefix(got, "refused: ") {
			t.Errorf("%s: %q, want a refusal", tx.From, got)
		}
	}
	// Restricted: reading needs trust too.
	c3 := newTestConsole(f, Config{Restricted: true})
	defer c3.Stop()
	if got := strings.Join(ask(t, c3, f, dm("eve", "status")), ""); !strings.Contains(got, "refused: status is restricted") {
		t.Errorf("restricted status: %q", got)
	}
	if got := strings.Join(ask(t, c3, f, mesh.Text{From: "chop", ChannelOperator: true, Text: "status"}), ""); !strings.HasPrefix(got, "pricing-1: service pricing") {
		t.Errorf("restricted status to an operator: %q", got)
	}
}

// The answers of req and pub: the service's answer, a typed remote error,
// no responder, a paused topic; payloads over the cap are refused.
func TestActAnswers(t *testing.T) {
	f := newFake()
	c := newTestConsole(f, Config{MaxPayload: 64})
	defer c.Stop()
	op := func(text string) mesh.Text { return mesh.Text{From: "op", ChannelOperator: true, Text: text} }
	f.request = func(_ context.Context, service, method string, payload []byte) ([]byte, error) {
		switch string(payload) {
		case "coffee":
			return nil, &mesh.RemoteError{Service: "pricing", Instance: "1", Code: 400, Message: "not an order\x02!"}
		case "none":
			return nil, fmt.Errorf("x: %w", mesh.ErrNoResponders)
		case "slow":
			return nil, context.DeadlineExceeded
		}
		return []byte("\x00\x01binary"), nil
	}
	f.publish = func(_ context.Context, topic string, _ []byte) (mesh.PubAck, error) {
		if topic == "paused" {
			return mesh.PubAck{}, fmt.Errorf("%w: #mesh.paused is moderated", mesh.ErrPaused)
		}
		return mesh.PubAck{ID: envelope.ID{0xab, 0xcd, 0xef, 0x01}}, nil
	}
	for _, tc := range []struct{ text, want string }{
		{"quote coffee", "pricing/1 answered quote with error 400: not an order!"},
		{"req pricing quote none", "no live instance of pricing answers requests now"},
		{"req pricing quote slow", "no answer from pricing within 5s"},
		{"req pricing quote bin", "(8 B): [binary]"},
		{"req pricing quote " + strings.Repeat("x", 65), "the payload has 65 bytes; at most 64"},
		{"req pri/cing quote x", `req: service "pri/cing"`},
		{"pub orders.created {}", "published abcdef01 on orders.created (2 B) as pricing-1"},
		{"pub paused x", "not published: mesh: topic paused by a channel operator (+m): #mesh.paused is moderated"},
		{"pub #bad x", "pub: "},
	} {
		if got := strings.Join(ask(t, c, f, op(tc.text)), "\n"); !strings.Contains(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.text, got, tc.want)
		}
	}
}

// In a channel: an unaddressed command gets one line from each bot, an
// addressed one the whole answer from the bots it names, the rest nothing.
func TestChannelCommands(t *testing.T) {
	f := newFake()
	c := newTestConsole(f, Config{})
	defer c.Stop()
	ch := func(text string) mesh.Text { return mesh.Text{From: "bob", Channel: "#mesh._hb", Text: text} }
	if got := ask(t, c, f, ch("status")); len(got) != 1 || !strings.HasPrefix(got[0], "pricing-1: service pricing") {
		t.Errorf("!status: %q", got)
	}
	if got := ask(t, c, f, ch("pricing-1 status")); len(got) < 3 {
		t.Errorf("!pricing-1 status: %q", got)
	}
	if got := ask(t, c, f, ch("pricing members")); len(got) < 2 {
		t.Errorf("!pricing members: %q", got)
	}
	before := len(f.answers("bob"))
	for _, s := range []string{"billing-1 status", "nonsense here", "quote coffee", "pricing-1"} {
		c.onText(ch(s))
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(f.answers("bob")) - before; n != 1 { // "!pricing-1" alone: an empty command, answered once
		t.Errorf("%d answers to lines not for this bot, want 1: %q", n, f.answers("bob")[before:])
	}
}

// Each asker gets a few commands, then one every few seconds and one
// warning; others are not affected; memory stays bounded.
func TestRateLimit(t *testing.T) {
	f := newFake()
	c := attach(f, Config{})
	defer c.Stop()
	clock := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time { return clock }
	for range 10 {
		c.onText(dm("flood", "status"))
	}
	got := f.answers("flood")
	if len(got) != perBurst+1 || !strings.HasPrefix(got[perBurst][0], "slow down") {
		t.Fatalf("%d answers to 10 commands at once, want %d and a warning: %q", len(got), perBurst+1, got)
	}
	c.onText(dm("other", "status"))
	if len(f.answers("other")) != 1 {
		t.Error("another asker was limited")
	}
	clock = clock.Add(perEvery)
	c.onText(dm("flood", "status"))
	if n := len(f.answers("flood")); n != perBurst+2 {
		t.Errorf("after %v: %d answers, want %d", perEvery, n, perBurst+2)
	}
	for i := range 2000 {
		clock = clock.Add(time.Millisecond)
		c.onText(dm(fmt.Sprintf("n%d", i), "bogus"))
	}
	if n := c.lim.size(); n > maxAskers {
		t.Errorf("%d askers remembered, at most %d", n, maxAskers)
	}
}

// Slow commands run a few at a time; more are told the console is busy,
// and nothing waits on them.
func TestSlowCommandsBounded(t *testing.T) {
	f := newFake()
	release := make(chan struct{})
	var mu sync.Mutex
	running, most := 0, 0
	f.request = func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		select {
		case <-release:
			return []byte("ok"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := newTestConsole(f, Config{})
	start := time.Now()
	for i := range 10 {
		c.onText(mesh.Text{From: fmt.Sprintf("op%d", i), ChannelOperator: true, Text: "req pricing quote x"})
	}
	if time.Since(start) > time.Second {
		t.Error("taking the commands waited for them")
	}
	busy := 0
	for i := range 10 {
		for _, a := range f.answers(fmt.Sprintf("op%d", i)) {
			if strings.HasPrefix(a[0], "busy") {
				busy++
			}
		}
	}
	if busy != 10-maxSlow {
		t.Errorf("%d told busy, want %d", busy, 10-maxSlow)
	}
	close(release)
	c.Stop()
	if most > maxSlow {
		t.Errorf("%d requests at once, at most %d", most, maxSlow)
	}
}

// Nothing typed makes the console panic or answer more than maxLines.
func TestGarbageIn(t *testing.T) {
	f := newFake()
	f.opers["op"] = true
	c := newTestConsole(f, Config{})
	defer c.Stop()
	inputs := []string{"\x00", "\xff\xfe", "req \x01\x02 \x03", "pub " + strings.Repeat("é", 2000), "help " + strings.Repeat("z", 5000),
		"state", "claims", "members \u202e", "req a b " + strings.Repeat("{", 3000), strings.Repeat(" ", 600), "!", "*"}
	for _, s := range inputs {
		for _, tx := range []mesh.Text{dm("op", s), {From: "op", Channel: "#mesh.t", Text: s}} {
			c.onText(tx)
		}
	}
	c.Stop()
	for _, a := range f.answers("op") {
		if len(a) > maxLines {
			t.Errorf("%d lines", len(a))
		}
	}
}

// help says who may act as the console is configured.
func TestHelpSaysWhoMayAct(t *testing.T) {
	f := newFake()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "req SERVICE METHOD [PAYLOAD]: ask SERVICE's METHOD with PAYLOAD (a mesh request) and show the answer or the typed error; trusted people only (IRC operators, channel operators of the mesh's channels, allowed accounts)"},
		{Config{TrustEveryone: true}, "; anyone (this mesh trusts everyone)"},
	} {
		c := newTestConsole(f, tc.cfg)
		if got := strings.Join(ask(t, c, f, dm("bob", "help req")), "\n"); !strings.HasSuffix(got, tc.want) {
			t.Errorf("%+v: help req: %q, want it to end with %q", tc.cfg, got, tc.want)
		}
		c.Stop()
	}
	c := newTestConsole(f, Config{TrustEveryone: true})
	defer c.Stop()
	if got := strings.Join(ask(t, c, f, dm("bob", "help")), "\n"); !strings.Contains(got, "act (anyone: this mesh trusts everyone): req") {
		t.Errorf("help: %q", got)
	}
}

func TestTookText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0.0ms", 420 * time.Microsecond: "0.4ms", 9_960 * time.Microsecond: "10.0ms",
		12_400 * time.Microsecond: "12ms", 1_230 * time.Millisecond: "1.2s",
	} {
		if got := tookText(d); got != want {
			t.Errorf("tookText(%v) = %q, want %q", d, got, want)
		}
	}
}

package ircd_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lrstanley/girc"

	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
)

// waitTimeout bounds every wait for an IRC event in these tests.
const waitTimeout = 15 * time.Second

// tagKey is the client-only tag the mesh carries envelopes in.
const tagKey = "+meshbot/e"

// TestSmokeRelay: two bots on the MESH_IRCD server join a channel; A sends
// a base64 value, in a client-only tag if the server offers message-tags,
// in the body otherwise; B receives it intact.
func TestSmokeRelay(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	caps := ircdtest.Probe(t, srv)
	t.Logf("%s (%s): caps %v", srv, caps.ServerName, keys(caps.Caps))
	t.Logf("ISUPPORT LINELEN=%q NICKLEN=%q CHANNELLEN=%q CHATHISTORY=%q; own source %q",
		caps.ISupport["LINELEN"], caps.ISupport["NICKLEN"], caps.ISupport["CHANNELLEN"], caps.ISupport["CHATHISTORY"], caps.Source)
	relay(t, caps, srv, srv)
}

// TestSmokeLinkedRelay: the same across two linked InspIRCd servers, bot A
// on the first, bot B on the second.
func TestSmokeLinkedRelay(t *testing.T) {
	t.Parallel()
	a, b := ircdtest.StartLinked(t)
	if a.Name() == b.Name() {
		t.Fatalf("linked servers share the name %q", a.Name())
	}
	capsA := ircdtest.Probe(t, a)
	if !capsA.Has("message-tags") {
		t.Fatalf("InspIRCd %s does not offer message-tags; caps %v", a, keys(capsA.Caps))
	}
	relay(t, capsA, a, b)
}

func relay(t *testing.T, caps *ircd.Caps, srvA, srvB *ircd.Server) {
	const channel = "#meshbot.smoke"
	botA := newBot(t, srvA, "meshA")
	botB := newBot(t, srvB, "meshB")
	botA.waitRegistered(t)
	botB.waitRegistered(t)

	// The decision comes from what the server offered, and girc must have
	// negotiated exactly that (it sends tags only when message-tags is on,
	// and silently drops them otherwise).
	useTags := caps.Has("message-tags")
	for _, b := range []*bot{botA, botB} {
		if got := b.c.HasCapability("message-tags"); got != useTags {
			t.Fatalf("%s: girc negotiated message-tags=%v, probe says offered=%v", b.nick, got, useTags)
		}
	}

	botA.c.Cmd.Join(channel)
	botA.waitFor(t, "own JOIN", func(e girc.Event) bool { return isJoin(e, botA.c.GetNick(), channel) })
	botB.c.Cmd.Join(channel)
	botB.waitFor(t, "own JOIN", func(e girc.Event) bool { return isJoin(e, botB.c.GetNick(), channel) })
	// Once A sees B's JOIN, A's server routes the channel to B's server.
	botA.waitFor(t, "B's JOIN", func(e girc.Event) bool { return isJoin(e, botB.c.GetNick(), channel) })

	raw := make([]byte, 200) // 200 bytes → base64 with "=" padding
	_, _ = rand.Read(raw)
	value := base64.StdEncoding.EncodeToString(raw)
	const body = "meshbot smoke test"
	ev := &girc.Event{Command: girc.PRIVMSG, Params: []string{channel, body}}
	if useTags {
		ev.Tags = girc.Tags{}
		if err := ev.Tags.Set(tagKey, value); err != nil {
			t.Fatal(err)
		}
	} else {
		ev.Params[1] = "meshbot/e " + value
	}
	botA.c.Send(ev)

	got := botB.waitFor(t, "A's PRIVMSG", func(e girc.Event) bool {
		return e.Command == girc.PRIVMSG && e.Source != nil && e.Source.Name == botA.c.GetNick() &&
			len(e.Params) == 2 && e.Params[0] == channel
	})
	t.Logf("B received (tags=%v): %s", useTags, got.String())
	t.Logf("prefix B sees for A: nick=%q user=%q host=%q", got.Source.Name, got.Source.Ident, got.Source.Host)
	if useTags {
		tv, ok := got.Tags.Get(tagKey)
		if !ok {
			t.Fatalf("tag %s missing on arrival; tags %v", tagKey, got.Tags)
		}
		if tv != value {
			t.Fatalf("tag %s arrived changed:\n got %q\nwant %q", tagKey, tv, value)
		}
		if got.Last() != body {
			t.Fatalf("body %q, want %q", got.Last(), body)
		}
	} else if got.Last() != "meshbot/e "+value {
		t.Fatalf("body arrived changed:\n got %q\nwant %q", got.Last(), "meshbot/e "+value)
	}
}

func isJoin(e girc.Event, nick, channel string) bool {
	return e.Command == girc.JOIN && e.Source != nil && e.Source.Name == nick &&
		len(e.Params) > 0 && strings.EqualFold(e.Params[0], channel)
}

// bot is a girc client whose events land in a channel for the test to read.
type bot struct {
	nick   string
	c      *girc.Client
	events chan girc.Event
	done   chan error
}

func newBot(t *testing.T, srv *ircd.Server, nick string) *bot {
	t.Helper()
	b := &bot{
		nick:   nick,
		events: make(chan girc.Event, 1024),
		done:   make(chan error, 1),
	}
	b.c = girc.New(girc.Config{
		Server:      srv.Host(),
		Port:        srv.Port(),
		Nick:        nick,
		User:        nick,
		Name:        "meshbot smoke test",
		AllowFlood:  true, // no client-side rate limiting
		DisableSTS:  true,
		PingDelay:   20 * time.Second, // girc's minimum
		PingTimeout: 10 * time.Second,
	})
	b.c.Handlers.Add(girc.ALL_EVENTS, func(_ *girc.Client, e girc.Event) {
		select {
		case b.events <- *e.Copy():
		default:
		}
	})
	go func() { b.done <- b.c.Connect() }()
	t.Cleanup(func() {
		b.c.Close()
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: girc client did not close", nick)
		}
	})
	return b
}

// waitRegistered waits for RPL_WELCOME. (girc's own CONNECTED event comes
// two seconds later: handleConnect sleeps 2s before firing it.)
func (b *bot) waitRegistered(t *testing.T) {
	t.Helper()
	b.waitFor(t, "registration", func(e girc.Event) bool { return e.Command == girc.RPL_WELCOME })
}

// waitFor returns the first event matching ok, failing the test after
// waitTimeout or if the client disconnects.
func (b *bot) waitFor(t *testing.T, what string, ok func(girc.Event) bool) girc.Event {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case e := <-b.events:
			if ok(e) {
				return e
			}
		case err := <-b.done:
			b.done <- err // for the cleanup
			t.Fatalf("%s: disconnected while waiting for %s: %v", b.nick, what, err)
		case <-timer.C:
			t.Fatalf("%s: no %s within %v", b.nick, what, waitTimeout)
		}
	}
}

func keys(m map[string]string) string {
	var ks []string
	for k, v := range m {
		if v != "" {
			k += "=" + v
		}
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return fmt.Sprint(ks)
}

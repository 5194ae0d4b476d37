package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestCheck reports a server and a namespace: the limits the server
// announces, the members, the channels from LIST and heartbeats joined,
// and an invite-only channel that cannot be joined (exit 1).
func TestCheck(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	caps := ircdtest.Probe(t, srv)
	cfg := mesh.DefaultConfig()
	cfg.Server, cfg.Namespace, cfg.Service, cfg.Instance = srv.Addr(), "ck", "shop", "1"
	shop := meshtest.Connect(t, cfg)
	if _, err := shop.Subscribe(context.Background(), "orders", func(context.Context, *mesh.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	environ := map[string]string{"MESHBOT_SERVER": srv.Addr(), "MESHBOT_NAMESPACE": "ck"}

	r := runCLI(t, environ, "", "check", "--json")
	if r.code != 0 {
		t.Fatalf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var rep checkReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Limits.ChanLen != caps.IntToken("CHANNELLEN", 0) || rep.Limits.NickLen != caps.IntToken("NICKLEN", 0) {
		t.Errorf("limits %+v; the server announces CHANNELLEN %d, NICKLEN %d", rep.Limits, caps.IntToken("CHANNELLEN", 0), caps.IntToken("NICKLEN", 0))
	}
	if wantTag := caps.Has("message-tags"); (rep.Carrier == "tag") != wantTag || rep.Limits.Body <= 0 || rep.RTTMillis <= 0 {
		t.Errorf("carrier %s, body %d, rtt %v (message-tags offered: %v)", rep.Carrier, rep.Limits.Body, rep.RTTMillis, wantTag)
	}
	if len(rep.Members) != 1 || rep.Members[0] != "shop/1" {
		t.Errorf("members %v", rep.Members)
	}
	joined := map[string]string{}
	for _, c := range rep.Channels {
		if c.Joined {
			joined[c.Channel] = c.Source
		}
	}
	if joined["#ck.orders"] != "both" || joined["#ck._hb"] != "system" {
		t.Errorf("channels %+v", rep.Channels)
	}

	// A person makes an invite-only channel in the namespace.
	person := dialIRC(t, srv.Addr(), "carol")
	person.send("JOIN #ck.secret")
	person.expect("366")
	person.send("MODE #ck.secret +i")
	person.expect("MODE")
	r = runCLI(t, environ, "", "check", "--join-timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "1 channel(s) could not be joined: #ck.secret") {
		t.Errorf("check: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^server +` + regexp.QuoteMeta(srv.Addr()) + `.*: connected and registered in \d+ ms as meshbot-`),
		regexp.MustCompile(`(?m)^limits +LINELEN \d+, CHANNELLEN \d+, NICKLEN \d+`),
		regexp.MustCompile(`(?m)^line budget +\d+ B`),
		regexp.MustCompile(`(?m)^members +1 in namespace ck: shop/1$`),
		regexp.MustCompile(`(?m)#ck\.orders +both +joined in \d+ ms$`),
		// The server's refusal, at once (not a timeout).
		regexp.MustCompile(`(?m)#ck\.secret +list +NOT JOINED: mesh: cannot join #ck\.secret: the channel is invite-only \(\+i\).*\(473: `),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("check output does not match %s:\n%s", want, r.stdout)
		}
	}
}

// TestCheckNotIRC: check names what answers on a port that is not IRC.
func TestCheckNotIRC(t *testing.T) {
	t.Parallel()
	addr := httpServer(t)
	r := runCLI(t, map[string]string{"MESHBOT_SERVER": addr}, "", "check")
	if r.code != 1 || !strings.Contains(r.stderr, addr+": not an IRC server: it answered \"HTTP/1.1 400 Bad Request\"") {
		t.Errorf("check of an HTTP server: exit %d, stderr %q", r.code, r.stderr)
	}
}

package mesh_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestSkipStale: the lines written on a new connection before the first
// one that opens a registration are left out.
func TestSkipStale(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		stale   int
		opened  bool
	}{
		{"NICK a\r\nUSER a * * a\r\nCAP LS 302\r\nNICK a\r\n", "CAP LS 302\r\nNICK a\r\n", 2, true},
		{"CAP LS 302\r\n", "CAP LS 302\r\n", 0, true},
		{"PASS secret\r\nCAP LS 302\r\n", "PASS secret\r\nCAP LS 302\r\n", 0, true},
		{"WEBIRC p g h i\r\n", "WEBIRC p g h i\r\n", 0, true},
		{"cap ls 302\r\n", "cap ls 302\r\n", 0, true},
		{"JOIN #t.a\r\n", "", 1, false},
		{"USER a * * a\r\nPRIVMSG #x :CAP LS\r\n", "", 2, false},
		{"NICK a", "", 1, false}, // no line end: left out, the next write is checked
		{"", "", 0, false},
	} {
		out, stale, opened := mesh.SkipStale([]byte(tc.in))
		if string(out) != tc.out || stale != tc.stale || opened != tc.opened {
			t.Errorf("SkipStale(%q) = %q, %d, %v; want %q, %d, %v", tc.in, out, stale, opened, tc.out, tc.stale, tc.opened)
		}
	}
}

// TestReconnectKeepsCapabilities: a node whose connection is cut, and
// whose attempts to reconnect are closed by the other end at once, comes
// back each time with the capabilities it had (girc sends the lines queued
// for an attempt that ended on the next connection, before its CAP LS: the
// server would register the node before negotiating any).
func TestReconnectKeepsCapabilities(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	proxy := historytest.NewCutProxy(t, srv.Addr())
	cfg := testConfig(srv, "caps")
	cfg.Server = proxy.Addr()
	cfg.ReconnectMin, cfg.ReconnectMax = 5*time.Millisecond, 20*time.Millisecond
	n := connect(t, cfg)
	first, ok := n.ServerInfo()
	if !ok {
		t.Fatal("no server info once connected")
	}
	const cycles = 12
	for i := range cycles {
		proxy.Cut()
		historytest.WaitConnected(t, n, false)
		time.Sleep(60 * time.Millisecond) // attempts meet a closed door
		proxy.Restore()
		historytest.WaitConnected(t, n, true)
		info, ok := n.ServerInfo()
		if !ok {
			continue // dropped again meanwhile
		}
		if !slices.Equal(info.Caps, first.Caps) || info.Carrier != first.Carrier || info.Echo != first.Echo {
			t.Fatalf("after reconnect %d: caps %s, carrier %v, echo %v; the first connection had caps %s, carrier %v, echo %v",
				i+1, strings.Join(info.Caps, " "), info.Carrier, info.Echo, strings.Join(first.Caps, " "), first.Carrier, first.Echo)
		}
	}
	t.Logf("%d reconnects with the same capabilities (%s); %d stale lines left out", cycles, strings.Join(first.Caps, " "), n.Stats().StaleLines)
}

//go:build unix

package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/console"
	"github.com/meshbot/meshbot/internal/iitest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
)

// TestConsoleIRCOperator: an IRC operator may act, as the server says in
// its WHOIS answer, asked at each command: a person in ii on the other
// server of a two-server InspIRCd network (the test servers with an
// operator block) is refused a request, becomes an IRC operator with
// /OPER, and is answered.
func TestConsoleIRCOperator(t *testing.T) {
	net := ircdtest.StartNetwork(t, ircd.NetworkOptions{Servers: 2})
	root := iitest.Start(t, net.Server(1), "root")
	pricing := meshtest.Connect(t, nodeConfig(net.Server(0).Addr(), "pricing"))
	if err := pricing.Handle("quote", quote); err != nil {
		t.Fatal(err)
	}
	c := console.Attach(pricing, console.Config{})
	t.Cleanup(c.Stop)

	const ask = `quote {"item":"tea","qty":1}`
	answer(t, root, "pricing-1", ask, "refused: req acts on the mesh")

	name, password := net.Oper()
	root.Write("in", "/OPER "+name+" "+password, 5*time.Second)
	root.WaitLines("out", 10*time.Second, "the server's word that root is an IRC operator", func(ls []string) bool {
		for _, l := range ls {
			if strings.Contains(l, "You are now a") { // 381: "... an IRC operator", InspIRCd "... a NetAdmin"
				return true
			}
		}
		return false
	})
	answer(t, root, "pricing-1", ask, `pricing answered quote in `)
}

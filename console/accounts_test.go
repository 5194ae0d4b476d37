//go:build unix

package console_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshbot/meshbot/console"
	"github.com/meshbot/meshbot/internal/iitest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
)

// TestConsoleAccounts: on a mesh whose console is restricted and trusts
// the account carol, people logged in with NickServ (atheme-services
// linked to InspIRCd, or ergo's own) are told apart by the server's
// account tag: carol reads and acts; dave, logged in to another account,
// and eve, not logged in, are refused, each told who the console saw.
// ngIRCd has no accounts: the test does not run there.
func TestConsoleAccounts(t *testing.T) {
	if spec := ircdtest.Spec(t); !ircd.HasAccounts(spec.Kind) {
		t.Skipf("%s=%s has no accounts: the console's allow-list is tested on InspIRCd (with atheme-services) and ergo", ircd.EnvVar, spec)
	}
	accounts := map[string]string{"carol": "carol-secret-1", "dave": "dave-secret-2"}
	srv := ircdtest.StartWithAccounts(t, accounts)
	people := map[string]*iitest.Client{}
	for _, nick := range []string{"carol", "dave", "eve"} {
		people[nick] = iitest.Start(t, srv, nick)
	}
	pricing := meshtest.Connect(t, nodeConfig(srv.Addr(), "pricing"))
	if err := pricing.Handle("quote", quote); err != nil {
		t.Fatal(err)
	}
	c := console.Attach(pricing, console.Config{Accounts: []string{"Carol"}, Restricted: true})
	t.Cleanup(c.Stop)

	// Log in as a person does: /msg NickServ IDENTIFY ACCOUNT PASSWORD
	// (repeated until NickServ answers: it is there only once the
	// client has registered).
	for _, nick := range []string{"carol", "dave"} {
		p := people[nick]
		deadline := time.Now().Add(20 * time.Second)
		for {
			p.Say("NickServ", "IDENTIFY "+nick+" "+accounts[nick])
			ls := p.Lines("nickserv/out")
			if containsLine(ls, "logged in as") || containsLine(ls, "now logged in") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: NickServ did not log in within 20 s: %q", nick, ls)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pricing.WaitFor(ctx, "pricing"); err != nil {
		t.Fatal(err)
	}

	answer(t, people["carol"], "pricing-1", "status", "pricing-1: service pricing")
	answer(t, people["carol"], "pricing-1", `quote {"item":"coffee","qty":1}`, `{"item":"coffee","qty":1,"total":"4.20"}`)
	answer(t, people["dave"], "pricing-1", "status", "refused: status is restricted on this mesh; it is for IRC operators, channel operators of the mesh's channels and the mesh's allowed accounts (you: logged in as dave)")
	answer(t, people["dave"], "pricing-1", `quote {"item":"coffee","qty":1}`, "refused: req acts on the mesh; it is for IRC operators, channel operators of the mesh's channels and the mesh's allowed accounts (you: logged in as dave)")
	answer(t, people["eve"], "pricing-1", "members", "refused: members is restricted on this mesh; it is for IRC operators, channel operators of the mesh's channels and the mesh's allowed accounts (you: not logged in)")
}

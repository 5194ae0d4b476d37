package mesh_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// forgedUpdate is a state update of domain that claims key=value, sent as
// sender and sealed by signer (nil: unsigned).
func forgedUpdate(t *testing.T, domain string, sender envelope.Sender, signer envelope.Signer, key, value string) (*envelope.Envelope, []byte) {
	t.Helper()
	u := &state.Update{ID: envelope.NewID(), Domain: domain, Writer: sender, SentAt: time.Now().UnixNano(), Version: 1 << 40,
		Puts: []state.KeyPut{{Key: key, Version: 1 << 40, Value: []byte(value)}}}
	env, err := u.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := envelope.Seal(env, signer)
	if err != nil {
		t.Fatal(err)
	}
	return env, sealed
}

// TestStateForgedUpdate: updates of a domain from anyone but its owner are
// refused and counted, whatever they claim (§8.6). From a raw IRC
// connection: an update claiming to be the owner's, sent from another
// service's nick (in the ed25519 mesh also signed with that service's key),
// and an update of another service, signed with its own key.
func TestStateForgedUpdate(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		srv := ircdtest.Start(t)
		tags := ircdtest.Probe(t, srv).Has("message-tags")
		nodes := connectAll(t,
			stateConfig(srv, m, "cfg", []string{"cfg"}, nil),
			stateConfig(srv, m, "audit", nil, []string{"cfg"}))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		owner, _ := nodes[0].Domain("cfg")
		reader, _ := nodes[1].Domain("cfg")
		if err := nodes[1].WaitForDomains(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := owner.Put(ctx, "flag", []byte("on")); err != nil {
			t.Fatal(err)
		}
		var billing mesh.Config
		billing.Service = "billing"
		m.Apply(&billing) // the attacker holds billing's key

		raw := dialRaw(t, srv, "billing-x1")
		channel := mesh.Channel("t", state.Topic("cfg"))
		raw.send("JOIN " + channel)
		raw.waitFor(" 366 ")
		send := func(env *envelope.Envelope, sealed []byte) {
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
				if len(l.Tags) > 0 {
					var parts []string
					for k, v := range l.Tags {
						parts = append(parts, k+"="+v)
					}
					line = "@" + strings.Join(parts, ";") + " " + line
				}
				raw.send(line)
			}
		}
		before := nodes[1].Stats().Rejected
		send(forgedUpdate(t, "cfg", envelope.Sender{Service: "cfg", Instance: "evil", Incarnation: 1}, billing.Signer, "flag", "off"))
		send(forgedUpdate(t, "cfg", envelope.Sender{Service: "billing", Instance: "x1", Incarnation: 1}, billing.Signer, "flag", "off"))
		waitUntil(t, 10*time.Second, "both forged updates to be refused", func() bool { return nodes[1].Stats().Rejected >= before+2 })

		// The owner writes after them: the reader's copy has it, and never
		// had the forged value.
		if _, err := owner.Put(ctx, "after", []byte("1")); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the owner's next write", func() bool { _, err := reader.Get(ctx, "after"); return err == nil })
		if e, _ := reader.Get(ctx, "flag"); string(e.Value) != "on" || e.Version != 1 {
			t.Fatalf("flag is %+v after forged updates", e)
		}
		st := nodes[1].Stats()
		// The update claiming the owner's name from billing's nick is
		// refused by the sender binding (§4.4) in every mode; billing's
		// own update is refused by the owner rule.
		want := map[string]uint64{"not-owner": 1, "wrong-sender": 1}
		for reason, n := range want {
			if st.RejectedBy[reason] != n {
				t.Errorf("rejected as %s: %d, want %d (all %v)", reason, st.RejectedBy[reason], n, st.RejectedBy)
			}
		}
		if info := reader.Info(); info.Refused != want["not-owner"] {
			t.Errorf("refused %d as not the owner's, want %d", info.Refused, want["not-owner"])
		}
	})
}

// TestStateForgedSnapshot: a member that holds a copy but not the domain
// cannot forge it in the snapshots it serves (§8.5): a newcomer verifies
// every update of the pages with its own trust and the owner rule. The
// holder here adds two forged updates to every page it serves: one of the
// owner's service (in the ed25519 mesh signed with the holder's own key
// and attributed to an owner's nick; in the others attributed to the
// holder's nick, since there a holder that lies about nicks is believed:
// HMAC lets any key holder sign as any service, and nothing is signed in
// an unsigned mesh), and one of the holder's service. The newcomer
// refuses both and ends with the owner's state.
func TestStateForgedSnapshot(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *meshtest.Mode) {
		srv := ircdtest.Start(t)
		nodes := connectAll(t,
			stateConfig(srv, m, "cfg", []string{"cfg"}, nil),
			stateConfig(srv, m, "billing", nil, []string{"cfg"}))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		owner, evil := mustDomain(t, nodes[0], "cfg"), nodes[1]
		honest := mustDomain(t, evil, "cfg")
		if err := evil.WaitForDomains(ctx); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"a", "b", "c"} {
			if _, err := owner.Put(ctx, k, []byte("real")); err != nil {
				t.Fatal(err)
			}
		}
		want := converged(t, 10*time.Second, owner, honest)

		var billing mesh.Config
		billing.Service = "billing"
		m.Apply(&billing)
		claimed := evil.Nick()
		if m.Name == meshtest.Ed25519Required {
			claimed = "cfg-evil"
		}
		err := evil.Handle(state.SnapshotMethod, func(ctx context.Context, r *mesh.Request) ([]byte, error) {
			req, err := state.DecodePageRequest(r.Payload)
			if err != nil {
				return nil, err
			}
			_, a := forgedUpdate(t, "cfg", envelope.Sender{Service: "cfg", Instance: "evil", Incarnation: 1}, billing.Signer, "a", "forged")
			_, b := forgedUpdate(t, "cfg", envelope.Sender{Service: "billing", Instance: "x", Incarnation: 1}, billing.Signer, "b", "forged")
			p := mesh.ServeSnapshotPage(honest, req)
			p.Updates = append(p.Updates, state.Sealed{Envelope: a, Nick: claimed}, state.Sealed{Envelope: b, Nick: evil.Nick()})
			return state.EncodePage(p)
		})
		if err != nil {
			t.Fatal(err)
		}
		// The owner leaves: the forger is the only holder.
		if err := nodes[0].Close(ctx); err != nil {
			t.Fatal(err)
		}
		late := meshtest.Connect(t, stateConfig(srv, m, "late", nil, []string{"cfg"}))
		d := mustDomain(t, late, "cfg")
		sameState(t, want, d)
		reasons := map[string]uint64{"not-owner": 2}
		if m.Name == meshtest.Ed25519Required {
			reasons = map[string]uint64{"not-owner": 1, "unknown-key": 1}
		}
		st := late.Stats()
		for reason, n := range reasons {
			if st.RejectedBy[reason] < n {
				t.Errorf("rejected as %s: %d, want at least %d (all %v)", reason, st.RejectedBy[reason], n, st.RejectedBy)
			}
		}
	})
}

func mustDomain(t *testing.T, n *mesh.Node, name string) *mesh.Domain {
	t.Helper()
	d, err := n.Domain(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

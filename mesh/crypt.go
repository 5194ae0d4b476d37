package mesh

import (
	"strings"

	"github.com/meshbot/meshbot/envelope"
)

// Encrypted payloads (docs/PROTOCOL.md §4.5). With Config.Crypter, the
// node encrypts the payload (and headers, and a response's error) of every
// event, request and response it sends — channels with the mesh key, DMs
// with the key its service agrees with the receiving service (X25519), or
// the mesh key when either has no X25519 key — and opens those it receives
// (its decoders, live and history alike, hold the Crypter). The routing
// fields stay readable: claims, membership, history and replay work on
// encrypted events unchanged, and recorders store ciphertext.

// wireEnvelope returns what goes on the wire for env sent to target: env
// itself, or an encrypted copy. plain is env when the copy differs (the
// node hands its own events to its subscriptions in clear on servers
// without echo-message).
func (n *Node) wireEnvelope(target string, env *envelope.Envelope) (wire, plain *envelope.Envelope, err error) {
	c := n.cfg.Crypter
	if c == nil || !env.Kind.UserPayload() {
		return env, nil, nil
	}
	peer := ""
	if !strings.HasPrefix(target, "#") {
		if svc, _, ok := ParseNick(target); ok {
			peer = svc
		}
	}
	wire, err = c.Encrypt(env, peer)
	if err != nil {
		return nil, nil, err
	}
	return wire, env, nil
}

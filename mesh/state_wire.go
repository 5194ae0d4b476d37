package mesh

import (
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/state"
)

// decodeLine decodes a received line with the node's decoder. On a
// domain's channel it also returns each accepted envelope's bytes as
// received (sealed[i] for envs[i]): a copy serves its updates to
// newcomers exactly as their writers signed them (docs/PROTOCOL.md §8.5),
// unknown keys of newer writers included. Elsewhere sealed is nil.
func (n *Node) decodeLine(target, nick string, tags map[string]string, text string, now time.Time) (envs []*envelope.Envelope, sealed [][]byte, mesh bool, err error) {
	if !strings.HasSuffix(strings.ToLower(target), state.TopicSuffix) {
		envs, mesh, err = n.dec.Decode(nick, tags, text, now)
		return envs, nil, mesh, err
	}
	dl := n.dec.DecodeLine(nick, tags, text, now)
	envs, mesh, err = dl.Result()
	if len(envs) > 0 {
		sealed = make([][]byte, 0, len(envs))
		for _, e := range dl.Envelopes {
			if e.Err == nil {
				sealed = append(sealed, e.Sealed)
			}
		}
	}
	return envs, sealed, mesh, err
}

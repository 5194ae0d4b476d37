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
// unknown keys of newer writers included. Elsewhere sealed is nil. With
// detail (the line is observed), dl says everything the decoder learned
// (carrier, fragments, signature states); otherwise dl is nil and the
// decoder takes its fast path.
func (n *Node) decodeLine(target, nick string, tags map[string]string, text string, now time.Time, detail bool) (dl *envelope.DecodedLine, envs []*envelope.Envelope, sealed [][]byte, mesh bool, err error) {
	domain := strings.HasSuffix(strings.ToLower(target), state.TopicSuffix)
	if !domain && !detail {
		envs, mesh, err = n.dec.Decode(nick, tags, text, now)
		return nil, envs, nil, mesh, err
	}
	line := n.dec.DecodeLine(nick, tags, text, now)
	dl = &line
	envs, mesh, err = dl.Result()
	if !domain {
		return dl, envs, nil, mesh, err
	}
	if len(envs) > 0 {
		sealed = make([][]byte, 0, len(envs))
		for _, e := range dl.Envelopes {
			if e.Err == nil {
				sealed = append(sealed, e.Sealed)
			}
		}
	}
	return dl, envs, sealed, mesh, err
}

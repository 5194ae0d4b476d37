package history

import (
	"context"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// Source is the history service's record as a mesh.HistorySource: set it
// as mesh.Config.History and the node catches its multicast subscriptions
// up after a reconnect and resumes its anycast subscriptions, reading
// pages with Replay (from the recorders, or the server's CHATHISTORY when
// no recorder answers) and verifying every line with the node's own trust.
type Source struct{}

// NewSource returns the history service's record as a mesh.HistorySource.
func NewSource() *Source { return &Source{} }

// Replay implements mesh.HistorySource. Each call decodes with its own
// decoder: subscriptions are caught up concurrently.
func (*Source) Replay(ctx context.Context, n *mesh.Node, topic string, since time.Time, fn func(mesh.Recorded) error) (mesh.ReplayCount, error) {
	var count mesh.ReplayCount
	st, err := Replay(ctx, n, topic, ReplayOptions{Since: since, OnReject: count.Reject}, fn)
	count.Lines, count.Envelopes = st.Lines, st.Envelopes
	return count, err
}

var _ mesh.HistorySource = (*Source)(nil)

package history

import (
	"context"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// The server's CHATHISTORY (ergo) is the second source of history: used
// when no recorder answers, by Replay (and so by catch-up and resume) and
// by a recorder filling a hole (docs/PROTOCOL.md §7.8).

// ChatHistoryPages calls fn with pages of topic's lines from the server's
// CHATHISTORY, oldest first, after the line with msgid afterMsgID (or the
// first after afterTime; both zero: from the oldest kept), until the end,
// an error from fn, or ctx. It fails with mesh.ErrNoChatHistory on a
// server without CHATHISTORY.
func ChatHistoryPages(ctx context.Context, n *mesh.Node, topic string, afterTime time.Time, afterMsgID string, fn func([]mesh.HistoryLine) error) error {
	for {
		page, err := n.ChatHistory(ctx, topic, afterTime, afterMsgID, 0)
		if err != nil {
			return err
		}
		if len(page.Lines) > 0 {
			if err := fn(page.Lines); err != nil {
				return err
			}
		}
		if page.Items == 0 || page.Items < n.ChatHistoryLimit() ||
			(page.NextMsgID == afterMsgID && page.NextTime.Equal(afterTime)) { // the end, or no progress
			return nil
		}
		afterTime, afterMsgID = page.NextTime, page.NextMsgID
	}
}

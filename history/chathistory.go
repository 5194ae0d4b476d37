package history

import (
	"context"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// The server's CHATHISTORY (ergo) is the second source of history: used
// when no recorder answers, by Replay (and so by catch-up and resume) and
// by a recorder filling a hole (docs/PROTOCOL.md §7.8).

// chatHistoryPages calls fn with pages of topic's lines from the server's
// CHATHISTORY, oldest first, after the line with msgid afterMsgID (or the
// first after afterTime; both zero: from the oldest kept), until the end,
// an error from fn, or ctx. It fails with mesh.ErrNoChatHistory on a
// server without CHATHISTORY.
func chatHistoryPages(ctx context.Context, n *mesh.Node, topic string, afterTime time.Time, afterMsgID string, fn func([]mesh.HistoryLine) error) error {
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

// historyRecord turns a CHATHISTORY line into a record of channel ch.
func historyRecord(ch string, l mesh.HistoryLine) Record {
	return Record{Channel: ch, Time: l.Time, MsgID: l.MsgID, Nick: l.Nick, Tags: l.Tags, Body: l.Body}
}

// replayFromServer is Replay from the server's CHATHISTORY, for when no
// recorder answers: the same options, decoding, de-duplication (recent:
// the ids delivered already) and stats.
// It fails with mesh.ErrNoChatHistory on a server without CHATHISTORY.
func replayFromServer(ctx context.Context, n *mesh.Node, topic string, o ReplayOptions, dec *envelope.Decoder, recent *envelope.Guard, st *ReplayStats, fn func(Replayed) error) error {
	var after time.Time
	var msgid string
	switch {
	case o.After != nil:
		after, msgid = o.After.Time, o.After.MsgID
	case !o.Since.IsZero():
		after = o.Since.Add(-time.Millisecond) // the server's "after" is exclusive, its times in ms
	}
	return chatHistoryPages(ctx, n, topic, after, msgid, func(lines []mesh.HistoryLine) error {
		st.Pages++
		for _, l := range lines {
			st.Lines++
			st.Last = Offset{Time: l.Time, MsgID: l.MsgID}
			envs, isMesh, err := dec.Decode(l.Nick, l.Tags, l.Body, l.Time)
			if !isMesh || err != nil {
				st.Rejected++
			}
			for _, env := range envs {
				if !recent.Add(env.ID) {
					continue
				}
				st.Envelopes++
				if err := fn(Replayed{Offset: st.Last, Nick: l.Nick, Envelope: env}); err != nil {
					return err
				}
			}
		}
		if o.Progress != nil {
			o.Progress(st.Lines, 0)
		}
		return nil
	})
}

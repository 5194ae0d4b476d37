package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestChatHistory: where the server offers CHATHISTORY (ergo), a node gets
// a channel's lines back from it, oldest first, paged after a msgid, with
// their msgids and tags (without the answer's batch tag); those lines do
// not reach the node's subscription a second time. Where it does not
// (InspIRCd, ngIRCd), ChatHistory fails at once with ErrNoChatHistory.
func TestChatHistory(t *testing.T) {
	srv := ircdtest.Start(t)
	nodes := connectAll(t, testConfig(srv, "orders"), testConfig(srv, "audit"))
	pub, reader := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	col := newCollector()
	if _, err := reader.Subscribe(ctx, "orders", col.handle); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 30 {
		ack, err := pub.Publish(ctx, "orders", []byte(fmt.Sprintf("e-%02d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.MsgID)
	}
	col.waitFor(t, 30, 10*time.Second)

	if reader.ChatHistoryLimit() == 0 {
		_, err := reader.ChatHistory(ctx, "orders", time.Time{}, "", 10)
		if !errors.Is(err, mesh.ErrNoChatHistory) {
			t.Fatalf("ChatHistory on a server without it: %v, want ErrNoChatHistory", err)
		}
		return
	}
	// Page by msgid: 10 lines after the 5th.
	page, err := reader.ChatHistory(ctx, "orders", time.Time{}, ids[4], 10)
	if err != nil {
		t.Fatal(err)
	}
	lines := page.Lines
	if page.Items != 10 || page.NextMsgID != ids[14] {
		t.Fatalf("page of %d items ending at %s, want 10 ending at %s", page.Items, page.NextMsgID, ids[14])
	}
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 10", len(lines))
	}
	for i, l := range lines {
		if l.MsgID != ids[5+i] {
			t.Fatalf("line %d has msgid %s, want %s", i, l.MsgID, ids[5+i])
		}
		if _, ok := l.Tags["batch"]; ok || l.Time.IsZero() || l.Nick != pub.Nick() {
			t.Fatalf("line %d: %+v", i, l)
		}
	}
	// From the start: the whole channel (joins are not lines).
	all, err := reader.ChatHistory(ctx, "orders", time.Time{}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Lines) != 30 || all.Lines[29].MsgID != ids[29] || all.Items < 30 {
		t.Fatalf("%d lines (%d items) from the start, want the 30 published", len(all.Lines), all.Items)
	}
	time.Sleep(300 * time.Millisecond)
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.got) != 30 {
		t.Fatalf("the subscription received %d events, want 30: history answers leaked into the live path", len(col.got))
	}
}

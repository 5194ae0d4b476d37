package meshtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// shop is the service the replay tests run, live and replayed, through
// the same setup: a request handler, a multicast subscription that
// publishes, and an anycast subscription (by key, with retries and dead
// letters).
//
//   - quote: prices {"item":...,"qty":...}; an item not on the menu is a
//     CodeBadRequest error.
//   - orders (multicast): each order is published again on orders.seen
//     with its number; a payload that is not JSON is a handler error.
//   - jobs (anycast, group shop, by the job's customer): "fail-*" always
//     fails (dead-lettered after 3 attempts), "flaky-*" fails its first
//     attempt, the others are published on jobs.done with their attempt.
const (
	shopService  = "shop"
	shopAttempts = 3
	shopRetry    = 200 * time.Millisecond
)

var shopMenu = map[string]int{"tea": 350, "scone": 275}

func shopSetup(ctx context.Context, n *mesh.Node) error {
	if err := n.Handle("quote", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		var o struct {
			Item string `json:"item"`
			Qty  int    `json:"qty"`
		}
		if err := json.Unmarshal(r.Payload, &o); err != nil {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "not an order: %v", err)
		}
		price, ok := shopMenu[o.Item]
		if !ok {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "we do not sell %q", o.Item)
		}
		return fmt.Appendf(nil, `{"item":%q,"total":%d}`, o.Item, price*o.Qty), nil
	}); err != nil {
		return err
	}
	if _, err := n.Subscribe(ctx, "orders", func(ctx context.Context, m *mesh.Message) error {
		var o struct {
			Order int `json:"order"`
		}
		if err := json.Unmarshal(m.Payload, &o); err != nil {
			return fmt.Errorf("bad order: %w", err)
		}
		_, err := n.Publish(ctx, "orders.seen", fmt.Appendf(nil, `{"seen":%d}`, o.Order))
		return err
	}); err != nil {
		return err
	}
	customer := func(m *mesh.Message) string { c, _, _ := strings.Cut(string(m.Payload), "/"); return c }
	_, err := n.SubscribeAnycast(ctx, "jobs", func(ctx context.Context, m *mesh.Message) error {
		_, job, _ := strings.Cut(string(m.Payload), "/")
		switch {
		case strings.HasPrefix(job, "fail-"):
			return errors.New("this job always fails")
		case strings.HasPrefix(job, "flaky-") && m.Claim.Attempt == 1:
			return errors.New("first attempt fails")
		}
		_, err := n.Publish(ctx, "jobs.done", fmt.Appendf(nil, "%s attempt %d", m.Payload, m.Claim.Attempt))
		return err
	}, mesh.ByKey(customer), mesh.MaxAttempts(shopAttempts), mesh.RetryDelay(shopRetry))
	return err
}

// Package billing is the demo's billing service (meshbot demo), as a
// package a main and a test share: it charges each order published on
// orders.created exactly once across its instances (an anycast group) and
// publishes the charge on billing.charged. An order over the limit needs
// a person's approval: billing refuses it, the mesh retries it, and after
// MaxAttempts it goes to the dead-letter topic orders.created._dead.
//
// Register is all a main calls after mesh.Connect (cmd/billing), and all
// a test replays a recorded log into (billing_test.go): the service has
// one shape, in production and under test.
package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// Topics and group.
const (
	OrdersTopic  = "orders.created"
	ChargedTopic = "billing.charged"
	Group        = "billing"
)

// Limit is the largest total billing charges without approval, in cents.
const Limit = 1000

// MaxAttempts and RetryDelay: how often an order over the limit is tried
// before it is dead-lettered, and how long apart.
const (
	MaxAttempts = 3
	RetryDelay  = 500 * time.Millisecond
)

// Order is what the demo's orders service publishes.
type Order struct {
	Order int    `json:"order"`
	Item  string `json:"item"`
	Qty   int    `json:"qty"`
	Total string `json:"total"` // "7.00"
}

// Charge is what billing publishes for an order.
type Charge struct {
	Order int    `json:"order"`
	Cents int    `json:"cents"`
	Token uint64 `json:"token"` // the claim's fencing token
}

// Register subscribes billing on n.
func Register(ctx context.Context, n *mesh.Node) error {
	_, err := n.SubscribeAnycast(ctx, OrdersTopic, func(ctx context.Context, m *mesh.Message) error {
		var o Order
		if err := json.Unmarshal(m.Payload, &o); err != nil {
			return fmt.Errorf("not an order: %w", err)
		}
		cents, err := parseCents(o.Total)
		if err != nil {
			return fmt.Errorf("order %d: %w", o.Order, err)
		}
		if cents > Limit {
			return fmt.Errorf("order %d: %s is over the limit of %d.%02d: needs approval", o.Order, o.Total, Limit/100, Limit%100)
		}
		charge, _ := json.Marshal(Charge{Order: o.Order, Cents: cents, Token: m.Claim.Token})
		_, err = n.Publish(ctx, ChargedTopic, charge, mesh.WithContentType("application/json"))
		return err
	}, mesh.Group(Group), mesh.MaxAttempts(MaxAttempts), mesh.RetryDelay(RetryDelay))
	return err
}

// parseCents reads "7.00" as 700.
func parseCents(total string) (int, error) {
	f, err := strconv.ParseFloat(total, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("total %q is not an amount", total)
	}
	return int(f*100 + 0.5), nil
}

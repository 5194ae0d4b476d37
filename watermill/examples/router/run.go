package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/meshbot/meshbot/mesh"
	meshwatermill "github.com/meshbot/meshbot/watermill"
)

// Options of a run.
type Options struct {
	Server, Namespace string
	// Orders is how many orders to publish; two of them are poison (one
	// fails, one panics) and every fifth is flaky (fails once).
	Orders int
}

// Topics (valid meshbot topics, so they are kept as they are).
const (
	ordersTopic = "orders.created"
	poisonTopic = "orders.poison"
)

// Run publishes the orders, waits until each is billed or poisoned, and
// writes what happened to out, sorted.
func Run(ctx context.Context, o Options, out io.Writer) error {
	cfg := func(service string) mesh.Config {
		c := mesh.DefaultConfig()
		c.Server, c.Namespace, c.Service = o.Server, o.Namespace, service
		return c
	}
	var (
		pub      *meshwatermill.Publisher
		billing  [2]*meshwatermill.Subscriber
		audit    *meshwatermill.Subscriber
		wg       sync.WaitGroup
		errs     = make([]error, 4)
		group    = meshwatermill.SubscriberConfig{ConsumerGroup: "billing", RetryDelay: 100 * time.Millisecond}
		multicst = meshwatermill.SubscriberConfig{}
	)
	// Each connection takes a registration round with the server: connect
	// them at once.
	wg.Go(func() {
		pub, errs[0] = meshwatermill.ConnectPublisher(ctx, cfg("shop"), meshwatermill.PublisherConfig{})
	})
	wg.Go(func() { billing[0], errs[1] = meshwatermill.ConnectSubscriber(ctx, cfg("billing"), group) })
	wg.Go(func() { billing[1], errs[2] = meshwatermill.ConnectSubscriber(ctx, cfg("billing"), group) })
	wg.Go(func() { audit, errs[3] = meshwatermill.ConnectSubscriber(ctx, cfg("audit"), multicst) })
	wg.Wait()
	defer func() {
		for _, s := range []*meshwatermill.Subscriber{billing[0], billing[1], audit} {
			if s != nil {
				s.Close()
			}
		}
		if pub != nil {
			pub.Close()
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	outcomes := make(chan string, 4*o.Orders)
	var flaky sync.Map // orders that failed once already
	bill := func(m *message.Message) error {
		order := string(m.Payload)
		switch {
		case order == "order-bad":
			return errors.New("card declined")
		case order == "order-panic":
			panic("nil price")
		case strings.HasSuffix(order, "-flaky"):
			if _, again := flaky.LoadOrStore(order, true); !again {
				return errors.New("payment service busy")
			}
			outcomes <- "billed " + order + " (after a retry)"
			return nil
		}
		outcomes <- "billed " + order
		return nil
	}

	var routers []*message.Router
	for i, sub := range billing {
		r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
		if err != nil {
			return err
		}
		poison, err := middleware.PoisonQueue(pub, poisonTopic)
		if err != nil {
			return err
		}
		// Outermost first: a handler error (a panic turned into one by the
		// recoverer) is retried twice, then the message goes to the
		// poison queue and is acknowledged.
		r.AddMiddleware(
			poison,
			middleware.Retry{MaxRetries: 2, InitialInterval: 10 * time.Millisecond, Logger: watermill.NopLogger{}}.Middleware,
			middleware.Recoverer,
		)
		r.AddNoPublisherHandler(fmt.Sprintf("bill-%d", i+1), ordersTopic, sub, bill)
		if i == 0 {
			r.AddNoPublisherHandler("audit", poisonTopic, audit, func(m *message.Message) error {
				// The recoverer's reason carries the stack: keep the start.
				reason, _, _ := strings.Cut(m.Metadata.Get(middleware.ReasonForPoisonedKey), ", stacktrace:")
				outcomes <- fmt.Sprintf("poisoned %s: %s", m.Payload, reason)
				return nil
			})
		}
		routers = append(routers, r)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	for _, r := range routers {
		go func() { _ = r.Run(runCtx) }()
		defer r.Close()
	}
	for _, r := range routers {
		select {
		case <-r.Running():
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	var msgs []*message.Message
	for i := 1; i <= o.Orders-2; i++ {
		order := fmt.Sprintf("order-%d", i)
		if i%5 == 0 {
			order += "-flaky"
		}
		msgs = append(msgs, message.NewMessage(watermill.NewUUID(), []byte(order)))
	}
	msgs = append(msgs,
		message.NewMessage(watermill.NewUUID(), []byte("order-bad")),
		message.NewMessage(watermill.NewUUID(), []byte("order-panic")))
	if err := pub.Publish(ordersTopic, msgs...); err != nil {
		return err
	}

	var lines []string
	for len(lines) < len(msgs) {
		select {
		case l := <-outcomes:
			lines = append(lines, l)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d orders done: %w", len(lines), len(msgs), ctx.Err())
		}
	}
	for _, r := range routers {
		if err := r.Close(); err != nil {
			return err
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

package mesh_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

func ExampleConnect() {
	cfg := mesh.DefaultConfig()
	cfg.Server = "127.0.0.1:6667"
	cfg.Namespace = "shop"
	cfg.Service = "orders"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := mesh.Connect(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close(context.Background())
	fmt.Println("connected as", node.Nick())
}

func ExampleNode_Publish() {
	var node *mesh.Node // from mesh.Connect
	ack, err := node.Publish(context.Background(), "orders.created", []byte(`{"id":42}`),
		mesh.WithContentType("application/json"))
	if err != nil {
		log.Fatal(err) // errors.Is(err, mesh.ErrNotConfirmed): may or may not have been delivered
	}
	fmt.Println("accepted by the server:", ack.ID.Short(), ack.MsgID)
}

func ExampleNode_Subscribe() {
	var node *mesh.Node // from mesh.Connect
	sub, err := node.Subscribe(context.Background(), "orders.created",
		func(ctx context.Context, m *mesh.Message) error {
			fmt.Printf("%s from %s: %s\n", m.ID.Short(), m.Sender.Service, m.Payload)
			return nil
		}, mesh.Concurrency(4), mesh.QueueLen(10000))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe(context.Background())
}

func ExampleNode_Request() {
	var pricing, shop *mesh.Node // from mesh.Connect, services "pricing" and "shop"
	pricing.Handle("quote", func(ctx context.Context, r *mesh.Request) ([]byte, error) {
		if len(r.Payload) == 0 {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "empty item")
		}
		return []byte("42"), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	price, err := shop.Request(ctx, "pricing", "quote", []byte("apple"))
	fmt.Println(string(price), err)
}

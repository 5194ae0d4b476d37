package meshwatermill_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
	meshwatermill "github.com/meshbot/meshbot/watermill"
)

// env is one test mesh: a real IRC server (MESH_IRCD), a namespace, a
// history recorder recording it, and a pool of connected nodes.
type env struct {
	srv  *ircd.Server
	ns   string
	rec  *historytest.Recorder
	pool *nodePool
	// sub is the base configuration of the subscribers the env makes.
	sub meshwatermill.SubscriberConfig
}

// newEnv starts a server, a recorder on namespace ns and a pool keeping
// spare nodes connected; everything stops when the test ends.
func newEnv(t *testing.T, ns string, spare int) *env {
	t.Helper()
	e := &env{srv: ircdtest.Start(t), ns: ns}
	rcfg := e.config(history.Service)
	e.rec = historytest.StartRecorder(t, rcfg, filepath.Join(t.TempDir(), "history.db"), recorder.Config{Rescan: 100 * time.Millisecond})
	pcfg := e.config("wm")
	// A registration the loaded test machine cuts short is tried again.
	pcfg.RetryOnFailedConnect = true
	e.pool = newPool(pcfg, spare, min(spare, 12))
	t.Cleanup(e.pool.close)
	return e
}

// config is the node configuration of service on the env's mesh: with
// history, so that consumer groups resume from the recorder.
func (e *env) config(service string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server = e.srv.Addr()
	cfg.Namespace = e.ns
	cfg.Service = service
	cfg.History = history.NewSource()
	if hb, err := time.ParseDuration(os.Getenv("HB")); err == nil {
		cfg.HeartbeatInterval = hb
	}
	if os.Getenv("MESHWM_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("svc", service)
	}
	return cfg
}

// pubSub makes a Publisher and a Subscriber (of group, "" for multicast),
// each on a node of its own that it closes.
func (e *env) pubSub(t *testing.T, group string) (message.Publisher, message.Subscriber) {
	t.Helper()
	pn, err := e.pool.get()
	if err != nil {
		t.Fatal(err)
	}
	sn, err := e.pool.get()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := meshwatermill.NewPublisher(pn, meshwatermill.PublisherConfig{CloseNode: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.sub
	cfg.ConsumerGroup = group
	cfg.CloseNode = true
	sub, err := meshwatermill.NewSubscriber(sn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if group == "" {
		return pub, sub
	}
	return pub, &recordedSubscriber{Subscriber: sub, e: e}
}

// recordedSubscriber is a consumer-group Subscriber whose
// SubscribeInitialize also waits until the env's recorder records the
// topic: what a deployment gets by creating topics ahead of their first
// publish (meshbot has no way for a member to ask a recorder to record a
// topic now).
type recordedSubscriber struct {
	*meshwatermill.Subscriber
	e *env
}

func (s *recordedSubscriber) SubscribeInitialize(topic string) error {
	if err := s.Subscriber.SubscribeInitialize(topic); err != nil {
		return err
	}
	return s.e.waitRecorded(meshwatermill.DefaultTopicMapper(s.e.ns)(topic))
}

// waitRecorded waits until the recorder is in topic's channel: it finds
// a new channel within its rescan interval (100 ms here), or later on a
// starved machine, hence the generous bound.
func (e *env) waitRecorded(topic string) error {
	const patience = 60 * time.Second
	deadline := time.Now().Add(patience)
	for !slices.Contains(e.rec.Topics(), topic) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the recorder did not find %s in %v", topic, patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// nodePool keeps nodes connected ahead of need: InspIRCd completes a
// registration about a second after the connection, and Watermill's
// suite makes hundreds of subscribers and publishers, many one after the
// other. Nodes handed out belong to whoever took them; close closes the
// ones left, and every node it made (Close is idempotent).
type nodePool struct {
	cfg   mesh.Config
	ready chan *mesh.Node
	stop  chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	all     []*mesh.Node
	lastErr error
	once    sync.Once
}

// newPool keeps spare nodes of cfg ready, connecting up to parallel at
// once.
func newPool(cfg mesh.Config, spare, parallel int) *nodePool {
	p := &nodePool{cfg: cfg, ready: make(chan *mesh.Node, spare), stop: make(chan struct{})}
	for range parallel {
		p.wg.Go(p.fill)
	}
	return p
}

func (p *nodePool) fill() {
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := mesh.Connect(ctx, p.cfg)
		cancel()
		if err != nil {
			p.mu.Lock()
			p.lastErr = err
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(time.Second):
			}
			continue
		}
		p.mu.Lock()
		p.all = append(p.all, n)
		p.mu.Unlock()
		select {
		case p.ready <- n:
		case <-p.stop:
			return
		}
	}
}

// get returns a connected node, or fails after 60 s without one.
func (p *nodePool) get() (*mesh.Node, error) {
	select {
	case n := <-p.ready:
		return n, nil
	case <-time.After(60 * time.Second):
		p.mu.Lock()
		defer p.mu.Unlock()
		return nil, fmt.Errorf("node pool: no node connected in 60 s (last error: %v)", p.lastErr)
	}
}

func (p *nodePool) close() {
	p.once.Do(p.closeOnce)
}

func (p *nodePool) closeOnce() {
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	all := p.all
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range all {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = n.Close(ctx)
		})
	}
	wg.Wait()
}

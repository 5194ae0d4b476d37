package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/meshbot/meshbot/internal/bench"
)

// startNATS starts an embedded nats-server on a free port of 127.0.0.1,
// with its defaults otherwise (no logging, no signal handlers).
func startNATS() (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(bench.IOTimeout) {
		ns.Shutdown()
		return nil, errors.New("nats-server: not ready for connections")
	}
	return ns, nil
}

// connectNATS opens n client connections to url.
func connectNATS(url string, n int) ([]*nats.Conn, error) {
	var out []*nats.Conn
	for range n {
		nc, err := nats.Connect(url, nats.Timeout(bench.IOTimeout))
		if err != nil {
			closeNATS(out)
			return nil, fmt.Errorf("nats: %w", err)
		}
		out = append(out, nc)
	}
	return out, nil
}

func closeNATS(cs []*nats.Conn) {
	for _, nc := range cs {
		nc.Close()
	}
}

// natsFanout runs a bench.Fanout on NATS core: w.Pubs connections
// publishing to one subject that w.Subs connections subscribe to
// (multicast), or share in one queue group (anycast). Publishers write as
// fast as the client lets them (nats bench's way) and flush at the end;
// subscriptions have no pending limits, so a slow subscriber is measured,
// not cut off.
func natsFanout(ctx context.Context, url string, w bench.Fanout, prog *bench.Progress) (*bench.Rate, error) {
	pubs, err := connectNATS(url, w.Pubs)
	if err != nil {
		return nil, err
	}
	defer closeNATS(pubs)
	subs, err := connectNATS(url, w.Subs)
	if err != nil {
		return nil, err
	}
	defer closeNATS(subs)

	subject := "bench.fanout"
	var tallies []*bench.Tally
	handled := &bench.Tally{}
	for _, nc := range subs {
		var s *nats.Subscription
		if w.Anycast {
			s, err = nc.QueueSubscribe(subject, "workers", func(*nats.Msg) { handled.Add() })
		} else {
			t := &bench.Tally{}
			tallies = append(tallies, t)
			s, err = nc.Subscribe(subject, func(*nats.Msg) { t.Add() })
		}
		if err == nil {
			err = s.SetPendingLimits(-1, -1)
		}
		if err == nil {
			err = nc.Flush()
		}
		if err != nil {
			return nil, fmt.Errorf("nats: subscribing: %w", err)
		}
	}
	payload := bytes.Repeat([]byte("x"), w.Size)

	round := func(ctx context.Context, msgs int, progress *atomic.Int64) (bench.Rate, error) {
		ww := w
		if msgs > 0 {
			ww.Msgs = max(msgs, w.Pubs)
		}
		for _, t := range tallies {
			t.Reset()
		}
		handled.Reset()
		sent := make([]atomic.Int64, len(pubs))
		errs := make([]error, len(pubs))
		start := time.Now()
		stop := bench.StopAfter(ww.Duration, start)
		var wg sync.WaitGroup
		for i, nc := range pubs {
			share := ww.Msgs / ww.Pubs
			if i < ww.Msgs%ww.Pubs {
				share++
			}
			wg.Go(func() {
				for j := range share {
					if (j > 0 && stop()) || ctx.Err() != nil {
						break
					}
					if err := nc.Publish(subject, payload); err != nil {
						errs[i] = fmt.Errorf("nats: publishing: %w", err)
						return
					}
					sent[i].Add(1)
				}
				if err := nc.Flush(); err != nil && ctx.Err() == nil {
					errs[i] = fmt.Errorf("nats: flushing: %w", err)
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		total := func() int64 {
			var n int64
			for i := range sent {
				n += sent[i].Load()
			}
			return n
		}
		err := bench.WaitDelivered(ctx, done, func() (int64, int64) {
			got := handled.Count()
			if !w.Anycast {
				got = -1
				for _, t := range tallies {
					if n := t.Count(); got < 0 || n < got {
						got = n
					}
				}
			}
			progress.Store(got)
			return got, total()
		})
		<-done
		if w.Anycast {
			return bench.AnycastRate(start, total(), handled), errors.Join(append(errs, err)...)
		}
		return bench.MulticastRate(start, total(), 1, tallies), errors.Join(append(errs, err)...)
	}
	return bench.Measure(ctx, prog, "NATS "+w.Name(), w, round)
}

// natsRequests runs a bench.Requests on NATS core: one connection keeps
// w.Outstanding requests in flight (nats.Conn.RequestWithContext, as many
// goroutines) to a subscriber on another connection that responds with
// the payload.
func natsRequests(ctx context.Context, url string, w bench.Requests, prog *bench.Progress) (*bench.Latency, error) {
	conns, err := connectNATS(url, 2)
	if err != nil {
		return nil, err
	}
	defer closeNATS(conns)
	cli, srv := conns[0], conns[1]
	if _, err := srv.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if err := srv.Flush(); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	payload := bytes.Repeat([]byte("x"), w.Size)
	return bench.MeasureRoundTrips(ctx, prog, "NATS "+w.Name(), w, func(ctx context.Context, _ int) error {
		m, err := cli.RequestWithContext(ctx, "bench.echo", payload)
		if err == nil && len(m.Data) != len(payload) {
			err = errors.New("nats: an answer of " + strconv.Itoa(len(m.Data)) + " bytes")
		}
		return err
	})
}

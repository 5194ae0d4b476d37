package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// Benchmarks of domain state (docs/performance.md, "Domain state"). Like
// the others they report figures and ratios measured in the same run, and
// assert nothing about speed.
//
//	go test -run '^$' -bench State ./mesh/

const (
	benchStateUpdates = 10000 // per-key updates per round
	benchStateKeys    = 1000
	benchStateWriters = 256 // concurrent Puts (each waits for its echo)
)

// BenchmarkStateUpdates measures, per iteration, the rate at which 3
// reader nodes receive per-key updates of a domain written by one owner
// node (benchStateUpdates 200-byte puts over benchStateKeys keys, from
// benchStateWriters goroutines, each Put waiting for its update to come
// back), from the first Put until every reader's domain version is the
// owner's, and, in the same run between the same
// nodes, the multicast rate: the owner publishing as many 200-byte events
// with PublishAsync to a topic the 3 readers subscribe to. Rates are per
// reader, from the first write until every reader has everything;
// state/multicast is the ratio.
func BenchmarkStateUpdates(b *testing.B) {
	srv := ircdtest.Start(b)
	owner := benchConfig(srv, "cfg")
	owner.Owns = []string{"cfg"}
	cfgs := []mesh.Config{owner}
	for range benchSubscribers {
		r := benchConfig(srv, "reader")
		r.DomainDepends = []string{"cfg"}
		cfgs = append(cfgs, r)
	}
	_, nodes := benchConnect(b, srv, nil, cfgs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	od, _ := nodes[0].Domain("cfg")
	readers := make([]*mesh.Domain, benchSubscribers)
	tallies := make([]*benchTally, benchSubscribers)
	for i, n := range nodes[1:] {
		if err := n.WaitForDomains(ctx); err != nil {
			b.Fatal(err)
		}
		readers[i], _ = n.Domain("cfg")
		t := &benchTally{}
		tallies[i] = t
		if _, err := n.Subscribe(ctx, "events", func(context.Context, *mesh.Message) error {
			t.add()
			return nil
		}, mesh.QueueLen(benchStateUpdates+1000)); err != nil {
			b.Fatal(err)
		}
	}
	value := bytes.Repeat([]byte("v"), benchBody)
	// A reader has seen every update when its domain version is the
	// owner's (an update that loses its key to a higher write of it
	// changes no key, so changes cannot be counted).
	stateRound := func() (time.Duration, error) {
		start := time.Now()
		if err := puts(ctx, od, value); err != nil {
			return 0, err
		}
		target := od.Info().Version
		deadline := time.Now().Add(time.Minute)
		for _, r := range readers {
			for r.Info().Version < target {
				if time.Now().After(deadline) {
					return 0, fmt.Errorf("a reader is at version %d, the owner at %d", r.Info().Version, target)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		return time.Since(start), nil
	}
	round := func(write func() error) (time.Duration, error) {
		var dones []<-chan struct{}
		for _, t := range tallies {
			dones = append(dones, t.expect(benchStateUpdates))
		}
		start := time.Now()
		if err := write(); err != nil {
			return 0, err
		}
		if err := benchWaitAll(time.Minute, dones...); err != nil {
			return 0, err
		}
		var last time.Time
		for _, t := range tallies {
			if at := t.reached(); at.After(last) {
				last = at
			}
		}
		return last.Sub(start), nil
	}
	events := func() error {
		var fs []*mesh.PubFuture
		for range benchStateUpdates {
			f, err := nodes[0].PublishAsync(ctx, "events", value)
			if err != nil {
				return err
			}
			fs = append(fs, f)
		}
		for _, f := range fs {
			if _, err := f.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	var stateTime, eventTime time.Duration
	b.ResetTimer()
	for range b.N {
		d, err := stateRound()
		if err != nil {
			b.Fatal(err)
		}
		stateTime += d
		if d, err = round(events); err != nil {
			b.Fatal(err)
		}
		eventTime += d
	}
	b.StopTimer()
	stateRate := float64(b.N*benchStateUpdates) / stateTime.Seconds()
	eventRate := float64(b.N*benchStateUpdates) / eventTime.Seconds()
	b.ReportMetric(stateRate, "updates/s")
	b.ReportMetric(eventRate, "events/s")
	b.ReportMetric(stateRate/eventRate, "state/multicast")
}

// puts writes benchStateUpdates puts over benchStateKeys keys from
// benchStateWriters goroutines.
func puts(ctx context.Context, d *mesh.Domain, value []byte) error {
	var wg sync.WaitGroup
	errs := make(chan error, benchStateWriters)
	for w := range benchStateWriters {
		wg.Go(func() {
			for i := w; i < benchStateUpdates; i += benchStateWriters {
				if _, err := d.Put(ctx, fmt.Sprintf("key-%04d", i%benchStateKeys), value); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// BenchmarkStateLoad measures how long a newcomer takes to load a domain
// of 10,000 keys of 1 KiB values (10 MB) from a live copy: from Domain
// to the end of its first load (Wait). Each iteration connects a new
// node. Reported: seconds per load, MB/s of values, and snapshot pages.
func BenchmarkStateLoad(b *testing.B) {
	const keys, size = 10000, 1024
	srv := ircdtest.Start(b)
	owner := benchConfig(srv, "cfg")
	owner.Owns = []string{"cfg"}
	_, nodes := benchConnect(b, srv, nil, []mesh.Config{owner})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	od, _ := nodes[0].Domain("cfg")
	if err := od.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), size)
	var wg sync.WaitGroup
	for w := range benchStateWriters {
		wg.Go(func() {
			for i := w; i < keys; i += benchStateWriters {
				if _, err := od.Put(ctx, fmt.Sprintf("key-%05d", i), value); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		cfg := benchConfig(srv, "late")
		cfg.Instance = fmt.Sprintf("l%d", i)
		_, ns := benchConnect(b, srv, nil, []mesh.Config{cfg})
		b.StartTimer()
		start := time.Now()
		d, err := ns[0].Domain("cfg")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if info := d.Info(); info.Keys != keys {
			b.Fatalf("loaded %d keys, want %d", info.Keys, keys)
		}
	}
	b.StopTimer()
	per := total / time.Duration(b.N)
	b.ReportMetric(per.Seconds(), "s/load")
	b.ReportMetric(float64(keys*size)/1e6/per.Seconds(), "MB/s")
}

// BenchmarkStateLoadFromRecorder is BenchmarkStateLoad with no member
// holding the domain: the newcomer reads the latest update of each key
// from a recorder's index (history.Source.LatestState).
func BenchmarkStateLoadFromRecorder(b *testing.B) {
	const keys, size = 10000, 1024
	srv := ircdtest.Start(b)
	hm := historytest.NewMesh(srv, "bench", nil)
	rec := hm.StartRecorderIn(b, b.TempDir(), "", "rec", recorder.Config{})
	owner := benchConfig(srv, "cfg")
	owner.Owns = []string{"cfg"}
	_, nodes := benchConnect(b, srv, nil, []mesh.Config{owner})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	od, _ := nodes[0].Domain("cfg")
	if err := od.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	historytest.WaitTopic(b, rec.Recorder, state.Topic("cfg"))
	value := bytes.Repeat([]byte("v"), size)
	var wg sync.WaitGroup
	for w := range benchStateWriters {
		wg.Go(func() {
			for i := w; i < keys; i += benchStateWriters {
				if _, err := od.Put(ctx, fmt.Sprintf("key-%05d", i), value); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := nodes[0].Close(ctx); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second) // let the recorder commit its last lines
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		cfg := benchConfig(srv, "late")
		cfg.Instance = fmt.Sprintf("r%d", i)
		cfg.History = history.NewSource()
		_, ns := benchConnect(b, srv, nil, []mesh.Config{cfg})
		b.StartTimer()
		start := time.Now()
		d, err := ns[0].Domain("cfg")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if info := d.Info(); info.Keys != keys {
			b.Fatalf("loaded %d keys, want %d", info.Keys, keys)
		}
	}
	b.StopTimer()
	per := total / time.Duration(b.N)
	b.ReportMetric(per.Seconds(), "s/load")
	b.ReportMetric(float64(keys*size)/1e6/per.Seconds(), "MB/s")
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// maxErrors is how many failed round trips stop a worker.
const maxErrors = 3

// RoundTripTimeout bounds one round trip.
const RoundTripTimeout = 10 * time.Second

// RoundTrips runs the round trips of w with rt, the same way for every
// system: w.Outstanding workers, each doing one round trip after another
// (rt(ctx, worker) returns once its answer came back) until their share
// of count (w.Count when 0) is done, w.Duration has passed (after one
// round trip at least), ctx ended, or
// the worker failed maxErrors times. progress counts round trips done. It
// returns their latencies and the time from the first request to the
// last answer, and the first error seen (also counted in Errors).
func RoundTrips(ctx context.Context, w Requests, count int, rt func(ctx context.Context, worker int) error, progress *atomic.Int64) (Latency, error) {
	if count <= 0 {
		count = w.Count
	}
	count = max(count, w.Outstanding)
	samples := make([][]time.Duration, w.Outstanding)
	failures := make([]int, w.Outstanding)
	firstErr := make([]error, w.Outstanding)
	var last atomic.Int64
	start := time.Now()
	stop := StopAfter(w.Duration, start)
	var wg sync.WaitGroup
	for i := range w.Outstanding {
		share := count / w.Outstanding
		if i < count%w.Outstanding {
			share++
		}
		samples[i] = make([]time.Duration, 0, share)
		wg.Go(func() {
			for j := range share {
				if (j > 0 && stop()) || ctx.Err() != nil {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, RoundTripTimeout)
				t0 := time.Now()
				err := rt(rctx, i)
				t1 := time.Now()
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted: not a failure
					}
					failures[i]++
					if firstErr[i] == nil {
						firstErr[i] = err
					}
					if failures[i] >= maxErrors {
						return
					}
					continue
				}
				samples[i] = append(samples[i], t1.Sub(t0))
				last.Store(t1.UnixNano())
				if progress != nil {
					progress.Add(1)
				}
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	elapsed := time.Duration(0)
	if ns := last.Load(); ns > 0 {
		elapsed = time.Unix(0, ns).Sub(start)
	}
	l := Summarize(all, elapsed)
	for _, f := range failures {
		l.Errors += f
	}
	l.Complete = l.Count >= count
	return l, errors.Join(firstErr...)
}

// RequestResult is a Requests workload measured on meshbot and on raw IRC
// in one run. A side is nil when it was not measured.
type RequestResult struct {
	Workload    string   `json:"workload"`
	Outstanding int      `json:"outstanding"`
	Size        int      `json:"size"`
	Count       int      `json:"count"`
	Raw         *Latency `json:"raw_irc,omitempty"`
	Mesh        *Latency `json:"meshbot,omitempty"`
	// Ratios of meshbot over raw IRC: latencies (lower is better) and
	// throughput (higher is better).
	P50Ratio        float64 `json:"p50_meshbot_per_raw,omitempty"`
	P99Ratio        float64 `json:"p99_meshbot_per_raw,omitempty"`
	ThroughputRatio float64 `json:"throughput_meshbot_per_raw,omitempty"`
}

// MeasureRoundTrips runs a warm-up round of w (a hundred round trips, or
// one per worker) and a measured one, with RoundTrips and rt, showing
// progress under name: the same for every system. The latency is nil when
// the warm-up did not complete.
func MeasureRoundTrips(ctx context.Context, prog *Progress, name string, w Requests, rt func(context.Context, int) error) (*Latency, error) {
	var done atomic.Int64
	n := min(w.Count, max(100, w.Outstanding))
	end := prog.Phase(name+" (warm-up)", int64(n), done.Load)
	if _, err := RoundTrips(ctx, Requests{Outstanding: w.Outstanding, Size: w.Size, Count: n}, 0, rt, &done); err != nil || ctx.Err() != nil {
		end(stopped(ctx, err))
		return nil, err
	}
	end("done")
	done.Store(0)
	end = prog.Phase(name, int64(w.Count), done.Load)
	l, err := RoundTrips(ctx, w, 0, rt, &done)
	if err != nil || ctx.Err() != nil {
		end(stopped(ctx, err))
	} else {
		end(fmt.Sprintf("p50 %.0f µs, p99 %.0f µs, %s round trips/s", l.P50, l.P99, Human(l.PerSecond)))
	}
	return &l, err
}

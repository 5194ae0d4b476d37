package bench

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted: the smallest sample with at least p % of the samples at or
// below it. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(len(sorted))*p/100 - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Latency sums up the round trips of one side of a request/response
// workload. Times are in microseconds.
type Latency struct {
	Count  int     `json:"count"`  // round trips completed
	Errors int     `json:"errors"` // requests that failed or timed out
	P50    float64 `json:"p50_us"`
	P90    float64 `json:"p90_us"`
	P99    float64 `json:"p99_us"`
	Max    float64 `json:"max_us"`
	Mean   float64 `json:"mean_us"`
	// PerSecond is the throughput: Count over Seconds, the time from the
	// first request sent to the last answer.
	PerSecond float64 `json:"per_second"`
	Seconds   float64 `json:"seconds"`
	// Complete is false when the measurement stopped early (Duration,
	// interrupt, errors) before Count reached the workload's.
	Complete bool `json:"complete"`
}

// Summarize sums up samples (sorted in place) taken over elapsed.
func Summarize(samples []time.Duration, elapsed time.Duration) Latency {
	slices.Sort(samples)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	l := Latency{Count: len(samples), Seconds: elapsed.Seconds()}
	if len(samples) == 0 {
		return l
	}
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	l.P50 = us(Percentile(samples, 50))
	l.P90 = us(Percentile(samples, 90))
	l.P99 = us(Percentile(samples, 99))
	l.Max = us(samples[len(samples)-1])
	l.Mean = us(sum / time.Duration(len(samples)))
	if elapsed > 0 {
		l.PerSecond = float64(len(samples)) / elapsed.Seconds()
	}
	return l
}

// Rate sums up one side of a publish/subscribe workload.
type Rate struct {
	Sent     int64 `json:"sent"`     // messages published
	Received int64 `json:"received"` // deliveries, all subscribers (anycast: messages handled)
	// PerSecond is messages per second per subscriber (multicast: each
	// subscriber's deliveries over the time from the first publish to its
	// last delivery, averaged), or messages handled per second by the
	// whole group (anycast: until the last was handled).
	PerSecond float64 `json:"per_second"`
	Seconds   float64 `json:"seconds"` // from the first publish to the last delivery
	// Complete: every message reached every subscriber (anycast: was
	// handled). False when the run stopped early or lost messages.
	Complete bool `json:"complete"`
}

// Tally counts one subscriber's deliveries and notes when the last one
// came. Safe for concurrent use; Add costs two atomic operations and a
// clock read.
type Tally struct {
	n    atomic.Int64
	last atomic.Int64 // UnixNano of the last Add
}

// Add counts one delivery (of a message, or of one of its lines).
func (t *Tally) Add() {
	t.n.Add(1)
	t.last.Store(time.Now().UnixNano())
}

// Count returns the deliveries so far.
func (t *Tally) Count() int64 { return t.n.Load() }

// Last returns when the last delivery was counted (zero: none).
func (t *Tally) Last() time.Time {
	ns := t.last.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Reset zeroes the tally (between a warm-up and a measurement, while
// nothing is delivered).
func (t *Tally) Reset() {
	t.n.Store(0)
	t.last.Store(0)
}

// MulticastRate sums up a multicast measurement that started at start and
// sent sent messages of per units each (raw lines per message; 1 for a
// system that delivers whole messages), from the subscribers' tallies.
func MulticastRate(start time.Time, sent int64, per int, tallies []*Tally) Rate {
	r := Rate{Sent: sent, Complete: len(tallies) > 0}
	var rates float64
	var last time.Time
	for _, t := range tallies {
		got := t.Count() / int64(per)
		r.Received += got
		r.Complete = r.Complete && got >= sent
		at := t.Last()
		if at.After(last) {
			last = at
		}
		if d := at.Sub(start); got > 0 && d > 0 {
			rates += float64(got) / d.Seconds()
		}
	}
	if len(tallies) > 0 {
		r.PerSecond = rates / float64(len(tallies))
	}
	if !last.IsZero() {
		r.Seconds = last.Sub(start).Seconds()
	}
	return r
}

// AnycastRate sums up an anycast measurement that started at start and
// sent sent messages, from the group's handled tally.
func AnycastRate(start time.Time, sent int64, handled *Tally) Rate {
	r := Rate{Sent: sent, Received: handled.Count()}
	r.Complete = r.Received >= sent
	if d := handled.Last().Sub(start); r.Received > 0 && d > 0 {
		r.Seconds = d.Seconds()
		r.PerSecond = float64(r.Received) / d.Seconds()
	}
	return r
}

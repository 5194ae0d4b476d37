package mesh

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds of the handler latency histogram.
var LatencyBuckets = []time.Duration{
	100 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 5 * time.Second,
}

type counters struct {
	linesIn, linesOut, notMesh, rejected, unrouted, unhandled atomic.Uint64
	delivered, dropped, handlerErrors, requestsServed         atomic.Uint64
	backfilled, historyRejected                               atomic.Uint64
	requestRetries, lateResponses, resent, reconnects         atomic.Uint64
	timeouts, refused, staleLines                             atomic.Uint64
	latencyCount, latencySumNanos                             atomic.Uint64
	latency                                                   [11]atomic.Uint64 // len(LatencyBuckets)+1
}

func (c *counters) observe(d time.Duration) {
	c.latencyCount.Add(1)
	c.latencySumNanos.Add(uint64(d))
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	c.latency[i].Add(1)
}

// Stats is a snapshot of a node's counters since it was created.
type Stats struct {
	LinesIn        uint64 // lines received from the server
	LinesOut       uint64 // mesh lines written
	NotMesh        uint64 // received PRIVMSGs that were not mesh lines (human chatter)
	Rejected       uint64 // mesh lines rejected (malformed, forged, duplicate, ...)
	Unrouted       uint64 // events for a topic the node no longer subscribes to
	Unhandled      uint64 // envelopes of a kind this node does not process
	Delivered      uint64 // events handed to subscription handlers
	Dropped        uint64 // events and requests dropped because a queue was full
	HandlerErrors  uint64 // handler errors and panics, and error responses sent
	RequestsServed uint64 // requests handled
	RequestRetries uint64 // requests re-sent because the asked instance left
	LateResponses  uint64 // responses that arrived after their request ended
	Resent         uint64 // envelopes sent again after a connection was lost
	Reconnects     uint64 // connections lost and re-established
	Timeouts       uint64 // connections dropped because the server went silent
	Refused        uint64 // envelopes the server refused (see ErrRefused)
	// StaleLines counts lines queued for a connection attempt that ended
	// before they were sent, left out of the next connection (stale.go).
	StaleLines uint64
	Backfilled uint64 // missed events delivered from history after a reconnect
	// HistoryRejected counts recorded lines that catch-up and resume read
	// but the node's trust refused (forged, unsigned, unknown key): in a
	// signed mesh, events this node will not process. Logged as warnings.
	HistoryRejected uint64
	// Gauges, at the time of the snapshot.
	Connected     bool // connected, registered, in every channel
	Subscriptions int  // active subscriptions
	Queued        int  // events waiting for a handler, all subscriptions
	// RejectedBy counts rejected lines by reason (envelope.Reasons).
	RejectedBy map[string]uint64
	// HandlerLatency counts handler run times per LatencyBuckets bound (the
	// last entry counts the slower ones); HandlerSeconds is their sum.
	HandlerLatency []uint64
	HandlerSeconds float64
}

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	c := &n.stats
	s := Stats{
		LinesIn: c.linesIn.Load(), LinesOut: c.linesOut.Load(), NotMesh: c.notMesh.Load(),
		Rejected: c.rejected.Load(), Unrouted: c.unrouted.Load(), Unhandled: c.unhandled.Load(),
		Delivered: c.delivered.Load(), Dropped: c.dropped.Load(), HandlerErrors: c.handlerErrors.Load(),
		Backfilled: c.backfilled.Load(), HistoryRejected: c.historyRejected.Load(),
		RequestsServed: c.requestsServed.Load(), RequestRetries: c.requestRetries.Load(),
		LateResponses: c.lateResponses.Load(), Resent: c.resent.Load(), Reconnects: c.reconnects.Load(),
		Timeouts: c.timeouts.Load(), Refused: c.refused.Load(), StaleLines: c.staleLines.Load(),
		HandlerSeconds: float64(c.latencySumNanos.Load()) / 1e9,
		RejectedBy:     map[string]uint64{},
	}
	for i := range c.latency {
		s.HandlerLatency = append(s.HandlerLatency, c.latency[i].Load())
	}
	n.mu.Lock()
	s.Connected = n.conn != nil
	s.Subscriptions = len(n.subs)
	for _, sub := range n.subs {
		s.Queued += len(sub.q)
	}
	n.mu.Unlock()
	n.rejMu.Lock()
	for k, v := range n.rejBy {
		s.RejectedBy[k] = v
	}
	n.rejMu.Unlock()
	return s
}

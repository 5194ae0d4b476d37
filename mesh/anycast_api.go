package mesh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
)

// The anycast API: SubscribeAnycast, its options and its subscription
// type. anycast.go drives the protocol (claims.Group).

// AnycastSubscription is an anycast subscription to one topic: each event
// is completed by exactly one live member of its group. Topic, Delivered,
// Dropped, Failed, Pending and Unsubscribe are those of every subscription.
type AnycastSubscription struct {
	*subscription
	a *anycast
}

// SubscribeAnycast joins topic's channel as a member of an anycast group
// (default: the service's name; see Group) and runs h for the events of
// the topic this member claims: each event is delivered to exactly one
// live member of the group, which claims it, runs the handler and
// acknowledges it (docs/PROTOCOL.md §6). A handler error (or panic) nacks
// the event: it is retried, by another member when there is one, after
// RetryDelay, and after MaxAttempts failed attempts it goes to the
// dead-letter topic <topic>._dead. A member that dies, freezes or leaves
// has its claims taken over. With Config.History the member first replays
// the group's record from its committed offset, so events published while
// the whole group was away are completed once.
//
// It returns once the server confirmed the join; the member starts
// claiming once the group has heard of it (about a heartbeat interval).
func (n *Node) SubscribeAnycast(ctx context.Context, topic string, h Handler, opts ...SubOption) (*AnycastSubscription, error) {
	o := n.options(opts)
	if o.group == "" {
		o.group = n.cfg.Service
	}
	if err := ValidateGroup(o.group); err != nil {
		return nil, err
	}
	sub := &AnycastSubscription{}
	s, err := n.subscribe(ctx, topic, h, &o, func(s *subscription) (mode, error) {
		sub.a = newAnycast(n, s, &o)
		return sub.a, nil
	})
	if err != nil {
		return nil, err
	}
	sub.subscription = s
	return sub, nil
}

// Group names the anycast group (default: the service name). Instances of
// any service that subscribe to a topic with the same group share its
// events.
func Group(name string) SubOption {
	return func(o *subOptions) { o.group = name; o.anycastOnly("Group") }
}

// ByKey routes events by key instead of by id: while membership is stable,
// every event with the same key goes to the same instance, so with
// Concurrency(1) events of one key are handled in order (like a
// partition).
func ByKey(key func(*Message) string) SubOption {
	return func(o *subOptions) { o.key = key; o.anycastOnly("ByKey") }
}

// ClaimLease is how long a claim holds without renewal (default 30 s);
// the node renews it at half the lease while the handler runs, so it
// bounds only how long a member that stopped renewing blocks the event.
func ClaimLease(d time.Duration) SubOption {
	return func(o *subOptions) { o.lease = d; o.anycastOnly("ClaimLease") }
}

// MaxAttempts is how many failed attempts send an event to the dead-letter
// topic (default 5).
func MaxAttempts(n int) SubOption {
	return func(o *subOptions) { o.maxAttempts = n; o.anycastOnly("MaxAttempts") }
}

// RetryDelay is how long a nacked event waits before its next attempt
// (default 1 s). A handler can choose per event by returning RetryAfter.
func RetryDelay(d time.Duration) SubOption {
	return func(o *subOptions) { o.retry = d; o.anycastOnly("RetryDelay") }
}

// Retain is how long a member remembers an event of the group completed
// (default 2 min) unless the group's committed offset passed it first:
// a late claim or ack of it is known for what it is. A member tracks
// every event of its group (it may have to take any over), so this and
// MaxTracked bound its memory; once traffic stops and the retention has
// passed, that memory is returned.
func Retain(d time.Duration) SubOption {
	return func(o *subOptions) { o.retain = d; o.anycastOnly("Retain") }
}

// MaxTracked bounds the events a member tracks, pending and completed
// (default 100,000). Past it, completed events are forgotten before
// their retention (ClaimStats.Evicted), and then new events are not
// tracked (ClaimStats.Refused: another member completes them).
func MaxTracked(n int) SubOption {
	return func(o *subOptions) { o.maxTracked = n; o.anycastOnly("MaxTracked") }
}

// RetryAfter wraps a handler error to ask for the next attempt after d.
func RetryAfter(d time.Duration, err error) error { return &retryError{d: d, err: err} }

type retryError struct {
	d   time.Duration
	err error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// RetryDelayOf returns the delay a RetryAfter error asks for.
func RetryDelayOf(err error) (time.Duration, bool) {
	var re *retryError
	if errors.As(err, &re) {
		return re.d, true
	}
	return 0, false
}

// Claim is what an anycast handler holds: its Token is the fencing token
// to hand to the stores it writes to, which should refuse a token lower
// than one they have seen for the event (docs/PROTOCOL.md §6.6).
type Claim struct {
	Group string
	// Epoch grows with every takeover; Attempt counts attempts, from 1.
	Epoch   uint64
	Attempt uint32
	// Token orders claims of one event as they win.
	Token uint64
}

// ClaimStats counts an anycast subscription's claims work.
type ClaimStats = claims.Stats

// maxGroupLen bounds group names.
const maxGroupLen = 64

// ValidateGroup checks an anycast group name: 1 to 64 bytes, no spaces,
// commas or control characters.
func ValidateGroup(g string) error {
	if g == "" || len(g) > maxGroupLen {
		return fmt.Errorf("mesh: group %q: 1 to %d bytes", g, maxGroupLen)
	}
	for _, r := range g {
		if r <= ' ' || r == 0x7f || r == ',' {
			return fmt.Errorf("mesh: group %q: no spaces, commas or control characters", g)
		}
	}
	return nil
}

// Committed returns the group's committed offset as this member has seen
// it: every event of the topic up to that line is completed (zero: none
// yet). Members commit every Config.CommitInterval.
func (s *AnycastSubscription) Committed() envelope.Offset {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.a.g.Committed()
}

// ClaimStats returns the subscription's claims counters.
func (s *AnycastSubscription) ClaimStats() ClaimStats {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.a.g.Stats()
}

// Resumed says how the subscription resumed from history (zero without
// Config.History, or before it finished).
func (s *AnycastSubscription) Resumed() ResumeInfo {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.a.resumed
}

// Group returns the anycast group.
func (s *AnycastSubscription) Group() string { return s.a.group }

// ResumeInfo says how an anycast subscription resumed from history
// (docs/PROTOCOL.md §6.12) before it claimed anything.
type ResumeInfo struct {
	// Done: the history was replayed into the claims core.
	Done bool
	// FromCommitted: the replay started at the group's committed offset
	// found in the record (less a margin); else at Config.ResumeWindow ago.
	FromCommitted bool
	// Committed is that offset (zero without one).
	Committed     envelope.Offset
	Since         time.Time
	Events, Lines int // events and claims lines replayed
	Err           error
	// Attempts counts the replays tried, the first one, those after
	// reconnects and the retries of failed ones.
	Attempts int
}

package meshwatermill

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

// A consumer group's member replays the group's record when it joins
// (mesh.SubscribeAnycast with mesh.Config.History), and the replay finds
// only what the history recorder has committed; a recorder commits in
// groups, some time after the server relayed a line. So before it joins,
// a member waits until the record is far enough:
//
//   - when this Subscriber watched the topic's channel
//     (SubscribeInitialize), until no event came for ResumeSettle (the
//     lines of a publish that returned just now may still be on their
//     way to this node) and the record holds the last event it saw (at
//     most barrierTimeout): everything published before that event is
//     recorded too, in the server's order;
//   - otherwise for ResumeSettle, a few of the recorder's group-commit
//     intervals.
//
// meshbot has no way for a member to ask a recorder to confirm that it
// holds everything up to a point; this is the approximation.

// barrierTimeout bounds the wait for the record to hold the last event
// seen.
const barrierTimeout = 20 * time.Second

// barrierPoll is how often the record is read again.
const barrierPoll = 50 * time.Millisecond

// errFound ends a barrier's replay.
var errFound = errors.New("found")

// lastSeen is the last event seen in a channel: its id, its offset's
// time, and when it came (local clock).
type lastSeen struct {
	mu   sync.Mutex
	id   envelope.ID
	at   time.Time
	came time.Time
}

// observe notes an observed line: the last event wins.
func (l *lastSeen) observe(ob mesh.Observation) {
	if ob.Envelope == nil || ob.Envelope.Kind != envelope.KindEvent {
		return
	}
	l.mu.Lock()
	l.id, l.at, l.came = ob.Envelope.ID, ob.Time, time.Now()
	l.mu.Unlock()
}

func (l *lastSeen) get() (id envelope.ID, at, came time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id, l.at, l.came
}

// settleBeforeJoin waits, before a consumer group's member joins, until
// the record is far enough (see above); it returns early only when ctx
// ends.
func (ts *topicSub) settleBeforeJoin(ctx context.Context) error {
	cfg := &ts.s.cfg
	h := ts.s.n.History()
	if h == nil || cfg.ResumeSettle < 0 {
		return nil
	}
	if ts.obs == nil {
		return sleep(ctx, cfg.ResumeSettle)
	}
	start := time.Now()
	deadline := start.Add(barrierTimeout)
	for {
		_, _, came := ts.seen.get()
		quiet := time.Until(later(came, start).Add(cfg.ResumeSettle))
		if quiet <= 0 || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, quiet); err != nil {
			return err
		}
	}
	id, at, _ := ts.seen.get()
	if id.IsZero() {
		return nil // nothing came since the Subscriber watched
	}
	for {
		found, err := recorded(ctx, ts.s.n, h, ts.meshTopic, id, at)
		if found {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			// No recorder, or none that this node trusts: nothing to
			// wait for.
			ts.s.cfg.Logger.Info("the history record cannot be read; joining the group without waiting",
				map[string]any{"topic": ts.topic, "err": err.Error()})
			return nil
		}
		if time.Now().After(deadline) {
			ts.s.cfg.Logger.Info("the history record does not hold the last event seen; joining the group anyway",
				map[string]any{"topic": ts.topic, "event": id.String()})
			return nil
		}
		if err := sleep(ctx, barrierPoll); err != nil {
			return err
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sleep waits for d, or returns ctx's cause when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// recorded reports whether h's record of topic holds event id, seen at at.
func recorded(ctx context.Context, n *mesh.Node, h mesh.HistorySource, topic string, id envelope.ID, at time.Time) (bool, error) {
	found := false
	_, err := h.Replay(ctx, n, topic, at.Add(-time.Second), func(r mesh.Recorded) error {
		if r.Envelope.ID == id {
			found = true
			return errFound
		}
		return nil
	})
	if found || errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

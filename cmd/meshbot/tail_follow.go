package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// Topic patterns of tail, as in NATS subjects: "*" stands for one segment,
// ">" (last) for one or more. Wildcards do not match system segments
// (starting with "_": _hb, _dead): a pattern names those itself
// ("jobs._dead", "*._dead").

// isPattern reports whether a tail argument is a pattern.
func isPattern(t string) bool {
	for _, seg := range strings.Split(t, ".") {
		if seg == "*" || seg == ">" {
			return true
		}
	}
	return false
}

// checkPattern reports what is wrong with a pattern.
func checkPattern(p string) error {
	segs := strings.Split(p, ".")
	for i, seg := range segs {
		switch {
		case seg == ">" && i != len(segs)-1:
			return usagef("tail: pattern %q: \">\" stands for the rest of the topic, so it comes last", p)
		case seg == "*" || seg == ">":
		case seg == "" || strings.ContainsAny(seg, "*>"):
			return usagef("tail: pattern %q: each segment is a name, \"*\" (one segment) or \">\" (the rest)", p)
		}
	}
	return nil
}

// matchTopic reports whether topic matches pattern.
func matchTopic(pattern, topic string) bool {
	ps, ts := strings.Split(pattern, "."), strings.Split(topic, ".")
	for i, p := range ps {
		if p == ">" {
			if len(ts) <= i {
				return false
			}
			for _, t := range ts[i:] {
				if strings.HasPrefix(t, "_") {
					return false
				}
			}
			return true
		}
		if i >= len(ts) {
			return false
		}
		if p == "*" {
			if strings.HasPrefix(ts[i], "_") {
				return false
			}
			continue
		}
		if p != ts[i] {
			return false
		}
	}
	return len(ps) == len(ts)
}

// follower finds the topics matching tail's patterns, from the server's
// channel list (LIST) and the subscriptions members announce in their
// heartbeats, and starts watching each new one, until its context ends.
type follower struct {
	n        *mesh.Node
	patterns []string
	watch    func(ctx context.Context, topic string) error // starts watching a topic
	announce func(topic string)                            // says a topic was found

	mu      sync.Mutex
	watched map[string]bool
}

// matching returns the topics known now that match a pattern and are not
// watched yet, sorted.
func (f *follower) matching(ctx context.Context) ([]string, error) {
	found := map[string]bool{}
	topics, err := f.n.Topics(ctx)
	for _, t := range topics {
		found[t] = true
	}
	for _, m := range f.n.Members("") {
		for _, s := range m.Beat.Subs {
			found[s.Topic] = true
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for t := range found {
		if f.watched[t] {
			continue
		}
		for _, p := range f.patterns {
			if matchTopic(p, t) {
				out = append(out, t)
				break
			}
		}
	}
	slices.Sort(out)
	return out, err
}

// scan watches the matching topics not watched yet.
func (f *follower) scan(ctx context.Context) error {
	topics, err := f.matching(ctx)
	for _, t := range topics {
		if werr := f.watch(ctx, t); werr != nil {
			return werr
		}
		f.mu.Lock()
		f.watched[t] = true
		f.mu.Unlock()
		if f.announce != nil {
			f.announce(t)
		}
	}
	return err
}

// run scans every interval until ctx ends.
func (f *follower) run(ctx context.Context, interval time.Duration, log func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.scan(ctx); err != nil && ctx.Err() == nil {
			log(fmt.Errorf("looking for topics: %w", err))
		}
	}
}

package mesh

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// listing collects one LIST reply.
type listing struct {
	names []string
	done  chan struct{}
}

// Topics lists the topics of the namespace whose channels exist on the
// server now (LIST), system topics such as _hb included, sorted. Tools that
// follow a whole namespace (the history recorder) call it to find topics
// nobody subscribes to yet.
func (n *Node) Topics(ctx context.Context) ([]string, error) {
	n.listMu.Lock()
	defer n.listMu.Unlock()
	if err := n.waitConnected(ctx); err != nil {
		return nil, err
	}
	l := &listing{done: make(chan struct{})}
	n.mu.Lock()
	n.listing = l
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.listing = nil
		n.mu.Unlock()
	}()
	if mask := n.listMask(); mask != "" {
		n.client.Cmd.List(mask)
	} else {
		n.client.Cmd.List()
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("mesh: listing channels: %w", context.Cause(ctx))
	case <-time.After(n.cfg.ConnectTimeout):
		return nil, fmt.Errorf("mesh: listing channels: no end of LIST in %s", n.cfg.ConnectTimeout)
	case <-n.done:
		return nil, ErrClosed
	}
	n.mu.Lock()
	names := l.names
	n.mu.Unlock()
	var topics []string
	for _, ch := range names {
		if t, ok := TopicOf(n.cfg.Namespace, ch); ok {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	return slices.Compact(topics), nil
}

// listMask is what LIST asks for: the namespace's channels by mask, or
// every channel (filtered here) on a server whose ELIST says it takes no
// masks (ergo: ELIST=U; a server without ELIST is assumed to take them).
func (n *Node) listMask() string {
	n.mu.Lock()
	elist, ok := n.isupport["ELIST"]
	n.mu.Unlock()
	if ok && !strings.ContainsAny(elist, "Mm") {
		return ""
	}
	return channelStart + n.cfg.Namespace + ".*"
}

// onList takes a LIST entry (322) or its end (323).
func (n *Node) onList(l *line) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listing == nil {
		return
	}
	if l.cmd == "323" {
		select {
		case <-n.listing.done:
		default:
			close(n.listing.done)
		}
		return
	}
	if ch := l.param(1); strings.HasPrefix(ch, channelStart) && len(n.listing.names) < maxListed {
		n.listing.names = append(n.listing.names, ch)
	}
}

// maxListed bounds the channels one LIST collects.
const maxListed = 100_000

package meshtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// handlerFailed is the message the runtime logs when a subscription's
// handler returns an error or panics (mesh/subscribe.go), with the topic,
// the event's short id and the error as attributes.
const handlerFailed = "handler failed"

// logCapture is the node's slog handler during a replay: handler failures
// become entries (and, with Logs, every record at its level), and every
// record also goes to the user's own logger when the config had one.
type logCapture struct {
	c    *capture
	next slog.Handler // nil: none
}

func (h *logCapture) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= slog.LevelWarn || (h.c.o.logLevel != nil && l >= *h.c.o.logLevel) {
		return true
	}
	return h.next != nil && h.next.Enabled(ctx, l)
}

func (h *logCapture) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == handlerFailed && r.Level >= slog.LevelWarn {
		e := Entry{Kind: KindHandlerError}
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "topic":
				e.Topic = a.Value.String()
			case "id":
				e.Ref = a.Value.String()
			case "err":
				e.Err = a.Value.String()
			}
			return true
		})
		h.c.add(e)
	} else if lv := h.c.o.logLevel; lv != nil && r.Level >= *lv {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
			return true
		})
		h.c.add(Entry{Kind: KindLog, Err: b.String()})
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs and WithGroup apply to the user's logger only: the service
// and instance the node adds say nothing the output does not.
func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	next := h.next
	if next != nil {
		next = next.WithAttrs(as)
	}
	return &logCapture{c: h.c, next: next}
}

func (h *logCapture) WithGroup(name string) slog.Handler {
	next := h.next
	if next != nil {
		next = next.WithGroup(name)
	}
	return &logCapture{c: h.c, next: next}
}

package mesh

import (
	"context"
	"errors"
	"time"

	"github.com/meshbot/meshbot/envelope"
)

// requestSelf answers a request the node picked itself for (it is an
// instance of the service it asks: a service calling itself, the console
// of a service asking it): the method's handler runs here, as it would for
// a request from another node — the same deadline, the same errors, which
// come back as a *RemoteError — without a line to the server, which the
// node would only see again as its own echo.
func (n *Node) requestSelf(ctx context.Context, env *envelope.Envelope) ([]byte, error) {
	req := &Request{
		Method: env.Topic, ID: env.ID, Payload: env.Payload, Headers: env.Headers,
		Sender: env.Sender, From: n.Nick(), Deadline: time.Unix(0, env.Deadline),
	}
	n.mu.Lock()
	h := n.methods[req.Method]
	n.mu.Unlock()
	var (
		out []byte
		err error
	)
	switch {
	case h == nil:
		err = Errorf(CodeNoHandler, "no handler for %q on %s", req.Method, n.cfg.Service)
	case n.reqCtx.Err() != nil:
		err = Errorf(CodeShuttingDown, "%s is shutting down", n.cfg.Service)
	default:
		hctx, cancel := context.WithDeadline(n.reqCtx, req.Deadline)
		stop := context.AfterFunc(ctx, cancel) // the caller gave up
		start := time.Now()
		out, err = callHandler(hctx, h, req)
		n.stats.observe(time.Since(start))
		n.stats.requestsServed.Add(1)
		stop()
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = Errorf(CodeDeadline, "%v", err)
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		n.stats.handlerErrors.Add(1)
		return nil, &RemoteError{Service: n.cfg.Service, Instance: n.Instance(), Code: codeOf(err), Message: err.Error()}
	}
	return out, nil
}

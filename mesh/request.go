package mesh

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/heartbeat"
)

// Request is a received request.
type Request struct {
	Method   string
	ID       envelope.ID
	Payload  []byte
	Headers  envelope.Headers
	Sender   envelope.Sender
	From     string // requester's nick
	Deadline time.Time
}

// RequestHandler answers a request. The context carries the caller's
// deadline. Return an error made with Errorf to choose the code the caller
// sees; any other error is sent as CodeInternal with its text.
type RequestHandler func(ctx context.Context, r *Request) ([]byte, error)

// maxRequestAttempts bounds how often one request is sent to a new instance
// after the previous one left.
const maxRequestAttempts = 4

type pendingRequest struct {
	resp   chan *inbound
	moved  chan string // nick of an instance that left; "" when our connection dropped
	target string
	// refused is why a line from target was rejected while we waited
	// (its answer, unsigned or signed with a key we do not trust): the
	// request then fails with it rather than with a bare timeout.
	refused error
}

// RequestOption tunes one request.
type RequestOption func(*requestOptions)

type requestOptions struct {
	key     string
	headers envelope.Headers
	notSelf bool
	prefer  string // "service/instance"
}

// NotSelf keeps the request off this node: an instance asking its peers
// (a history recorder filling a hole from another one).
func NotSelf() RequestOption { return func(o *requestOptions) { o.notSelf = true } }

// WithKey routes the request by rendezvous hashing of key over the live
// instances: requests with the same key go to the same instance while the
// membership is stable (affinity: caches, sessions, per-key order).
func WithKey(key string) RequestOption { return func(o *requestOptions) { o.key = key } }

// Prefer sends the request to the instance id ("service/instance", as
// heartbeat.Member.ID and history pages name it) while it is a live
// member, whatever the key or the load say: a reader paging through one
// instance's data stays with it.
// Without it (it left, or was asked and left) the request goes where it
// would have.
func Prefer(id string) RequestOption { return func(o *requestOptions) { o.prefer = id } }

// WithRequestHeaders sets the request's headers (content type, traceparent).
func WithRequestHeaders(h envelope.Headers) RequestOption {
	return func(o *requestOptions) { o.headers = h }
}

// Handle serves method with h on this node. Requests for a method nobody
// handles are answered with CodeNoHandler.
func (n *Node) Handle(method string, h RequestHandler) error {
	if err := validName("method", method, true); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.methods[method] = h
	return nil
}

// Request sends payload to method of one live instance of service by DM and
// returns the answer. The deadline is ctx's, or Config.RequestTimeout when
// it has none. If the asked instance leaves before answering, the request
// goes to another one (same request id); with no instance present it fails
// at once with ErrNoResponders. An error from the handler is a *RemoteError.
func (n *Node) Request(ctx context.Context, service, method string, payload []byte, opts ...RequestOption) ([]byte, error) {
	if n.sealed.Load() {
		return nil, ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RequestTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	env := envelope.New(envelope.KindRequest, n.sender(), method, payload, time.Now())
	env.Deadline = deadline.UnixNano()
	var ro requestOptions
	for _, o := range opts {
		o(&ro)
	}
	env.Headers = ro.headers
	pr := &pendingRequest{resp: make(chan *inbound, 1), moved: make(chan string, 8)}
	n.mu.Lock()
	n.pending[env.ID] = pr
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.pending, env.ID)
		n.mu.Unlock()
	}()

	tried := map[string]bool{}
	if ro.notSelf {
		tried[strings.ToLower(n.Nick())] = true
	}
	for attempt := 0; attempt < maxRequestAttempts; {
		if err := n.waitConnected(ctx); err != nil {
			return nil, err
		}
		target := n.pickInstance(service, ro.key, ro.prefer, tried)
		if target == "" {
			if attempt == 0 {
				return nil, fmt.Errorf("%w: %s", ErrNoResponders, service)
			}
			return nil, fmt.Errorf("%w: %s (every instance asked has left)", ErrNoResponders, service)
		}
		if strings.EqualFold(target, n.Nick()) {
			return n.requestSelf(ctx, env) // selfreq.go: no line to itself
		}
		n.mu.Lock()
		pr.target = target
		n.mu.Unlock()
		if _, err := n.send(ctx, target, env); err != nil {
			return nil, err
		}
	wait:
		select {
		case in := <-pr.resp:
			if e := in.env.Error; e != nil {
				return nil, &RemoteError{Service: in.env.Sender.Service, Instance: in.env.Sender.Instance, Code: e.Code, Message: e.Message}
			}
			return in.env.Payload, nil
		case who := <-pr.moved:
			switch {
			case who == "":
				// Our connection dropped: the request or its answer may be
				// lost. Ask again once reconnected (the same instance may
				// still be there).
			case strings.EqualFold(who, target):
				tried[strings.ToLower(target)] = true
				attempt++
			default:
				goto wait // news about an instance asked before
			}
			n.stats.requestRetries.Add(1)
		case <-ctx.Done():
			n.mu.Lock()
			refused := pr.refused
			n.mu.Unlock()
			if refused != nil {
				return nil, fmt.Errorf("mesh: request %s.%s: %w: %w from %s: %w", service, method, context.Cause(ctx), ErrAnswerRefused, target, refused)
			}
			return nil, fmt.Errorf("mesh: request %s.%s to %s: %w", service, method, target, context.Cause(ctx))
		}
	}
	return nil, fmt.Errorf("%w: %s: gave up after %d instances left", ErrNoResponders, service, maxRequestAttempts)
}

// pickInstance chooses a live instance of service not tried yet: the one
// key maps to by rendezvous hashing when key is set (affinity), else the
// least loaded. An instance present in the heartbeat channel that has not
// beaten yet (it just connected) is used when no member is known live.
func (n *Node) pickInstance(service, key, prefer string, tried map[string]bool) string {
	skip := func(m heartbeat.Member) bool { return tried[strings.ToLower(m.Nick)] }
	ms := n.Members(service)
	var m heartbeat.Member
	var ok bool
	if prefer != "" {
		for _, m := range ms {
			if m.ID() == prefer && (m.State == heartbeat.Alive || m.State == heartbeat.Suspect) && !skip(m) {
				return m.Nick
			}
		}
	}
	if key != "" {
		m, ok = heartbeat.Rendezvous(key, ms, skip)
	} else {
		m, ok = heartbeat.LeastLoaded(ms, skip, mrand.Uint64())
	}
	if ok {
		return m.Nick
	}
	known := map[string]bool{}
	for _, m := range n.AllMembers() {
		known[strings.ToLower(m.Nick)] = true
	}
	var cands []string
	for _, nick := range n.Present(service) {
		if l := strings.ToLower(nick); !tried[l] && !known[l] {
			cands = append(cands, nick)
		}
	}
	if len(cands) == 0 {
		return ""
	}
	return cands[mrand.N(len(cands))]
}

// answerRefused notes that a private message from nick was rejected, for
// the requests waiting on nick.
func (n *Node) answerRefused(nick string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, pr := range n.pending {
		if pr.refused == nil && strings.EqualFold(pr.target, nick) {
			pr.refused = err
		}
	}
}

// failPendingTargets tells requests waiting on nick (all of them when nick
// is "": our own connection dropped) to try again.
func (n *Node) failPendingTargets(nick string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, pr := range n.pending {
		if nick == "" || strings.EqualFold(pr.target, nick) {
			select {
			case pr.moved <- nick:
			default:
			}
		}
	}
}

func (n *Node) acceptResponse(in *inbound) {
	n.mu.Lock()
	pr := n.pending[in.env.Correlation]
	n.mu.Unlock()
	if pr == nil {
		n.stats.lateResponses.Add(1)
		return
	}
	select {
	case pr.resp <- in:
	default: // a second answer (the request was retried): keep the first
	}
}

// acceptRequest queues a request for the workers; it runs on the event loop
// and never blocks.
func (n *Node) acceptRequest(in *inbound) {
	select {
	case n.reqQueue <- in:
	default:
		n.stats.dropped.Add(1)
		n.respond(in, nil, Errorf(CodeOverloaded, "overloaded: %d requests queued", cap(n.reqQueue)), false)
	}
}

func (n *Node) requestWorker() {
	defer n.reqWG.Done()
	for {
		select {
		case in := <-n.reqQueue:
			n.serve(in)
		case <-n.reqStop:
			for {
				select {
				case in := <-n.reqQueue:
					n.serve(in)
				default:
					return
				}
			}
		}
	}
}

func (n *Node) serve(in *inbound) {
	req := &Request{
		Method: in.env.Topic, ID: in.env.ID, Payload: in.env.Payload, Headers: in.env.Headers,
		Sender: in.env.Sender, From: in.from, Deadline: time.Unix(0, in.env.Deadline),
	}
	if in.env.Deadline == 0 {
		req.Deadline = time.Now().Add(n.cfg.RequestTimeout)
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
	case time.Until(req.Deadline) <= 0:
		err = Errorf(CodeDeadline, "deadline passed before the request was handled")
	case n.reqCtx.Err() != nil:
		err = Errorf(CodeShuttingDown, "%s is shutting down", n.cfg.Service)
	default:
		ctx, cancel := context.WithDeadline(n.reqCtx, req.Deadline)
		start := time.Now()
		out, err = callHandler(ctx, h, req)
		n.stats.observe(time.Since(start))
		n.stats.requestsServed.Add(1)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = Errorf(CodeDeadline, "%v", err)
		}
	}
	n.respond(in, out, err, true)
}

func callHandler(ctx context.Context, h RequestHandler, r *Request) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Errorf(CodeInternal, "handler panicked: %v", p)
		}
	}()
	return h(ctx, r)
}

// respond sends the answer to in's requester. With wait it waits for the
// server's confirmation (bounded by the request's deadline); without, it
// only queues it if there is room (the event loop must not block).
func (n *Node) respond(in *inbound, out []byte, herr error, wait bool) {
	env := envelope.New(envelope.KindResponse, n.sender(), in.env.Topic, out, time.Now())
	env.Correlation = in.env.ID
	if herr != nil {
		env.Payload = nil
		env.Error = &envelope.Error{Code: codeOf(herr), Message: herr.Error()}
		n.stats.handlerErrors.Add(1)
	}
	deadline := time.Unix(0, in.env.Deadline)
	if in.env.Deadline == 0 || time.Until(deadline) < time.Second {
		deadline = time.Now().Add(time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	if !wait {
		if len(n.writer.in) >= cap(n.writer.in) {
			cancel()
			return
		}
		go func() {
			defer cancel()
			if j, err := n.send(ctx, in.from, env); err == nil {
				select {
				case <-j.done:
				case <-ctx.Done():
				}
			}
		}()
		return
	}
	defer cancel()
	j, err := n.send(ctx, in.from, env)
	if err != nil {
		n.log.Warn("response not sent", "to", in.from, "err", err)
		return
	}
	// While disconnected the job waits in the writer's queue; the deadline
	// bounds the wait (the writer drops it once it is past).
	select {
	case <-j.done:
	case <-ctx.Done():
	case <-n.reqCtx.Done(): // the node is closing and the drain time is up
	}
}

// drainRequests stops taking requests and lets queued and running ones
// finish until ctx ends, then cancels them.
func (n *Node) drainRequests(ctx context.Context) {
	close(n.reqStop)
	drainWorkers(ctx, &n.reqWG, n.reqCancel)
}

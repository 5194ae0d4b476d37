package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/meshbot/meshbot/mesh"
)

// rawEcho is the raw side of a Requests workload: client A sends private
// messages to client B, which sends each one's text back. A message of
// more than RawText bytes is several lines, each echoed; a round trip
// ends when the last line's echo is back. Each line starts with the
// worker's number, which routes its echo back to the worker.
type rawEcho struct {
	a, b    *rawClient
	per     int
	lines   []string        // per worker: the CRLF-terminated lines of one message
	replies []chan struct{} // per worker: an echoed line came back
}

func newRawEcho(w Requests, a, b *rawClient) *rawEcho {
	e := &rawEcho{a: a, b: b}
	var text string
	e.per, text = rawLines(w.Size)
	for i := range w.Outstanding {
		prefix := strconv.Itoa(i) + ":"
		body := prefix + text[min(len(prefix), len(text)-1):]
		var lines bytes.Buffer
		for range e.per {
			lines.WriteString("PRIVMSG " + b.nick + " :" + body + "\r\n")
		}
		e.lines = append(e.lines, lines.String())
		e.replies = append(e.replies, make(chan struct{}, e.per))
	}
	bnick := []byte(b.nick)
	a.onPrivmsg = func(src, text []byte) {
		if !bytes.Equal(src, bnick) {
			return
		}
		num, _, ok := bytes.Cut(text, []byte(":"))
		i, err := strconv.Atoi(string(num))
		if !ok || err != nil || i < 0 || i >= len(e.replies) {
			return
		}
		select {
		case e.replies[i] <- struct{}{}:
		default:
		}
	}
	b.onPrivmsg = func(src, text []byte) {
		_ = b.send("PRIVMSG " + string(src) + " :" + string(text))
	}
	go a.run()
	go b.run()
	return e
}

// roundTrip sends worker i's message and waits for its echo.
func (e *rawEcho) roundTrip(ctx context.Context, i int) error {
	// Drop a late echo of an earlier round trip that timed out.
	for len(e.replies[i]) > 0 {
		<-e.replies[i]
	}
	e.a.wmu.Lock()
	e.a.w.WriteString(e.lines[i])
	err := e.a.w.Flush()
	e.a.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("bench: raw client: %w", err)
	}
	for range e.per {
		select {
		case <-e.replies[i]:
		case <-e.a.dead:
			return fmt.Errorf("bench: raw client A: %w", e.a.err)
		case <-e.b.dead:
			return fmt.Errorf("bench: raw client B: %w", e.b.err)
		case <-ctx.Done():
			return fmt.Errorf("bench: raw round trip: no echo: %w", ctx.Err())
		}
	}
	return nil
}

// RunRequests measures w on the server of env: first raw IRC (a bare
// client's private messages echoed by another), then meshbot (a client
// node's Request to a node whose handler returns the payload), each after
// a warm-up. When ctx ends (an interrupt) it returns what was measured so
// far and a nil error.
func RunRequests(ctx context.Context, env Env, w Requests, prog *Progress) (RequestResult, error) {
	res := RequestResult{Workload: w.Name(), Outstanding: w.Outstanding, Size: w.Size, Count: w.Count}
	if err := w.Validate(); err != nil {
		return res, err
	}
	id := runID()
	service := "srv" + id
	prog.Note("%s: connecting 2 raw clients and 2 nodes to %s", w.Name(), env.Server)
	raws, nodes, err := connectAll(ctx, env, []string{"ba", "bb"}, []mesh.Config{env.node("cli" + id), env.node(service)})
	if err != nil {
		return res, ignoreInterrupt(ctx, err)
	}
	defer closeNodes(nodes)

	e := newRawEcho(w, raws[0], raws[1])
	res.Raw, err = MeasureRoundTrips(ctx, prog, "raw IRC "+w.Name(), w, e.roundTrip)
	closeRaw(raws, true)
	if err != nil || ctx.Err() != nil {
		return res, ignoreInterrupt(ctx, err)
	}

	cli, srv := nodes[0], nodes[1]
	if err := srv.Handle("echo", func(_ context.Context, r *mesh.Request) ([]byte, error) {
		return r.Payload, nil
	}); err != nil {
		return res, err
	}
	wctx, cancel := context.WithTimeout(ctx, IOTimeout)
	err = cli.WaitFor(wctx, service)
	cancel()
	if err != nil {
		return res, ignoreInterrupt(ctx, fmt.Errorf("bench: waiting for the echo service: %w", err))
	}
	payload := bytes.Repeat([]byte("x"), w.Size)
	res.Mesh, err = MeasureRoundTrips(ctx, prog, "meshbot "+w.Name(), w, func(ctx context.Context, _ int) error {
		out, err := cli.Request(ctx, service, "echo", payload)
		if err == nil && len(out) != len(payload) {
			err = fmt.Errorf("bench: an answer of %d bytes to %d", len(out), len(payload))
		}
		return err
	})
	if res.Mesh != nil && res.Raw.P50 > 0 && res.Raw.P99 > 0 && res.Raw.PerSecond > 0 {
		res.P50Ratio = res.Mesh.P50 / res.Raw.P50
		res.P99Ratio = res.Mesh.P99 / res.Raw.P99
		res.ThroughputRatio = res.Mesh.PerSecond / res.Raw.PerSecond
	}
	return res, ignoreInterrupt(ctx, err)
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// warmUp is the size of the round each side runs before it is measured
// (joins, first lines, a group's first claims).
const warmUp = 200

// FanoutResult is a Fanout measured on meshbot and on raw IRC in one run.
// A side is nil when it was not measured (an interrupt or an error came
// first).
type FanoutResult struct {
	Workload string `json:"workload"`
	Pubs     int    `json:"pubs"`
	Subs     int    `json:"subs"`
	Size     int    `json:"size"`
	Msgs     int    `json:"msgs"`
	Anycast  bool   `json:"anycast"`
	Raw      *Rate  `json:"raw_irc,omitempty"`
	Mesh     *Rate  `json:"meshbot,omitempty"`
	// Ratio is meshbot's rate over the raw line rate.
	Ratio float64 `json:"meshbot_per_raw,omitempty"`
}

func newFanoutResult(w Fanout) FanoutResult {
	return FanoutResult{Workload: w.Name(), Pubs: w.Pubs, Subs: w.Subs, Size: w.Size, Msgs: w.Msgs, Anycast: w.Anycast}
}

// RunFanout measures w on the server of env: first raw IRC (bare clients,
// w.Pubs publishing to w.Subs in one channel, a message of more than
// RawText bytes sent as several lines), then meshbot (w.Pubs publisher
// nodes, w.Subs subscriber nodes or anycast workers), each after a
// warm-up. When ctx ends (an interrupt) it returns what was measured so
// far, the side cut short marked incomplete, and a nil error.
func RunFanout(ctx context.Context, env Env, w Fanout, prog *Progress) (FanoutResult, error) {
	res := newFanoutResult(w)
	if err := w.Validate(); err != nil {
		return res, err
	}
	id := runID()
	prog.Note("%s: connecting %d raw clients and %d nodes to %s", w.Name(), w.Pubs+w.Subs, w.Pubs+w.Subs, env.Server)
	var prefixes []string
	for range w.Pubs {
		prefixes = append(prefixes, "bp")
	}
	for range w.Subs {
		prefixes = append(prefixes, "bs")
	}
	var cfgs []mesh.Config
	for range w.Pubs {
		cfgs = append(cfgs, env.node("pub"+id))
	}
	sub := "sub" + id
	if w.Anycast {
		sub = "wrk" + id
	}
	for range w.Subs {
		c := env.node(sub)
		c.QueueLen = queueLen(w)
		cfgs = append(cfgs, c)
	}
	raws, nodes, err := connectAll(ctx, env, prefixes, cfgs)
	if err != nil {
		return res, ignoreInterrupt(ctx, err)
	}
	defer closeNodes(nodes)

	rf, err := newRawFanout(ctx, w, "#bench-raw-"+id, raws[:w.Pubs], raws[w.Pubs:])
	if err != nil {
		closeRaw(raws, false)
		return res, ignoreInterrupt(ctx, err)
	}
	raw, err := Measure(ctx, prog, "raw IRC "+w.Name(), w, rf.round)
	rf.close()
	res.Raw = raw
	if err != nil || ctx.Err() != nil {
		return res, ignoreInterrupt(ctx, err)
	}

	mf, err := newMeshFanout(ctx, w, "f"+id, "g"+id, nodes[:w.Pubs], nodes[w.Pubs:])
	if err != nil {
		return res, ignoreInterrupt(ctx, err)
	}
	res.Mesh, err = Measure(ctx, prog, "meshbot "+w.Name(), w, mf.round)
	if res.Mesh != nil && res.Raw.PerSecond > 0 {
		res.Ratio = res.Mesh.PerSecond / res.Raw.PerSecond
	}
	return res, ignoreInterrupt(ctx, err)
}

// Measure runs a warm-up round (a few hundred messages) and a measured
// one of w with round, showing progress under name: the same for every
// system. round(ctx, msgs, progress) sends msgs messages (w.Msgs when 0),
// stores how many the slowest receiver has in progress, and returns the
// rate. The rate is nil when the warm-up did not complete.
func Measure(ctx context.Context, prog *Progress, name string, w Fanout,
	round func(context.Context, int, *atomic.Int64) (Rate, error)) (*Rate, error) {
	var done atomic.Int64
	end := prog.Phase(name+" (warm-up)", int64(min(warmUp, w.Msgs)), done.Load)
	_, err := round(ctx, min(warmUp, w.Msgs), &done)
	if err != nil || ctx.Err() != nil {
		end(stopped(ctx, err))
		return nil, err
	}
	end("done")
	done.Store(0)
	end = prog.Phase(name, int64(w.Msgs), done.Load)
	r, err := round(ctx, 0, &done)
	switch {
	case err != nil || ctx.Err() != nil:
		end(stopped(ctx, err))
	case w.Anycast:
		end(fmt.Sprintf("%s messages/s handled", Human(r.PerSecond)))
	default:
		end(fmt.Sprintf("%s messages/s per subscriber", Human(r.PerSecond)))
	}
	return &r, err
}

// stopped says why a phase ended early.
func stopped(ctx context.Context, err error) string {
	if err != nil {
		return "failed: " + err.Error()
	}
	if ctx.Err() != nil {
		return "interrupted"
	}
	return "done"
}

// ignoreInterrupt drops err when ctx ended: an interrupt is a clean stop.
func ignoreInterrupt(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// connectAll registers raw clients (one per prefix) and connects nodes
// (one per config) in parallel. On error it closes what connected.
func connectAll(ctx context.Context, env Env, prefixes []string, cfgs []mesh.Config) ([]*rawClient, []*mesh.Node, error) {
	cctx, cancel := context.WithTimeout(ctx, IOTimeout)
	defer cancel()
	var raws []*rawClient
	nodes := make([]*mesh.Node, len(cfgs))
	errs := make([]error, len(cfgs)+1)
	var wg sync.WaitGroup
	wg.Go(func() { raws, errs[len(cfgs)] = connectRaw(cctx, env, prefixes...) })
	for i, cfg := range cfgs {
		wg.Go(func() {
			var err error
			if nodes[i], err = mesh.Connect(cctx, cfg); err != nil {
				errs[i] = fmt.Errorf("bench: node %s: %w", cfg.Service, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(dedupe(errs)...); err != nil {
		closeRaw(raws, false)
		closeNodes(nodes)
		return nil, nil, err
	}
	return raws, nodes, nil
}

// dedupe drops errors whose text an earlier one has (every node of a
// dead server fails alike).
func dedupe(errs []error) []error {
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		if e == nil {
			continue
		}
		msg := e.Error()
		if i := strings.Index(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		if !seen[msg] {
			seen[msg] = true
			out = append(out, e)
		}
	}
	return out
}

// closeNodes closes nodes in parallel, each within a few seconds.
func closeNodes(nodes []*mesh.Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n != nil {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = n.Close(ctx)
			})
		}
	}
	wg.Wait()
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/meshbot/meshbot/internal/bench"
	"github.com/meshbot/meshbot/internal/ircd"
)

// NATS is the name of NATS's column.
const NATS = "NATS"

// options are the command's flags.
type options struct {
	size, subs, msgs, requests int
	outstanding                []int
	duration                   time.Duration
	progress                   *bench.Progress
}

func newProgress(w io.Writer, live bool) *bench.Progress { return bench.NewProgress(w, live) }

// workloads are what a comparison runs: 1 → subs multicast, 1 → subs
// anycast workers, and request/response with each outstanding.
func (o options) workloads() ([]bench.Fanout, []bench.Requests) {
	var fs []bench.Fanout
	for _, anycast := range []bool{false, true} {
		fs = append(fs, bench.Fanout{Pubs: 1, Subs: o.subs, Size: o.size, Msgs: o.msgs, Anycast: anycast, Duration: o.duration})
	}
	var rs []bench.Requests
	for _, n := range o.outstanding {
		rs = append(rs, bench.Requests{Outstanding: n, Size: o.size, Count: o.requests, Duration: o.duration})
	}
	return fs, rs
}

func (o options) validate() error {
	fs, rs := o.workloads()
	for _, f := range fs {
		if err := f.Validate(); err != nil {
			return err
		}
	}
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	if o.duration < 0 {
		return fmt.Errorf("negative -duration")
	}
	return nil
}

// peerFanout is a fanout workload on the three systems.
type peerFanout struct {
	bench.FanoutResult
	NATS *bench.Rate `json:"nats,omitempty"`
}

// peerRequests is a request workload on the three systems.
type peerRequests struct {
	bench.RequestResult
	NATS *bench.Latency `json:"nats,omitempty"`
}

// peerReport is a comparison's result; its JSON form is the
// machine-readable one.
type peerReport struct {
	IRCServer   string         `json:"irc_server"`
	NATSServer  string         `json:"nats_server"`
	Started     time.Time      `json:"started"`
	Seconds     float64        `json:"seconds"`
	CPUs        int            `json:"cpus"`
	GoMaxProcs  int            `json:"gomaxprocs"`
	LoadBefore  []float64      `json:"load_before,omitempty"`
	LoadAfter   []float64      `json:"load_after,omitempty"`
	Fanout      []peerFanout   `json:"fanout,omitempty"`
	Requests    []peerRequests `json:"requests,omitempty"`
	Interrupted bool           `json:"interrupted,omitempty"`
	Errors      []string       `json:"errors,omitempty"`
	Figures     []bench.Figure `json:"figures"`
}

// compare starts the IRC server MESH_IRCD names and an embedded
// nats-server, runs every workload on meshbot and raw IRC
// (bench.RunFanout, bench.RunRequests), then on NATS, and stops both
// servers. A failed workload is noted in Errors and the next one runs; an
// interrupt stops the run with what was measured. The error is for a
// server that did not start.
func compare(ctx context.Context, o options) (*peerReport, error) {
	spec, err := ircd.SpecFromEnv()
	if err != nil {
		return nil, err
	}
	o.progress.Note("starting %s and nats-server %s…", spec.Kind, server.VERSION)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	srv, err := ircd.Start(sctx, spec, ircd.Options{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Kind, err)
	}
	defer srv.Stop()
	ns, err := startNATS()
	if err != nil {
		return nil, err
	}
	defer ns.Shutdown()

	rep := &peerReport{
		IRCServer:  fmt.Sprintf("%s at %s", srv.Kind(), srv.Addr()),
		NATSServer: fmt.Sprintf("nats-server %s (embedded) at %s", server.VERSION, ns.ClientURL()),
		Started:    time.Now(),
		CPUs:       runtime.NumCPU(),
		GoMaxProcs: runtime.GOMAXPROCS(0),
		LoadBefore: bench.LoadAverage(),
	}
	env := bench.Env{Server: srv.Addr()}
	fail := func(name string, err error) {
		if err != nil && ctx.Err() == nil {
			rep.Errors = append(rep.Errors, name+": "+err.Error())
		}
	}
	fanouts, requests := o.workloads()
	for _, w := range fanouts {
		if ctx.Err() != nil {
			break
		}
		res, err := bench.RunFanout(ctx, env, w, o.progress)
		fail(w.Name(), err)
		pf := peerFanout{FanoutResult: res}
		if ctx.Err() == nil {
			pf.NATS, err = natsFanout(ctx, ns.ClientURL(), w, o.progress)
			fail(w.Name()+" on NATS", err)
		}
		rep.Fanout = append(rep.Fanout, pf)
	}
	for _, w := range requests {
		if ctx.Err() != nil {
			break
		}
		res, err := bench.RunRequests(ctx, env, w, o.progress)
		fail(w.Name(), err)
		pr := peerRequests{RequestResult: res}
		if ctx.Err() == nil {
			pr.NATS, err = natsRequests(ctx, ns.ClientURL(), w, o.progress)
			fail(w.Name()+" on NATS", err)
		}
		rep.Requests = append(rep.Requests, pr)
	}
	o.progress.Close()
	rep.Interrupted = ctx.Err() != nil
	rep.finish()
	return rep, nil
}

// finish fills the figures: each bench figure with NATS's value beside.
func (r *peerReport) finish() {
	r.Seconds = time.Since(r.Started).Seconds()
	r.LoadAfter = bench.LoadAverage()
	r.Figures = nil
	for _, f := range r.Fanout {
		figs := f.Figures()
		if f.NATS != nil {
			for i := range figs {
				figs[i].Values[NATS] = f.NATS.PerSecond
			}
		}
		r.Figures = append(r.Figures, figs...)
	}
	for _, q := range r.Requests {
		r.Figures = append(r.Figures, bench.LatencyFigures(q.Workload,
			map[string]*bench.Latency{bench.Meshbot: q.Mesh, bench.RawIRC: q.Raw, NATS: q.NATS})...)
	}
}

func (r *peerReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeText writes the servers, the machine and its load, then one table:
// workload, metric, meshbot, raw IRC, NATS, meshbot/raw, meshbot/NATS.
func (r *peerReport) writeText(w io.Writer) error {
	fmt.Fprintf(w, "%s and %s; %d CPUs (GOMAXPROCS %d); load %s before, %s after; %.1f s\n",
		r.IRCServer, r.NATSServer, r.CPUs, r.GoMaxProcs, loadText(r.LoadBefore), loadText(r.LoadAfter), r.Seconds)
	err := bench.WriteTable(w, r.Figures, []string{bench.Meshbot, bench.RawIRC, NATS},
		[][2]string{{bench.Meshbot, bench.RawIRC}, {bench.Meshbot, NATS}})
	if r.Interrupted {
		fmt.Fprintln(w, "note: interrupted: the figures are what was measured until then")
	}
	for _, e := range r.Errors {
		fmt.Fprintln(w, "error: "+e)
	}
	return err
}

func loadText(l []float64) string {
	if len(l) == 0 {
		return "unknown"
	}
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

package bench

import (
	"context"
	"runtime"
	"time"
)

// Plan is what a run measures, in order: the fanout workloads, then the
// request workloads.
type Plan struct {
	Fanout   []Fanout
	Requests []Requests
}

// Run measures every workload of plan on env's server (named server in
// the report), each against raw IRC in the same run, one after the other.
// A workload that fails is noted in the report's Errors and the next one
// runs. When ctx ends (an interrupt) Run stops and returns what was
// measured so far, marked Interrupted. The report's Figures are filled.
func Run(ctx context.Context, env Env, server string, plan Plan, prog *Progress) *Report {
	r := &Report{
		Server:     server,
		Started:    time.Now(),
		CPUs:       runtime.NumCPU(),
		GoMaxProcs: runtime.GOMAXPROCS(0),
		LoadBefore: LoadAverage(),
	}
	defer r.Finish()
	for _, w := range plan.Fanout {
		if ctx.Err() != nil {
			break
		}
		res, err := RunFanout(ctx, env, w, prog)
		if err != nil {
			r.Errors = append(r.Errors, w.Name()+": "+err.Error())
		}
		if res.Raw != nil || res.Mesh != nil {
			r.Fanout = append(r.Fanout, res)
		}
	}
	for _, w := range plan.Requests {
		if ctx.Err() != nil {
			break
		}
		res, err := RunRequests(ctx, env, w, prog)
		if err != nil {
			r.Errors = append(r.Errors, w.Name()+": "+err.Error())
		}
		if res.Raw != nil || res.Mesh != nil {
			r.Requests = append(r.Requests, res)
		}
	}
	r.Interrupted = ctx.Err() != nil
	return r
}

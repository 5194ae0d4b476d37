package recorder

import (
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// SplitGap hands the recorder of topic what a netjoin hands it: a gap in
// which the other side's lines since since never reached it.
func (r *Recorder) SplitGap(topic string, since time.Time) bool {
	r.mu.Lock()
	tl, ctx := r.logs[topic], r.ctx
	r.mu.Unlock()
	if tl == nil {
		return false
	}
	tl.record(ctx, mesh.Observation{Gap: true, Time: time.Now(), GapSince: since})
	return true
}

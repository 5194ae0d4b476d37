package mesh

import "github.com/meshbot/meshbot/state"

// ServeSnapshotPage is the page d's node would serve for req (tests of a
// holder that tampers with its pages).
func ServeSnapshotPage(d *Domain, req *state.PageRequest) *state.Page {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	return d.m.r.ServePage(req, state.DefaultPageBytes)
}

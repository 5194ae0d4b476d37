package history

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// In a signed mesh a recorder is heard only when it has the mesh's keys:
// its heartbeats and answers must verify with the reader's trust, and the
// reader's signed requests with the recorder's. A recorder without them is
// present in the namespace (the server lists it) but never a verified
// member: requests to it go unanswered. Readers tell that case apart and
// fail with ErrUnverifiedRecorder, naming it, rather than waiting out
// their deadline or reporting "no recorder".

// ErrUnverifiedRecorder is returned when recorders are present but none
// is a verified member of the mesh: their heartbeats do not verify with
// the reader's keys (unsigned where signatures are required, or signed
// with a key the reader does not trust). It wraps mesh.ErrNoResponders:
// where the server has CHATHISTORY, Replay reads it instead.
var ErrUnverifiedRecorder = errors.New("history: recorder present but not verified by this node's keys")

// unverifiedWait is how long a reader that sees recorders present but
// none verified waits for one to beat (one that just connected has not
// beaten yet) before it gives up on them.
const unverifiedWait = 5 * time.Second

// errUnverified is ErrUnverifiedRecorder with what the node knows.
type errUnverified struct {
	nicks    []string
	rejected map[string]uint64
}

func (e *errUnverified) Error() string {
	var reasons []string
	for r, c := range e.rejected {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, c))
	}
	slices.Sort(reasons)
	refused := "none yet"
	if len(reasons) > 0 {
		refused = strings.Join(reasons, " ")
	}
	who, its := "recorder "+e.nicks[0]+" is", "its heartbeats are"
	if len(e.nicks) > 1 {
		who, its = "recorders "+strings.Join(e.nicks, ", ")+" are", "their heartbeats are"
	}
	hint := "the recorder and this node must share the mesh's keys: each a signing key (--ed25519-key-file, or the mesh's --hmac-key-file) and the mesh's keyring (--keyring)"
	switch {
	case e.rejected["unsigned"] > 0 && e.rejected["unknown-key"] == 0:
		hint = "a recorder in a signed mesh needs the mesh's keys: a signing key of its own (--ed25519-key-file, or the mesh's --hmac-key-file) and the keyring (--keyring)"
	case e.rejected["unknown-key"] > 0 && e.rejected["unsigned"] == 0:
		hint = "this node does not have the keys the mesh signs with: give it the mesh's keyring (--keyring)"
	}
	return fmt.Sprintf("%s present but not verified by this node's keys: %s refused (lines this node refused so far: %s); %s", who, its, refused, hint)
}

func (e *errUnverified) Unwrap() []error { return []error{ErrUnverifiedRecorder, mesh.ErrNoResponders} }

// checkRecorders returns an error wrapping ErrUnverifiedRecorder when
// recorders are present in n's namespace but none is a verified member,
// after waiting up to unverifiedWait (or ctx) for one to become one; nil
// when one is verified or none is present (a request then says so).
func checkRecorders(ctx context.Context, n *mesh.Node) error {
	if len(n.Members(Service)) > 0 || len(n.Present(Service)) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, unverifiedWait)
	err := n.WaitFor(wctx, Service)
	cancel()
	if err == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	present := n.Present(Service)
	if len(present) == 0 || len(n.Members(Service)) > 0 {
		return nil
	}
	slices.Sort(present)
	rejected := map[string]uint64{}
	for r, c := range n.Stats().RejectedBy {
		if c > 0 && r != "duplicate" {
			rejected[r] = c
		}
	}
	return &errUnverified{nicks: present, rejected: rejected}
}

// explain adds a hint to the error of a request to the history service
// that got no answer this node accepts: a recorder without the mesh's keys
// signs nothing (members that require signatures refuse its answers) and
// cannot verify signed requests (it drops them unanswered).
func explain(err error) error {
	switch {
	case errors.Is(err, mesh.ErrAnswerRefused):
		return fmt.Errorf("%w (the recorder's answer does not verify with this node's keys: in a signed mesh a recorder needs the mesh's keys)", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (no answer from the recorder: it is overloaded, or cannot verify this node's signed requests because it lacks the mesh's keys)", err)
	}
	return err
}

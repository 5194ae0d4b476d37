package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/state"
)

// Domain state in the record (docs/PROTOCOL.md §8.10). Recorders record
// every domain's channel like any other, and index, per key, the lines of
// the key's last few updates, so that a reader can have the latest update
// of every key of a domain — its current state — without replaying the
// domain's whole history, and the kept versions of one key.

// MethodState is the method that answers a StateRequest with a
// StateAnswer.
const MethodState = "history.state"

// DefaultStateVersions is how many updates of each key a recorder keeps
// indexed by default.
const DefaultStateVersions = 8

// StateRequest asks a recorder for a domain's indexed updates: with Key
// empty, the latest update of each key after After (keys in byte order)
// and, when After is empty, the update that carried the domain's highest
// version; with Key set, that key's kept updates, at most Versions of
// them (the newest; 0: all kept).
type StateRequest struct {
	Domain   string `cbor:"1,keyasint"`
	Key      string `cbor:"2,keyasint,omitempty"`
	After    string `cbor:"3,keyasint,omitempty"`
	Versions int    `cbor:"4,keyasint,omitempty"`
}

// StateAnswer holds the record lines that carry the updates asked for, in
// the record's order, each line once (a batch line may carry updates of
// several keys; a fragmented update comes with all its lines). Last is the
// last key covered; End is set when no key is left after it. Kept counts
// the key's versions the recorder keeps (Key requests).
type StateAnswer struct {
	Records  []PageRecord `cbor:"1,keyasint"`
	Last     string       `cbor:"2,keyasint,omitempty"`
	End      bool         `cbor:"3,keyasint,omitempty"`
	Recorder string       `cbor:"4,keyasint,omitempty"`
	Kept     int          `cbor:"5,keyasint,omitempty"`
}

// Encode returns the request's wire form.
func (r *StateRequest) Encode() ([]byte, error) { return wireEnc.Marshal(r) }

// Encode returns the answer's wire form.
func (a *StateAnswer) Encode() ([]byte, error) { return wireEnc.Marshal(a) }

// DecodeStateRequest reads a StateRequest, as a recorder receives it.
func DecodeStateRequest(b []byte) (StateRequest, error) {
	var r StateRequest
	if err := decode("state request", b, &r); err != nil {
		return r, err
	}
	if err := state.ValidDomain(r.Domain); err != nil {
		return r, fmt.Errorf("%w: state request: %v", ErrMalformedPage, err)
	}
	return r, nil
}

// DecodeStateAnswer reads a StateAnswer, as a reader receives it.
func DecodeStateAnswer(b []byte) (*StateAnswer, error) {
	var a StateAnswer
	if err := decode("state answer", b, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// LatestState reads, from the recorders, the latest update of every key of
// domain (and the update of its highest version), page by page, and calls
// fn with each envelope of the lines, decoded and verified with n's trust;
// what the trust refuses is counted, never handed to fn. It fails with
// mesh.ErrNoResponders when no recorder answers, and with ErrNoStateIndex
// when the recorder predates the index (replay the record instead).
func (*Source) LatestState(ctx context.Context, n *mesh.Node, domain string, fn func(mesh.Recorded) error) (mesh.ReplayCount, error) {
	var count mesh.ReplayCount
	dec := n.NewDecoder()
	req := StateRequest{Domain: domain}
	for pages := 0; ; pages++ {
		a, err := askState(ctx, n, &req)
		if err != nil {
			return count, err
		}
		if err := emitState(dec, a, &count, fn); err != nil {
			return count, err
		}
		if a.End {
			return count, nil
		}
		if a.Last <= req.After {
			return count, fmt.Errorf("%w: state answer after %q ends at %q", ErrMalformedPage, req.After, a.Last)
		}
		req.After = a.Last
	}
}

// KeyVersions reads the kept updates of one key of domain from a recorder
// (at most max, the newest; 0: all), oldest first, verified like
// LatestState. It returns how many the recorder keeps.
func KeyVersions(ctx context.Context, n *mesh.Node, domain, key string, max int, fn func(mesh.Recorded) error) (kept int, count mesh.ReplayCount, err error) {
	a, err := askState(ctx, n, &StateRequest{Domain: domain, Key: key, Versions: max})
	if err != nil {
		return 0, count, err
	}
	err = emitState(n.NewDecoder(), a, &count, fn)
	return a.Kept, count, err
}

// askState sends one StateRequest to a recorder (the same one for a
// domain while membership holds).
func askState(ctx context.Context, n *mesh.Node, req *StateRequest) (*StateAnswer, error) {
	if err := checkRecorders(ctx, n); err != nil {
		return nil, err
	}
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	out, err := n.Request(ctx, Service, MethodState, body, mesh.WithKey(state.Topic(req.Domain)))
	var re *mesh.RemoteError
	if errors.As(err, &re) && re.Code == mesh.CodeNoHandler {
		return nil, fmt.Errorf("history: state of %s: %w: %w", req.Domain, ErrNoStateIndex, err)
	}
	if err != nil {
		return nil, fmt.Errorf("history: state of %s: %w", req.Domain, explain(err))
	}
	return DecodeStateAnswer(out)
}

// emitState decodes an answer's lines and hands on their envelopes.
func emitState(dec *envelope.Decoder, a *StateAnswer, count *mesh.ReplayCount, fn func(mesh.Recorded) error) error {
	for i := range a.Records {
		r := &a.Records[i]
		at := time.Unix(0, r.Time).UTC()
		count.Lines++
		envs, isMesh, err := dec.Decode(r.Nick, r.Tags, r.Body, at)
		for _, e := range envelope.Errors(err) {
			count.Reject(e)
		}
		if !isMesh {
			continue
		}
		for _, env := range envs {
			count.Envelopes++
			if err := fn(mesh.Recorded{Offset: envelope.OffsetAt(at, r.MsgID), Nick: r.Nick, Envelope: env}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrNoStateIndex is returned when the recorder that answered does not
// index domain state (it predates it): read the whole record instead.
var ErrNoStateIndex = errors.New("history: the recorder does not index domain state")

package state

import (
	"fmt"

	"github.com/meshbot/meshbot/envelope"
)

// Snapshots travel as pages over DMs (§8.5): a newcomer asks a member that
// holds a copy of the domain for the updates that make its current state,
// one key range at a time, and applies them like live updates, after
// verifying each with its own trust. A page carries the original signed
// update envelopes, never a re-statement of the state, so the member that
// serves it cannot forge anything: an update it made up would not verify,
// and one of another service is refused as not the owner's.

// SnapshotMethod is the request method of a snapshot page (§8.5).
const SnapshotMethod = "state.snapshot"

// PageRequest asks for the updates of a domain's keys after After (""
// from the first key) through Until ("" to the last), at most MaxBytes of
// them.
type PageRequest struct {
	Domain string `cbor:"1,keyasint"`
	After  string `cbor:"2,keyasint,omitempty"`
	Until  string `cbor:"3,keyasint,omitempty"`
	// Have lists updates the requester holds already (the whole-state
	// updates that write many keys, and the domain's top update): they
	// are not sent again.
	Have     []envelope.ID `cbor:"4,keyasint,omitempty"`
	MaxBytes uint32        `cbor:"5,keyasint,omitempty"`
}

// Page is the answer to a PageRequest.
type Page struct {
	// Updates are the sealed update envelopes, each with the nick that
	// sent it: the update that wrote each key of the range (the key's
	// current value or tombstone) once, and the domain's top update (the
	// one of the highest domain version) unless the requester has it.
	Updates []Sealed `cbor:"1,keyasint,omitempty"`
	// Last is the last key the page covers; End is set when the page
	// covers the range through its end (Until, or the domain's last key).
	Last string `cbor:"2,keyasint,omitempty"`
	End  bool   `cbor:"3,keyasint,omitempty"`
	// Version is the server's domain version, Keys its live keys, when
	// it cut the page.
	Version uint64 `cbor:"4,keyasint"`
	Keys    uint64 `cbor:"5,keyasint,omitempty"`
	// Then are where the pages after this one would start (their After),
	// as the server would cut them now: a reader may ask for them at once,
	// each up to the next (Until).
	Then []string `cbor:"6,keyasint,omitempty"`
}

// Sealed is one update envelope of a page, as its writer sent it.
type Sealed struct {
	_        struct{} `cbor:",toarray"`
	Envelope []byte
	Nick     string
}

// Page limits.
const (
	// DefaultPageBytes is the default size of a page's updates (32 KiB, as
	// history pages: larger answers are single bursts that InspIRCd reads
	// 64 KiB at a time with a stall after each).
	DefaultPageBytes = 32 << 10
	// MaxHave bounds PageRequest.Have, MaxThen Page.Then.
	MaxHave = 64
	MaxThen = 16
	// maxPageUpdates bounds the updates of a decoded page.
	maxPageUpdates = 1 << 16
)

var pageDecMode = envelope.StrictDecMode(4, maxPageUpdates, 16)

// EncodePageRequest returns the payload of a snapshot request.
func EncodePageRequest(r *PageRequest) ([]byte, error) {
	if err := ValidDomain(r.Domain); err != nil {
		return nil, err
	}
	return encMode.Marshal(r)
}

// DecodePageRequest reads a snapshot request.
func DecodePageRequest(b []byte) (*PageRequest, error) {
	var r PageRequest
	if err := pageDecMode.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: page request: %v", ErrMalformed, err)
	}
	if err := ValidDomain(r.Domain); err != nil {
		return nil, fmt.Errorf("%w: page request: %v", ErrMalformed, err)
	}
	if len(r.Have) > MaxHave {
		return nil, fmt.Errorf("%w: page request: %d updates held (at most %d)", ErrMalformed, len(r.Have), MaxHave)
	}
	return &r, nil
}

// EncodePage returns the payload of a snapshot page.
func EncodePage(p *Page) ([]byte, error) { return encMode.Marshal(p) }

// DecodePage reads a snapshot page. The updates in it are not opened:
// the reader verifies each with its own trust.
func DecodePage(b []byte) (*Page, error) {
	var p Page
	if err := pageDecMode.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: page: %v", ErrMalformed, err)
	}
	if len(p.Then) > MaxThen {
		return nil, fmt.Errorf("%w: page: %d next pages (at most %d)", ErrMalformed, len(p.Then), MaxThen)
	}
	for i, s := range p.Updates {
		if len(s.Envelope) == 0 {
			return nil, fmt.Errorf("%w: page: update %d is empty", ErrMalformed, i)
		}
	}
	return &p, nil
}

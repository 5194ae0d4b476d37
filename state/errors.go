package state

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by the package wrap one of them.
var (
	// ErrDomainName: a domain name breaks the naming rule (§8.1).
	ErrDomainName = errors.New("state: bad domain name")
	// ErrMalformed: a state payload or page does not decode, or breaks
	// the rules of §8.2 (no ops, a key twice, version 0, ...).
	ErrMalformed = errors.New("state: malformed")
	// ErrWrongDomain: an update of another domain was handed to a
	// replica.
	ErrWrongDomain = errors.New("state: update of another domain")
	// ErrNotOwner: an update (or a write) comes from a service that does
	// not own the domain (§8.6). Receivers drop such updates and count
	// them.
	ErrNotOwner = errors.New("state: not the domain's owner")
	// ErrNotLoaded: a write before the replica loaded the domain's
	// current state; an owner writes only once it continues the version
	// it found (§8.5).
	ErrNotLoaded = errors.New("state: domain not loaded yet")
	// ErrConflict: a compare-and-set lost (§8.4). The error is a
	// *ConflictError.
	ErrConflict = errors.New("state: compare-and-set conflict")
	// ErrAbandoned: an own write was not sent or the server refused it.
	ErrAbandoned = errors.New("state: write abandoned")
	// ErrUnknownOutcome: the connection dropped before the write's
	// outcome was known; it may or may not have taken effect (read the
	// key once the domain is loaded again).
	ErrUnknownOutcome = errors.New("state: the connection dropped before the write was confirmed; it may or may not have taken effect")
	// ErrBadKey: a key is empty, too long or not UTF-8.
	ErrBadKey = errors.New("state: bad key")
)

// ConflictError is the loser's answer to a compare-and-set: the key was
// not at the expected version when the write was made, or a concurrent
// write of the same key won (§8.4).
type ConflictError struct {
	Domain, Key string
	// Expected is the key version the write was conditioned on (0 with
	// Absent: the key was expected not to exist).
	Expected uint64
	Absent   bool
	// Actual is the key as the writer now holds it: its version, and
	// whether it is deleted or was never written (Actual.Version 0).
	Actual Entry
	// Settled is false when the condition failed before anything was
	// sent (the local copy already differed), true when the write was
	// sent and lost to a concurrent one.
	Settled bool
	// InFlight: refused at once because an own write of the key was
	// still waiting for its outcome.
	InFlight bool
}

func (e *ConflictError) Error() string {
	want := fmt.Sprintf("version %d", e.Expected)
	if e.Absent {
		want = "no key"
	}
	got := fmt.Sprintf("version %d by %s", e.Actual.Version, e.Actual.Writer)
	switch {
	case e.Actual.Version == 0:
		got = "no key"
	case e.Actual.Deleted:
		got = fmt.Sprintf("deleted at version %d by %s", e.Actual.Version, e.Actual.Writer)
	}
	how := "the key is at"
	switch {
	case e.Settled:
		how = "a concurrent write won:"
	case e.InFlight:
		how = "a write of the key from this member is still in flight; the key is at"
	}
	return fmt.Sprintf("%v: %s %q: expected %s; %s %s", ErrConflict, e.Domain, e.Key, want, how, got)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// AuthorityError says why an update was refused as not the owner's.
type AuthorityError struct {
	Domain, Owner string
	// Service is the envelope's sender service; Nick the IRC nick that
	// sent the line (empty when unknown) and NickService its service.
	Service, Nick, NickService string
}

func (e *AuthorityError) Error() string {
	if e.Service != e.Owner {
		return fmt.Sprintf("%v: %s is owned by %s, the update is from %s", ErrNotOwner, e.Domain, e.Owner, e.Service)
	}
	return fmt.Sprintf("%v: %s is owned by %s, the update was sent by nick %q (service %q)", ErrNotOwner, e.Domain, e.Owner, e.Nick, e.NickService)
}

func (e *AuthorityError) Unwrap() error { return ErrNotOwner }

package state

import (
	"bytes"
	"cmp"

	"github.com/meshbot/meshbot/envelope"
)

// Entry is one key of a domain as a replica holds it.
type Entry struct {
	Key string
	// Value is the key's value; nil for a deleted key. Entries handed out
	// by a Replica are copies: changing them changes nothing.
	Value []byte
	// Version is the key's version: the number of writes in its chain, 1
	// for its first write. A write made on version v has version v+1
	// (§8.3). 0 means the key was never written.
	Version uint64
	// DomainVersion is the domain version of the update that wrote it.
	DomainVersion uint64
	// Writer is the instance (service/instance) that wrote it.
	Writer string
	// Deleted is set for a deleted key (a tombstone).
	Deleted bool
	// ID is the update's envelope id; SentAt the writer's clock (Unix ns).
	ID     envelope.ID
	SentAt int64
}

// Exists reports whether the entry holds a value (written, not deleted).
func (e Entry) Exists() bool { return e.Version > 0 && !e.Deleted }

// Stamp orders the writes of one key (§8.3): by key version, then domain
// version, then writer instance, then update id. Every member orders the
// same writes the same way, so the highest stamp wins on every member in
// whatever order the writes arrive.
type Stamp struct {
	Version uint64
	Domain  uint64
	Writer  string
	ID      envelope.ID
}

// Compare returns -1, 0 or 1 as s sorts before, equal to or after t.
func (s Stamp) Compare(t Stamp) int {
	if c := cmp.Compare(s.Version, t.Version); c != 0 {
		return c
	}
	if c := cmp.Compare(s.Domain, t.Domain); c != 0 {
		return c
	}
	if c := cmp.Compare(s.Writer, t.Writer); c != 0 {
		return c
	}
	return bytes.Compare(s.ID[:], t.ID[:])
}

// ChangeKind says what a Change is.
type ChangeKind uint8

// Kinds of change.
const (
	// Put: a key got a new value (New).
	Put ChangeKind = iota + 1
	// Deleted: a key was deleted (New.Deleted).
	Deleted
	// Available: the domain's owner has a live instance that holds it.
	Available
	// Unavailable: the last live instance of the owner is gone; the
	// replica keeps the last state, which is stale from now on.
	Unavailable
	// Loaded: the replica holds the domain's current state (§8.5).
	Loaded
	// Lost: the runtime dropped changes for a watcher that fell behind;
	// Dropped says how many. Read a snapshot to resynchronise.
	Lost
)

var changeNames = [...]string{Put: "put", Deleted: "deleted", Available: "available", Unavailable: "unavailable", Loaded: "loaded", Lost: "lost"}

func (k ChangeKind) String() string {
	if int(k) < len(changeNames) && changeNames[k] != "" {
		return changeNames[k]
	}
	return "change?"
}

// Change is one change of a replica, in the order the replica made it.
type Change struct {
	Domain string
	Kind   ChangeKind
	// Key, Old and New are set for Put and Deleted: the key as it was
	// (Old.Version 0: never written) and as it is now.
	Key      string
	Old, New Entry
	// OldVersion and NewVersion are the domain's version before and after
	// the change (equal for availability changes and for a write that
	// did not raise the domain version).
	OldVersion, NewVersion uint64
	// Whole is set for the keys of a whole-state update (Replace).
	Whole bool
	// Dropped counts the changes a Lost change stands for.
	Dropped uint64
}

// Package claims is the pure core of anycast delivery: for each event seen
// on a topic, exactly one live member of a group completes it.
//
// A Core is one member's view of one (topic, group). Its inputs are what the
// member sees in the topic's channel — events, and the claims, acks, nacks
// and dead-letter markers of the group — the group's membership from
// heartbeats, the member's own session (how long its heartbeats keep it
// alive in everyone's eyes), the results of its own handlers, and the time.
// Its outputs are Actions: envelopes to send, handlers to start or cancel.
// It reads no clock, starts nothing and is not safe for concurrent use: one
// owner feeds it, as with heartbeat.View.
//
// The rules, in short (docs/PROTOCOL.md §6 has them in full):
//
//   - The owner of an event at epoch e is the member at rank (e−1) mod n of
//     the group's n alive members ranked by rendezvous weight of the event's
//     key (or id). It posts a CLAIM with epoch e and a lease.
//   - Claims of one event are ordered by (epoch, weight of the claimant for
//     the event id): the highest wins on every observer, in whatever order
//     the claims arrive.
//   - A claimant starts its handler only once it has seen its own claim in
//     the channel and no higher claim came within Settle.
//   - An ACK completes the event when it comes from the highest claim seen;
//     anything else is stale and ignored. A completed event is never started
//     again by this member.
//   - When the winning claimant dies, is suspected, restarts, NACKs or its
//     lease runs out, the event moves to the next epoch and its owner claims.
//     An owner that does not claim within ClaimTimeout passes the epoch on.
//   - After MaxAttempts failed attempts, the owner of the next epoch posts the
//     event to the dead-letter topic and a DEAD marker that completes it.
//   - A member fences itself: its handlers are cancelled and its results
//     dropped once its lease or its heartbeat session ends, before anyone
//     else may take over.
package claims

// Package claims is the anycast protocol (docs/PROTOCOL.md §6): for each
// event seen on a topic, exactly one live member of a group completes it.
//
// Group is the protocol of one member of one (topic, group), whole: the
// runtime (mesh) and the tools (meshbot claims, the tests) all run it, and
// nothing else turns the channel's envelopes into decisions. It is a step
// layer in the manner of etcd's raft.RawNode over three pure parts:
//
//   - Core: claims, acks, nacks, takeovers, dead letters and self-fencing
//     over event ids;
//   - Prefix: how far, in the order events arrived, every event is
//     completed;
//   - Consensus: the HistoryClaims and votes that make the group's
//     committed offset (§6.13).
//
// Its inputs are methods that take "now": the envelopes received in the
// topic's channel (Receive; Replay for the record's), the group's members
// from the heartbeat view, the member's session and readiness, its
// handlers' results, its commit ticks, Tick, Reset after a lost
// connection, ReleaseAll at shutdown, and Resume/Replayed around a replay
// of the record. Its outputs gather until Ready (or Handlers, for what
// must not wait) takes them: envelopes to send, built and batched; dead
// letters to publish before their markers; handlers to start and cancel;
// lines that did not decode. It reads no clock, starts nothing, does no
// I/O, signs nothing and is not safe for concurrent use: one owner feeds
// it and carries out what it asks.
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
//     A release (a NACK with CodeReleased) opens the next epoch at once and
//     counts no attempt.
//   - After MaxAttempts failed attempts, the owner of the next epoch posts the
//     event to the dead-letter topic and a DEAD marker that completes it.
//   - A member fences itself: its handlers are cancelled and its results
//     dropped once its lease or its heartbeat session ends, before anyone
//     else may take over.
//   - A member vouches for an offset only when it saw everything up to it:
//     after a Reset, and while it replays the record, it claims no offset
//     but the committed one and rejects every other claim.
package claims

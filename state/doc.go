// Package state is the pure core of domain state (docs/PROTOCOL.md §8):
// each service owns a domain of the system's state, every member that
// reads it holds a complete local copy, and every copy converges to the
// same keys, values and versions whatever order the updates arrive in.
//
// A Replica is one member's copy of one domain. Its inputs are the updates
// the member receives (live in the domain's channel #<ns>.<domain>._state,
// or in snapshot pages), the heartbeat view, its own writes and the time;
// its outputs are changes for watchers and the outcomes of its writes. It
// reads no clock, starts nothing and is not safe for concurrent use: one
// owner feeds it, as with claims.Group and heartbeat.View.
//
// The rules, in short (§8 has them in full):
//
//   - A domain is <service> or <service>.<name>; the service named by the
//     first segment owns it, and only its instances may write it: an
//     update whose sender or nick is of another service is refused.
//   - An update writes keys (puts and deletes) at a domain version: the
//     writer's domain version plus one. The domain version of a copy is
//     the highest of any update it received; it never goes back.
//   - Each key has a version that counts its writes: a write made on key
//     version v has version v+1. The writes of a key are ordered by stamp
//     (key version, domain version, writer, update id); the highest wins,
//     on every member, in whatever order writes arrive, and receiving a
//     write twice changes nothing. A deleted key keeps a tombstone so that
//     an older write cannot bring it back.
//   - A whole-state update (Replace) puts every key of the new state and
//     deletes every other key its writer held, in one update.
//   - A compare-and-set (IfVersion, IfAbsent) is refused at once when the
//     writer's copy already differs; otherwise it is sent and, once it came
//     back from the server and Settle passed, it wins if no other write of
//     the key at the same key version has a higher stamp. The losers are
//     told with a *ConflictError; the winner's value is the one every member
//     holds (until a later write of the key).
//   - A newcomer loads the domain from any member holding a copy, as pages
//     of the original signed updates (Loader, ServePage), and applies them
//     like live updates; an owner writes only once it has loaded, so it
//     continues the domain's version rather than restarting it.
//   - A domain is available while a live instance of its owner announces a
//     loaded copy in its heartbeats; otherwise its copies are stale.
package state

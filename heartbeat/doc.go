// Package heartbeat is meshbot's membership core: who is alive in a
// namespace, from heartbeats and from the IRC server's own presence lines.
//
// It is a pure state machine (View): inputs are a received heartbeat (with
// the nick it came from), the server's word that a nick left (QUIT, PART,
// KICK — IRC's "last will"), a netsplit's QUITs and JOINs, nick changes,
// and the time; outputs are topology events (joined, suspected,
// recovered, restarted, left, unreachable). It reads
// no clock, opens no socket and starts no goroutine; the mesh runtime feeds
// it and calls Tick at Next().
//
// What it guarantees:
//
//   - A member whose heartbeats arrive within SuspectAfter of its own
//     announced interval is never suspected, and one within DeadAfter is
//     never declared dead by the clock.
//   - A member the server reports gone is dead at once. A member lost in a
//     netsplit (a QUIT naming two servers: ParseSplitQuit, SplitAway) is
//     Unreachable instead: not among the live members, not judged by
//     silence, back with its next beat or its JOIN in the netjoin's burst
//     (Rejoined; the Recovered event names the split, so the runtime
//     knows the network joined again and what it missed since), dead only
//     after Config.SplitTimeout.
//   - A new incarnation of an instance replaces the old one (one member,
//     a Restarted event), and late beats of an older incarnation or an older
//     sequence number are ignored, so reordering cannot resurrect the past.
//   - While the observer itself is cut off (Suspend), nobody is judged;
//     after Resume everyone gets a fresh interval: the observer's own
//     outage causes no storm of false deaths.
//   - Memory is bounded by the live members plus dead ones for Forget.
//
// Dependencies, Cycles, LeastLoaded and Rendezvous are pure helpers over
// member lists (service discovery and the dependency graph).
package heartbeat

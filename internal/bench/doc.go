// Package bench measures meshbot against the IRC server it runs on, in
// the same run: the logic of `meshbot bench` and of the NATS comparison
// in bench/nats (a module of its own).
//
// Two workloads, each measured twice on one server, raw IRC first:
//
//   - Fanout (publish/subscribe): raw IRC is bare clients (no library, no
//     capabilities) writing PRIVMSG lines to a channel in windows of 100
//     lines closed by a PING, at most 2 unconfirmed (meshbot's own flow
//     control), to bare clients that count them; meshbot is publisher
//     nodes (PublishAsync) and subscriber nodes, or anycast workers of one
//     group. Rates are messages per second per subscriber (anycast:
//     handled per second by the group), from the first publish to the
//     last delivery.
//   - Requests (request/response): raw IRC is a bare client's private
//     messages echoed by another; meshbot is Request to a node whose
//     handler returns the payload. Both run through RoundTrips: N workers,
//     one round trip after another each. Latency percentiles are
//     nearest-rank (Percentile).
//
// Guarantees: every run is bounded (a message count, an optional
// Duration, IOTimeout for each wait); an interrupt (the context) stops a
// run cleanly and returns what was measured so far, marked incomplete;
// every connection and node a run opens is closed before it returns.
// Channels, topics and services carry a random run id, so that runs on one
// server do not mix. Nothing is asserted about speed: the results are
// figures and ratios (Report, WriteTable, WriteJSON).
//
// The package is internal: it is a tool, not an API, and the NATS module
// in bench/nats, inside this repository, may import it.
package bench

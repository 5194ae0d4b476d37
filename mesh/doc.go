// Package mesh is meshbot's runtime: it connects one instance of a service
// to an IRC server as a bot and gives it topics (publish/subscribe), request
// and response, presence, and counters. It is the only meshbot package with
// network I/O and goroutines.
//
// # What it guarantees
//
//   - Publish returns once the server has accepted every line of the event:
//     on servers with echo-message the echo (and its msgid) proves it, on
//     others the answer to a PING written after the lines. A line the
//     server refuses (numeric 404, 401, 417, ...) fails the publish with
//     ErrRefused. Lines are written in windows (Config.WindowLines per round
//     trip, at most Config.MaxWindows unconfirmed): flow control that keeps
//     InspIRCd from stalling and the server's queues bounded.
//   - While the connection is down, publishes wait (until their context
//     ends) and unconfirmed lines are sent again after the reconnect with
//     the same envelope id; receivers drop the copies they already had.
//   - Multicast subscriptions: every subscribing instance receives each
//     event published after its Subscribe returned, once, in server order
//     (with Concurrency 1), as long as it stays connected. With
//     Config.History (history.NewSource), events published while it was
//     disconnected are delivered after it reconnects, once.
//   - Anycast subscriptions (SubscribeAnycast): each event is completed by
//     exactly one live member of the group (docs/PROTOCOL.md §6), across
//     crashes, freezes and restarts; with Config.History a group that was
//     away completes what was published meanwhile, once.
//   - Trust is the node's: Config.Signer, Keys and RequireSigned apply to
//     live lines and to everything read from history alike (NewDecoder).
//   - A subscription's handlers never block the connection: events wait in
//     a bounded queue, and when it is full the newest are dropped and
//     counted (see Subscribe). Memory is bounded everywhere: queues,
//     reassembly, replay guard, echo bookkeeping.
//   - Request goes to one present instance of the target service by DM,
//     with the caller's deadline; if that instance leaves before answering,
//     to another. With no instance present it fails at once with
//     ErrNoResponders. Handler errors come back as *RemoteError with a code.
//   - Lines that are not mesh lines (people talking) are ignored and
//     counted; forged, malformed, unsigned (when required), oversized and
//     replayed envelopes are rejected and counted by reason, never
//     delivered.
//
// # Delivery modes
//
// Each subscription's channel is routed to its delivery mode through one
// internal interface (router.go): multicast.go and anycast.go are
// siblings; a new mode is a new file beside them.
//   - Close drains: no new events or requests are taken, running and
//     queued handlers finish until the context ends (then their contexts
//     are cancelled), pending publishes are confirmed, the bot QUITs. No
//     handler runs after Close returns.
//
// # What the user must do
//
// Configure the server for bots (see testdata/ for InspIRCd, ngIRCd and
// ergo): no flood throttling of these clients. Give every service a short
// lower-case name (the nick is service-instance and must fit the server's
// NICKLEN). Handle events idempotently if the same event may be published
// twice by a retrying application. Call Close.
//
// # Concurrency
//
// Node methods are safe for concurrent use. Handlers of one subscription run
// on its own workers (Config / SubOption Concurrency); request handlers on
// a shared pool (Config.RequestWorkers). docs/DEVELOPING.md lists every
// goroutine, what it owns and the lock order.
package mesh

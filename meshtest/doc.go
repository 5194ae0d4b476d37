// Package meshtest tests a meshbot service against recorded traffic, the
// way net/http/httptest tests an HTTP handler: replay a recorded log into
// the service as it runs in production, capture what it did, and compare
// that with a golden file.
//
//	func TestBilling(t *testing.T) {
//		log := meshtest.Load(t, "testdata/orders.log") // meshbot record --raw
//		cfg := mesh.Config{Service: "billing"}
//		res := meshtest.Replay(t, log, cfg, billing.Register)
//		meshtest.Golden(t, "testdata/orders.golden", res.Text())
//	}
//
// `go test -update` writes the golden file; afterwards a change in what
// the service does fails the test with a diff.
//
// # What a replay is
//
// Replay connects a real *mesh.Node — the service's production config,
// its own setup function, the same subscriptions (multicast, anycast with
// their options), request handlers and domains — to a small in-memory
// replay server, inside a testing/synctest bubble. The server registers
// the node, confirms its joins, answers its flow-control PINGs and echoes
// its lines (echo-message), and sends it the recorded lines at their
// recorded times on a virtual clock: the node's timers (retries, claim
// leases, request deadlines, heartbeats) run on that clock, so a replay of
// minutes of traffic takes milliseconds and nothing sleeps. The service
// under test takes the place of the node that recorded the log: channel
// lines reach it when it is in the channel, private messages to the
// recording node reach it (requests), and the lines of the recorded
// instances of its own service are left out (they are what the replay is
// to produce again).
//
// # What it guarantees
//
//   - The same log, service and options give the same Result.Text, byte
//     for byte, on every run: the recorded lines of one instant of the
//     virtual clock reach the node together, once everything earlier
//     lines and timers caused is done; the outputs of one instant are
//     listed in a fixed order. A service that is itself nondeterministic
//     (random ids in its payloads, goroutines racing) needs FormatPayload
//     or a fix.
//   - The node under test is the production runtime, unchanged: nothing in
//     mesh knows it is being replayed (mesh.Config.Dial is the only hook,
//     and it costs nothing when unset).
//   - A replay never touches the network and never sleeps in real time.
//
// # What the user must do
//
// Pass Replay the function the service's main calls to register itself on
// a node, and a config with at least Service. Goroutines the service
// starts must end when the context given to setup ends (synctest fails
// the test otherwise). Code run during a replay must not do real network
// I/O: a bubble whose goroutines wait on the network never goes idle.
// Stub the services the service asks (Answer). A test package that
// imports meshtest gets the -update flag and must not define its own.
//
// The recording package (meshtest/recording) loads, cuts and edits logs:
// drop a line to see what the service does when it misses an event,
// duplicate one to see it receive an event twice, delay or swap lines to
// reorder them, anonymise payloads before a production log is committed.
package meshtest

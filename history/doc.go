// Package history reads what the mesh's channels carried: the client of
// the history service, and the wire its readers and recorders share.
//
//   - Replay streams a topic's recorded envelopes, in the recorder's
//     order, from an offset, a time or the first line kept, page by page
//     with a bounded number of pages in flight (docs/PROTOCOL.md §7.3,
//     §7.4). Where no recorder answers it reads the server's CHATHISTORY
//     (ergo; §7.8).
//   - Source is the record as a mesh.HistorySource: set as
//     mesh.Config.History, it catches multicast subscriptions up after a
//     reconnect and resumes anycast groups from their committed offset
//     (Source.Committed, §7.5).
//   - ReadRequest, Page, CommitRequest and CommitAnswer are the wire
//     (wire.go); every Decode function refuses malformed input with
//     ErrMalformedPage.
//
// Every line read is decoded and verified with the reading node's own
// trust (mesh.Node.NewDecoder): what the node would refuse live it refuses
// replayed, counts and reports. In a signed mesh the recorders need the
// mesh's keys too (they sign their answers and verify the requests they
// get); readers that see recorders they cannot verify fail with
// ErrUnverifiedRecorder.
//
// The recorder that serves the record lives in history/recorder, its
// durable store in history/store; this package depends on neither (and on
// no storage library).
package history

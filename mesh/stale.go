package mesh

import "bytes"

// girc queues the lines it sends on a channel that outlives a connection:
// lines queued for an attempt whose connection ended before they were sent
// (its NICK and USER, say, when the server closed at once) are sent first
// on the next connection, ahead of that connection's own CAP LS. A server
// then completes the registration before capability negotiation starts,
// and the node would take the connection up with none of the capabilities
// it asks for (no message-tags, echo-message, batch: no CHATHISTORY). So on
// a new connection the lines written before the first one that opens a
// registration (WEBIRC, PASS, CAP LS, in girc's order) are left out: they
// belong to an attempt that is over, and the node sends again what a
// connection needs (its joins) once registered.

// skipStale returns what of p, the first bytes written on a connection,
// is to be sent: from the first line that opens a registration on. It
// reports how many lines it left out and whether that line was found (when
// not, nothing is sent and the next write is checked again).
func skipStale(p []byte) (rest []byte, stale int, opened bool) {
	for rest = p; len(rest) > 0; {
		if opensRegistration(rest) {
			return rest, stale, true
		}
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, stale + 1, false
		}
		rest = rest[i+1:]
		stale++
	}
	return nil, stale, false
}

// opensRegistration reports whether line (at the start of b) is one girc
// sends first on a connection.
func opensRegistration(b []byte) bool {
	for _, p := range [...]string{"CAP LS", "PASS ", "WEBIRC "} {
		if len(b) >= len(p) && bytes.EqualFold(b[:len(p)], []byte(p)) {
			return true
		}
	}
	return false
}

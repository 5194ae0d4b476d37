package mesh

// Crash drops n's connection without QUIT and stops it from reconnecting,
// as if its process had been killed: the server tells the others with a
// QUIT of its own.
func Crash(n *Node) {
	n.closing.Store(true)
	n.sealed.Store(true)
	n.client.Close()
}

// SkipStale is skipStale (stale.go).
var SkipStale = skipStale

package mesh

// dropConnection ends the node's current connection from any goroutine by
// closing its socket: girc's loops end on the read error and the connect
// loop goes on (reconnect, failover), as after a server's reset. It never
// calls girc's Client.Close, which must not run while girc sets a
// connection up (it reads the connection's cancel func without the lock
// the connecting goroutine writes it under). A connection that already
// ended is left alone.
func (n *Node) dropConnection() {
	n.mu.Lock()
	t := n.tap
	n.mu.Unlock()
	if t != nil {
		_ = t.Conn.Close()
	}
}

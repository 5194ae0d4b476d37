package history

// SetCommitScan sets the lines one MethodCommitted request looks at, for
// tests that make a lookup take several requests; it returns the undo.
func SetCommitScan(n int) (undo func()) {
	old := maxCommitScan
	maxCommitScan = n
	return func() { maxCommitScan = old }
}

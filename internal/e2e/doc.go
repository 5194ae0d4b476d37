// Package e2e holds end-to-end tests that run meshbot as real processes
// (built from cmd/meshbot by internal/proctest) against a real IRC server:
// failure detection with SIGKILL and SIGSTOP, restarts, and a mesh of many
// instances. It has no code of its own.
package e2e

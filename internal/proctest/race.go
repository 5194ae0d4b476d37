//go:build race

package proctest

// raceEnabled: the tests run with -race, and so do the processes.
const raceEnabled = true

//go:build race

package meshwatermill_test

// raceEnabled: the race detector is on (it slows every node several
// times over).
const raceEnabled = true

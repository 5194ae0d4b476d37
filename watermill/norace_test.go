//go:build !race

package meshwatermill_test

const raceEnabled = false

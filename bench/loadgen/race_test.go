//go:build race

package loadgen

// raceEnabled: the test binary runs with the race detector, and builds the
// load processes it starts with it too.
const raceEnabled = true

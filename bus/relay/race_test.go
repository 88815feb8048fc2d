//go:build race

package relay_test

// raceEnabled: the race detector drops a quarter of what goes back to a
// sync.Pool, on purpose, so counts of allocations mean nothing under it.
const raceEnabled = true

//go:build race

package e2e_test

// raceEnabled: the tests run with -race, so the programs are built with it
// too, and a data race in corrald fails its exit-status check (66).
const raceEnabled = true

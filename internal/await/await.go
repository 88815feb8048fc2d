// Package await waits, in tests, for a condition that no event announces:
// the state of /proc, a file another process writes, the output of a
// command line. It polls, with a deadline. Where an event exists (a
// message, a report, a channel), a test waits for the event instead.
package await

import (
	"testing"
	"time"
)

// Poll calls cond until it holds or within has passed, and reports
// whether it held. It looks often at first and then every 50 ms at most,
// so a condition that holds at once costs nothing and a slow one costs
// little.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	every := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
		every = min(2*every, 50*time.Millisecond)
	}
	return true
}

// Until is Poll that fails the test, naming what it waited for, when cond
// has not held within the time given. It returns how long the wait took.
func Until(tb testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	if !Poll(within, cond) {
		tb.Fatalf("timed out after %v waiting for %s", within, what)
	}
	return time.Since(start)
}

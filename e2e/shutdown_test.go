package e2e_test

import (
	"testing"
)

// SIGTERM to corrald stops every child (each gets SIGTERM and exits 0),
// then corrald exits 0 within waitExit, leaving no process and no socket.
func TestShutdownStopsChildren(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	ev := watch(t, n.url)

	enc := n.spawn(t, "encoder", `{"inputPath":"a","outputPath":"b","frames":1000000}`)
	tick := n.spawn(t, "ticker", `{"intervalMs":50}`)
	// Connected means each has its signal handler in place.
	ev.waitFor(t, "process.connected", enc.ID, nil)
	ev.waitFor(t, "process.connected", tick.ID, nil)

	n.stop(t) // checks the exit status and the sockets
	for _, p := range []process{enc, tick} {
		if !gone(p.PID) {
			t.Errorf("%s (pid %d) still exists after corrald exited", p.Name, p.PID)
		}
		stopped := ev.waitFor(t, "process.stopped", p.ID, nil)
		if d := payload(t, stopped); d["exitCode"] != float64(0) {
			t.Errorf("%s: process.stopped %s, want exitCode 0", p.Name, stopped.Data)
		}
	}
}

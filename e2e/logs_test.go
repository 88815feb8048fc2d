package e2e_test

import (
	"os/exec"
	"strings"
	"testing"
)

// A process that has ended is still listed (ps --all) and its output
// still readable (corralctl logs) after corrald is killed with SIGKILL and
// started again, within retention.
func TestLogsOfAFinishedProcessSurviveANodeCrash(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is required by this test: %v", err)
	}
	n := startNode(t)
	ev := watch(t, n.url)
	p := n.spawn(t, "pyworker", `{"count":1}`)
	ev.waitFor(t, "process.stopped", p.ID, nil)

	n.kill9(t)
	n2 := n.restart(t)
	var found *process
	for _, q := range n2.listAll(t) {
		if q.ID == p.ID {
			found = &q
		}
	}
	if found == nil || found.Status != "stopped" {
		t.Fatalf("after the restart ps --all shows %+v, want %s stopped", found, p.ID)
	}
	if out := n2.ctl(t, "logs", p.ID); !strings.Contains(out, "done") {
		t.Errorf("logs of the finished process after the restart:\n%s", out)
	}
}

package e2e_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// examples/raw-worker.py speaks the wire protocol with nothing but a socket
// and json: its events reach the bus with <processId>:<id> message ids, the
// event that breaks the schema is refused with an error reply, and nothing
// of it is published.
func TestRawPythonWorker(t *testing.T) {
	t.Parallel()
	// Not skipped: CI must have python3 (.ci/run checks for it).
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is required by this test: %v", err)
	}
	n := startNode(t)
	ev := watch(t, n.url)

	p := n.spawn(t, "pyworker", `{"count":2}`)
	stopped := ev.waitFor(t, "process.stopped", p.ID, nil)
	if d := payload(t, stopped); d["exitCode"] != float64(0) {
		t.Fatalf("process.stopped %s, want exitCode 0", stopped.Data)
	}

	var greetings []string
	for _, m := range ev.about(p.ID) {
		checkHeaders(t, m, n.id, p.ID, "pyworker")
		if m.Subject != "process.pyworker.greeting" {
			continue
		}
		d := payload(t, m)
		greetings = append(greetings, fmt.Sprintf("%s %v", m.Header.Get("Nats-Msg-Id"), d["message"]))
		if d["processId"] != p.ID || d["name"] != "pyworker" || d["n"] == nil {
			t.Errorf("greeting payload %s, want processId, name and the data's message and n", m.Data)
		}
	}
	// Line ids: 1 connected, 2 and 3 the greetings, 4 the refused one.
	want := []string{p.ID + ":2 hello #1 from python", p.ID + ":3 hello #2 from python"}
	if strings.Join(greetings, "\n") != strings.Join(want, "\n") {
		t.Errorf("greetings:\n%s\nwant:\n%s", strings.Join(greetings, "\n"), strings.Join(want, "\n"))
	}
	if out := n.ctl(t, "logs", p.ID); !strings.Contains(out, "refused: schema_invalid") || !strings.Contains(out, "done") {
		t.Errorf("the worker's log should show the schema_invalid error reply and its clean end:\n%s", out)
	}
}

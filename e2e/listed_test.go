package e2e_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/corral-run/corral/internal/await"
)

// restartingEmitter is emitterDefinition restarted on every crash, as
// make chaos runs it.
const restartingEmitter = `
[processes.emitter]
command = %q
stop_timeout = "5s"
heartbeat_timeout = "10s"
auto_restart = true
max_restarts = -1
restart_delay = "1s"
env = { EMITTER_DIR = %q }

[processes.emitter.events.tick]
type = "object"
required = ["seq"]
properties = { seq = { type = "integer" } }
`

// TestKilledChildrenListedAfterNodeRestart: every process that ever ran
// stays listed by ps --all, with its last status, across node restarts. A
// child killed while its node runs ends crashed and is replaced; a child
// killed while its node is down is found gone by the next node and ends
// crashed; after two kill -9 of the node, ps --all still lists every one
// of them, and every replacement, with its last status.
func TestKilledChildrenListedAfterNodeRestart(t *testing.T) {
	ackDir := t.TempDir()
	n := startNodeWith(t, fmt.Sprintf(restartingEmitter, bin("emitter"), ackDir))
	a, b, c := n.spawn(t, "emitter", ""), n.spawn(t, "emitter", ""), n.spawn(t, "emitter", "")
	for _, p := range []process{a, b, c} {
		waitAcked(t, ackDir, p.ID, 3)
	}
	ever := map[string]bool{a.ID: true, b.ID: true, c.ID: true}
	// listed waits until ps --all from m lists every process that ever ran,
	// those of want with the status want says, and takes in the new ones.
	listed := func(m *node, want map[string]string) map[string]process {
		t.Helper()
		var got map[string]process
		var why string
		if !await.Poll(waitEvent, func() bool {
			got = map[string]process{}
			for _, p := range m.listAll(t) {
				got[p.ID] = p
			}
			why = ""
			for id := range ever {
				p, ok := got[id]
				switch {
				case !ok:
					why += fmt.Sprintf(" %s is not listed;", id)
				case want[id] != "" && p.Status != want[id]:
					why += fmt.Sprintf(" %s is %s (%s), want %s;", id, p.Status, p.Error, want[id])
				}
			}
			return why == ""
		}) {
			t.Fatalf("ps --all:%s", why)
		}
		for id := range got {
			ever[id] = true
		}
		return got
	}

	// a is killed while its node runs: crashed, and replaced.
	if err := syscall.Kill(a.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	listed(n, map[string]string{a.ID: "crashed", b.ID: "running", c.ID: "running"})

	// b is killed while its node is down: the next node finds it gone.
	n.kill9(t)
	if err := syscall.Kill(b.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	await.Until(t, waitEvent, "b gone", func() bool { return gone(b.PID) })
	n2 := n.restart(t)
	got := listed(n2, map[string]string{a.ID: "crashed", b.ID: "crashed", c.ID: "running"})
	if !strings.Contains(got[b.ID].Error, "node was down") {
		t.Errorf("b ended %q, want its end found by the next node", got[b.ID].Error)
	}
	// b's replacement runs before the next crash.
	await.Until(t, waitEvent, "a replacement of b", func() bool {
		for _, p := range n2.listAll(t) {
			if !ever[p.ID] && p.Status == "running" {
				ever[p.ID] = true
				return true
			}
		}
		return false
	})

	// And again, c this time: everything that ran is still listed.
	n2.kill9(t)
	if err := syscall.Kill(c.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	await.Until(t, waitEvent, "c gone", func() bool { return gone(c.PID) })
	n3 := n2.restart(t)
	listed(n3, map[string]string{a.ID: "crashed", b.ID: "crashed", c.ID: "crashed"})
	n3.ctl(t, "stop", "--all", "--name", "emitter")
	final := listed(n3, nil)
	for id := range ever {
		if s := final[id].Status; s != "stopped" && s != "crashed" {
			t.Errorf("%s is %s after stop --all, want stopped or crashed", id, s)
		}
	}
	t.Logf("%d processes listed across three node lives", len(ever))
}

// TestPendingRestartSurvivesNodeKill: a node killed -9 while a crashed
// child waits out its restart delay leaves the restart to the next node,
// which carries it out once; a third node life does not restart it again.
func TestPendingRestartSurvivesNodeKill(t *testing.T) {
	n := startNodeWith(t, `
[processes.napper]
command = "sleep"
args = ["600"]
heartbeat_timeout = "0s"
auto_restart = true
restart_delay = "3s"
`)
	a := n.spawn(t, "napper", "")
	if err := syscall.Kill(a.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	await.Until(t, waitEvent, "a crashed, its restart pending", func() bool {
		for _, p := range n.listAll(t) {
			if p.ID == a.ID {
				return p.Status == "crashed" && p.RestartPending
			}
		}
		return false
	})
	n.kill9(t)
	n2 := n.restart(t)
	var replacement process
	await.Until(t, waitEvent, "a replacement of a, started by the next node", func() bool {
		for _, p := range n2.listAll(t) {
			if p.ID != a.ID && p.Status == "running" {
				replacement = p
				return true
			}
		}
		return false
	})
	n2.kill9(t)
	n3 := n2.restart(t)
	await.Until(t, waitEvent, "the replacement re-adopted", func() bool {
		for _, p := range n3.listAll(t) {
			if p.ID == replacement.ID && p.Status == "running" {
				return true
			}
		}
		return false
	})
	// Neither a restart of a armed again (pending) nor one carried out
	// (a process starting or running besides the replacement).
	var live []string
	for _, p := range n3.listAll(t) {
		if p.ID == a.ID && p.RestartPending {
			t.Errorf("a's restart is pending again in the third node life")
		}
		if p.Status != "stopped" && p.Status != "crashed" {
			live = append(live, p.ID+" "+p.Status)
		}
	}
	if len(live) != 1 {
		t.Errorf("not ended after the third node life: %v, want only %s (a restarted once)", live, replacement.ID)
	}
}

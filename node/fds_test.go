package node_test

import (
	"os"
	"testing"

	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// openFDs counts the test process's open file descriptors (the node's).
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// A running child costs the node one file descriptor, its log FIFO: no
// pidfd (the node reaps its own children from one SIGCHLD loop), no
// listening socket (one shared socket for all), and its log file only
// while it writes. A connection, when the child opens one, is the second.
// (Before issue 10: three, a pidfd of the node's, the pidfd os/exec keeps,
// and a listening socket, connection not counted.)
func TestFileDescriptorsPerChild(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "idle", role(testchild.RoleSleep), nil)
	const n = 40
	before := openFDs(t)
	for range n {
		h.spawn(t, "idle", node.SpawnOptions{})
	}
	after := openFDs(t)
	per := float64(after-before) / n
	t.Logf("%d children: %d file descriptors before, %d after: %.2f per child", n, before, after, per)
	if after-before > n+3 { // a few for what the sampler opens in /proc meanwhile
		t.Errorf("%.2f file descriptors per child, want 1", per)
	}

	// Children that connect: their connection is the second.
	h.define(t, "connected", map[string]string{testchild.EnvRole: testchild.RoleClient, testchild.EnvHeartbeat: "1h"}, nil)
	before = openFDs(t)
	for range n {
		mp := h.spawn(t, "connected", node.SpawnOptions{})
		h.rec.Wait(t, node.KindConnected, mp.ID)
	}
	after = openFDs(t)
	per = float64(after-before) / n
	t.Logf("%d connected children: %d file descriptors before, %d after: %.2f per child", n, before, after, per)
	if after-before > 2*n+3 {
		t.Errorf("%.2f file descriptors per connected child, want 2", per)
	}
}

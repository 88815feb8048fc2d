package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/daemon"
	"github.com/corral-run/corral/internal/testchild"
)

// clientNode starts a node on dataDir whose "w" definition runs this test
// binary as a Go-client child that rides out node restarts.
func clientNode(t *testing.T, dataDir, shutdown string) (*daemon.Daemon, *nats.Conn) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf(`
[node]
id = "n1"
data_dir = %q
shutdown = %q
[nats]
listen = "127.0.0.1:0"
jetstream = false
[processes.w]
command = %q
stop_timeout = "2s"
env = { %s = %q, %s = "100ms" }
`, dataDir, shutdown, exe, testchild.EnvRole, testchild.RoleClient, testchild.EnvHeartbeat)
	d := startDaemon(t, parseConfig(t, toml), slog.LevelInfo)
	nc, err := nats.Connect(d.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return d, nc
}

func closeNode(t *testing.T, d *daemon.Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDetachLeavesChildrenForTheNextNode(t *testing.T) {
	dataDir := testchild.ShortTempDir(t)
	d1, nc1 := clientNode(t, dataDir, "detach")
	next1 := events(t, nc1)
	ctl := control.New(nc1)
	ctx := context.Background()
	var spawned []api.ManagedProcess
	for i := 0; i < 2; i++ {
		mp, err := ctl.Spawn(ctx, "", "w", api.SpawnRequest{})
		if err != nil {
			t.Fatal(err)
		}
		spawned = append(spawned, mp)
		next1("process.connected")
	}
	t.Cleanup(func() {
		for _, mp := range spawned {
			syscall.Kill(-mp.PID, syscall.SIGKILL)
		}
	})
	closeNode(t, d1)
	for _, mp := range spawned {
		if syscall.Kill(mp.PID, 0) != nil {
			t.Fatalf("detach stopped %s", mp.ID)
		}
	}

	// The next node re-adopts them: same ids, same pids, running.
	d2, nc2 := clientNode(t, dataDir, "stop")
	next2 := events(t, nc2)
	ctl2 := control.New(nc2)
	list, err := ctl2.List(ctx, api.ListRequest{})
	if err != nil || len(list.Processes) != 2 {
		t.Fatalf("list after restart: %+v %v", list, err)
	}
	for i, mp := range list.Processes {
		if mp.ID != spawned[i].ID || mp.PID != spawned[i].PID || mp.Status != "running" {
			t.Errorf("re-adopted %+v, was %+v", mp, spawned[i])
		}
	}
	next2("process.connected") // a child's client found the recreated socket
	// Default shutdown stops them all.
	closeNode(t, d2)
	for _, mp := range spawned {
		if syscall.Kill(mp.PID, 0) == nil && !zombieOrGone(mp.PID) {
			t.Errorf("%s (pid %d) survived a stop shutdown", mp.ID, mp.PID)
		}
	}
}

func zombieOrGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

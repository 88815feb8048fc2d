package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
)

// A node with more processes than one reply holds (max_payload, here its
// least: 64 KiB, about 150 processes) lists them all, over several
// replies: ps and ps --all see every one, stop --all returns every one
// it stopped, though the node keeps only the last 250 ended
// (retention_max). A reply too big to send used to be dropped, and the
// node counted as silent.
func TestAListLongerThanAReplyComesInPages(t *testing.T) {
	const n, kept = 400, 250
	d := startDaemon(t, parseConfig(t, fmt.Sprintf(`
[node]
id = "big"
data_dir = %q
retention_max = 250
[nats]
listen = "127.0.0.1:0"
jetstream = false
max_payload = 65536
%s`, testchild.ShortTempDir(t), sleeperDefinition)), slog.LevelWarn)
	ctl := control.New(connectTo(t, d))
	ctx := context.Background()
	spawned := map[string]bool{}
	for range n {
		mp, err := ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
		if err != nil {
			t.Fatal(err)
		}
		spawned[mp.ID] = true
	}
	check := func(what string, procs []api.ManagedProcess, status api.Status, want int) {
		t.Helper()
		seen := map[string]bool{}
		for _, p := range procs {
			if !spawned[p.ID] || seen[p.ID] || p.Status != status {
				t.Fatalf("%s: %s (%s) listed unexpectedly or twice", what, p.ID, p.Status)
			}
			seen[p.ID] = true
		}
		if len(seen) != want {
			t.Fatalf("%s: %d processes, want %d", what, len(seen), want)
		}
	}
	res, err := ctl.List(ctx, api.ListRequest{})
	if err != nil || len(res.Missing) > 0 {
		t.Fatalf("list: %v, missing %v", err, res.Missing)
	}
	check("ps", res.Processes, api.StatusRunning, n)

	stopped, err := ctl.StopAll(ctx, "sleeper", "SIGKILL")
	if err != nil {
		t.Fatal(err)
	}
	check("stop --all", stopped, api.StatusStopped, n)

	await.Until(t, 10*time.Second, "the node to keep the last 250 ended", func() bool {
		res, err = ctl.List(ctx, api.ListRequest{All: true, Name: "sleeper"})
		return err == nil && len(res.Missing) == 0 && len(res.Processes) == kept
	})
	check("ps --all", res.Processes, api.StatusStopped, kept)
}

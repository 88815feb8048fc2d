package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/node"
)

// The FIFO of a process whose output every writer has closed serves a
// later process (its inode among the spares, not deleted); one a stray
// descendant still holds is deleted, so nothing it writes reaches another
// process's log.
func TestEndedFIFOIsReusedOnlyWhenNobodyHoldsIt(t *testing.T) {
	dirs := newNodeDirs(t)
	gate := filepath.Join(t.TempDir(), "go")
	sup, rec := startSupervisor(t, dirs, func(d *node.Definition) {
		d.Command, d.Env, d.HeartbeatTimeout = "/bin/sh", map[string]string{"GATE": gate}, 0
		d.SpawnEnv = []string{"NAME", "STRAY"}
		// It waits for the gate, says its name, and (STRAY=1) leaves a
		// process in a session of its own that holds its output.
		d.Args = []string{"-c", `while [ ! -e "$GATE" ]; do sleep 0.01; done; echo "out-$NAME"; ` +
			`if [ "$STRAY" = 1 ]; then setsid sleep 30 & echo $! > "$GATE.stray"; fi`}
	})
	closeOnCleanup(t, sup)
	spareDir := filepath.Join(dirs.logs, ".spare-fifos")
	spareInodes := func() map[uint64]bool {
		out := map[uint64]bool{}
		entries, _ := os.ReadDir(spareDir)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil {
				out[fi.Sys().(*syscall.Stat_t).Ino] = true
			}
		}
		return out
	}
	run := func(name, stray string) uint64 {
		t.Helper()
		_ = os.Remove(gate)
		p, err := sup.Spawn(context.Background(), "w", node.SpawnOptions{Env: map[string]string{"NAME": name, "STRAY": stray}})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(dirs.logs, p.ID+".fifo"))
		if err != nil {
			t.Fatal(err)
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		rec.Wait(t, node.KindStopped, p.ID)
		if _, err := os.Lstat(filepath.Join(dirs.logs, p.ID+".fifo")); !os.IsNotExist(err) {
			t.Errorf("%s: its FIFO is still in place after its end: %v", name, err)
		}
		b, _ := os.ReadFile(filepath.Join(dirs.logs, p.ID+".log"))
		if got := strings.TrimSpace(string(b)); got != "out-"+name {
			t.Errorf("%s's log: %q", name, got)
		}
		return ino
	}

	ino := run("clean", "0")
	if !spareInodes()[ino] {
		t.Error("the FIFO nobody held any more is not among the spares")
	}
	strayIno := run("stray", "1")
	t.Cleanup(func() {
		if b, err := os.ReadFile(gate + ".stray"); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	if spareInodes()[strayIno] {
		t.Error("the FIFO a stray process still holds was made a spare")
	}
	// Spawns go on taking spares; each log holds its own output only.
	for _, name := range []string{"a", "b", "c"} {
		run(name, "0")
	}
	await.Until(t, 10*time.Second, "spares made again", func() bool { return len(spareInodes()) >= 16 })
}

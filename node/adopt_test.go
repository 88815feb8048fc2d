package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/node/nodetest"
)

// nodeDirs are the directories two successive nodes on one host share.
type nodeDirs struct{ sock, logs, state string }

func newNodeDirs(t *testing.T) nodeDirs {
	dir := testchild.ShortTempDir(t)
	return nodeDirs{filepath.Join(dir, "sock"), filepath.Join(dir, "logs"), filepath.Join(dir, "state")}
}

// startSupervisor starts a node's supervisor on dirs with one definition
// "w" running the test binary as a Go-client child.
func startSupervisor(t *testing.T, dirs nodeDirs, mod func(*node.Definition)) (*node.Supervisor, *nodetest.Recorder) {
	t.Helper()
	rec := nodetest.NewRecorder()
	sup, err := node.New(node.Config{NodeID: "n1", SocketDir: dirs.sock, LogDir: dirs.logs, StateDir: dirs.state,
		Reporter: rec, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	d := node.Definition{Name: "w", Command: exe, StopTimeout: 2 * time.Second, HeartbeatTimeout: 5 * time.Second,
		Env: map[string]string{testchild.EnvRole: testchild.RoleClient, testchild.EnvHeartbeat: "100ms"}}
	if mod != nil {
		mod(&d)
	}
	if err := sup.Define(d); err != nil {
		t.Fatal(err)
	}
	return sup, rec
}

func closeOnCleanup(t *testing.T, sup *node.Supervisor) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := sup.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}

func detach(t *testing.T, sup *node.Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sup.Detach(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNodeRestartReadoptsChildren(t *testing.T) {
	dirs := newNodeDirs(t)
	a, recA := startSupervisor(t, dirs, nil)
	ctx := context.Background()
	p1, err := a.Spawn(ctx, "w", node.SpawnOptions{Metadata: json.RawMessage(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := a.Spawn(ctx, "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recA.Wait(t, node.KindConnected, p1.ID)
	recA.Wait(t, node.KindConnected, p2.ID)
	detach(t, a)
	if !alive(p1.PID) || !alive(p2.PID) {
		t.Fatal("detach stopped children")
	}

	b, recB := startSupervisor(t, dirs, nil)
	closeOnCleanup(t, b)
	res := b.Recover()
	if len(res.Adopted) != 2 || len(res.Lost) != 0 || res.Corrupt != 0 {
		t.Fatalf("recover: %+v", res)
	}
	for _, p := range []api.ManagedProcess{p1, p2} {
		rc := recB.Wait(t, node.KindReconnected, p.ID).Payload.(api.Reconnected)
		if rc != (api.Reconnected{ProcessID: p.ID, Name: "w", PID: p.PID}) {
			t.Errorf("reconnected payload %+v", rc)
		}
		// The child's own client reconnects to the recreated socket.
		recB.Wait(t, node.KindConnected, p.ID)
		got, ok := b.Get(p.ID)
		if !ok || got.Status != api.StatusRunning || got.PID != p.PID || got.SocketPath != p.SocketPath {
			t.Errorf("adopted record %+v", got)
		}
	}
	if got, _ := b.Get(p1.ID); string(got.Metadata) != `{"n":1}` {
		t.Errorf("metadata %s", got.Metadata)
	}

	// Stop reaches the adopted child's group and its exit is seen.
	got, err := b.Stop(ctx, p1.ID, 0)
	if err != nil || got.Status != api.StatusStopped {
		t.Fatalf("stop adopted: %+v %v", got, err)
	}
	waitGone(t, p1.PID)
	if r := readRecord(t, dirs, p1.ID); r["status"] != "stopped" {
		t.Errorf("record of a stopped process: %v, want it kept, ended stopped", r)
	}
	// An exit nobody asked for is detected without a parent's wait.
	if err := syscall.Kill(p2.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cr := recB.Wait(t, node.KindCrashed, p2.ID).Payload.(api.Crashed)
	if cr.ExitCode != nil || !strings.Contains(cr.Error, "unknown") {
		t.Errorf("crashed payload %+v", cr)
	}
}

func TestAdoptedChildIsStillWatchedForHeartbeats(t *testing.T) {
	dirs := newNodeDirs(t)
	a, recA := startSupervisor(t, dirs, func(d *node.Definition) {
		d.Env[testchild.EnvHeartbeat] = "1h" // connects, then never beats
		d.HeartbeatTimeout = 300 * time.Millisecond
	})
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recA.Wait(t, node.KindConnected, p.ID)
	detach(t, a)
	b, recB := startSupervisor(t, dirs, func(d *node.Definition) {
		d.Env[testchild.EnvHeartbeat] = "1h"
		d.HeartbeatTimeout = 300 * time.Millisecond
	})
	closeOnCleanup(t, b)
	if res := b.Recover(); len(res.Adopted) != 1 {
		t.Fatalf("recover: %+v", res)
	}
	recB.Wait(t, node.KindStale, p.ID)
	recB.Wait(t, node.KindWatchdogKilled, p.ID)
	recB.Wait(t, node.KindCrashed, p.ID)
	waitGone(t, p.PID)
}

func TestRecycledPidIsNotAdopted(t *testing.T) {
	dirs := newNodeDirs(t)
	a, recA := startSupervisor(t, dirs, nil)
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recA.Wait(t, node.KindConnected, p.ID)
	detach(t, a)
	t.Cleanup(func() { syscall.Kill(-p.PID, syscall.SIGKILL) })

	// The pid now "belongs" to another process: change the recorded start time.
	path := filepath.Join(dirs.state, p.ID+".json")
	var rec map[string]any
	b0, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b0, &rec); err != nil {
		t.Fatal(err)
	}
	rec["startTicks"] = rec["startTicks"].(float64) + 1
	b1, _ := json.Marshal(rec)
	if err := os.WriteFile(path, b1, 0o600); err != nil {
		t.Fatal(err)
	}

	b, recB := startSupervisor(t, dirs, func(d *node.Definition) {
		d.AutoRestart = true
		d.RestartDelay = 10 * time.Millisecond
	})
	closeOnCleanup(t, b)
	res := b.Recover()
	if len(res.Adopted) != 0 || len(res.Lost) != 1 || res.Lost[0] != p.ID {
		t.Fatalf("recover: %+v", res)
	}
	cr := recB.Wait(t, node.KindCrashed, p.ID).Payload.(api.Crashed)
	if cr.ExitCode != nil || !strings.Contains(cr.Error, "while the node was down") {
		t.Errorf("crashed payload %+v", cr)
	}
	// The unrelated process was not touched, and auto-restart applied.
	if !alive(p.PID) {
		t.Error("the process holding the recycled pid was killed")
	}
	rs := recB.Wait(t, node.KindRestarted, "").Payload.(api.Restarted)
	if rs.OldProcessID != p.ID {
		t.Errorf("restarted payload %+v", rs)
	}
	if r := readRecord(t, dirs, p.ID); r["status"] != "crashed" || r["error"] != cr.Error {
		t.Errorf("record of a lost process: %v, want it kept, ended crashed", r)
	}
}

// readRecord reads the record of id as a JSON object.
func readRecord(t *testing.T, dirs nodeDirs, id string) map[string]any {
	t.Helper()
	var rec map[string]any
	b, err := os.ReadFile(filepath.Join(dirs.state, id+".json"))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil {
		t.Fatalf("record of %s: %v", id, err)
	}
	return rec
}

func TestTornStateFileIsSkipped(t *testing.T) {
	dirs := newNodeDirs(t)
	if err := os.MkdirAll(dirs.state, 0o700); err != nil {
		t.Fatal(err)
	}
	torn := filepath.Join(dirs.state, "proc_torn000000000000.json")
	if err := os.WriteFile(torn, []byte(`{"version":1,"id":"proc_to`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirs.state, ".proc_half00000000000.tmp"), []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dirs.sock, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dirs.sock, "proc_gone000000000000.sock")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := startSupervisor(t, dirs, nil)
	closeOnCleanup(t, b)
	res := b.Recover()
	if res.Corrupt != 1 || len(res.Adopted) != 0 {
		t.Errorf("recover: %+v", res)
	}
	if _, err := os.Stat(torn + ".corrupt"); err != nil {
		t.Errorf("torn record not moved aside: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale socket not removed: %v", err)
	}
	// The node works normally afterwards.
	if _, err := b.Spawn(context.Background(), "w", node.SpawnOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestAdoptedChildThatNeverConnectedIsLeftToItsExit(t *testing.T) {
	dirs := newNodeDirs(t)
	mod := func(d *node.Definition) {
		d.Env = map[string]string{testchild.EnvRole: testchild.RoleSleep} // never connects
		d.HeartbeatTimeout = 100 * time.Millisecond
		d.StatsInterval = 100 * time.Millisecond
	}
	a, _ := startSupervisor(t, dirs, mod)
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	detach(t, a)
	b, recB := startSupervisor(t, dirs, mod)
	closeOnCleanup(t, b)
	if res := b.Recover(); len(res.Adopted) != 1 {
		t.Fatalf("recover: %+v", res)
	}
	// Several stats rounds (100 ms each), far past twice the heartbeat
	// timeout: a child that never connected is not watched for heartbeats.
	recB.WaitN(t, node.KindStats, 8, 10*time.Second)
	if n := recB.Count(node.KindStale, p.ID) + recB.Count(node.KindWatchdogKilled, p.ID); n != 0 {
		t.Errorf("%d heartbeat watchdog reports for a child that never connected", n)
	}
	if got, _ := b.Get(p.ID); got.Status != api.StatusRunning {
		t.Errorf("status %s", got.Status)
	}
}

func TestDetachAfterRecoveringALostProcess(t *testing.T) {
	dirs := newNodeDirs(t)
	a, recA := startSupervisor(t, dirs, nil)
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recA.Wait(t, node.KindConnected, p.ID)
	detach(t, a)
	t.Cleanup(func() { syscall.Kill(-p.PID, syscall.SIGKILL) })
	// Its pid now "belongs" to another process, so the next node finds it lost.
	path := filepath.Join(dirs.state, p.ID+".json")
	var rec map[string]any
	b0, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b0, &rec); err != nil {
		t.Fatal(err)
	}
	rec["startTicks"] = rec["startTicks"].(float64) + 1
	b1, _ := json.Marshal(rec)
	if err := os.WriteFile(path, b1, 0o600); err != nil {
		t.Fatal(err)
	}

	b, recB := startSupervisor(t, dirs, nil)
	if res := b.Recover(); len(res.Lost) != 1 {
		t.Fatalf("recover: %+v", res)
	}
	recB.Wait(t, node.KindCrashed, p.ID)
	// The lost process is listed (crashed) and has no socket: detaching the
	// node must step over it.
	detach(t, b)
}

// Restarts that are overdue when a node recovers (its predecessor let go
// while they waited out their delay) run once Recover is done: each
// replacement keeps its socket (not removed as stale), none is taken for
// an orphan, and each crashed process is replaced once.
func TestOverdueRestartsRunAfterRecover(t *testing.T) {
	dirs := newNodeDirs(t)
	const delay = 400 * time.Millisecond
	mod := func(d *node.Definition) { d.AutoRestart, d.RestartDelay, d.RestartDelayMax = true, delay, delay }
	a, recA := startSupervisor(t, dirs, mod)
	ctx := context.Background()
	const n = 30
	var crashed []api.ManagedProcess
	for range n {
		p, err := a.Spawn(ctx, "w", node.SpawnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		crashed = append(crashed, p)
	}
	for _, p := range crashed {
		recA.Wait(t, node.KindConnected, p.ID)
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	for _, p := range crashed {
		recA.Wait(t, node.KindCrashed, p.ID)
	}
	detach(t, a)
	time.Sleep(delay + 200*time.Millisecond) // the restarts fall due while no node runs

	b, _ := startSupervisor(t, dirs, mod)
	closeOnCleanup(t, b)
	res := b.Recover()
	if len(res.Orphans) != 0 {
		t.Errorf("orphans %v: replacements taken for orphans", res.Orphans)
	}
	var running []api.ManagedProcess
	await.Until(t, 10*time.Second, "every crashed process replaced", func() bool {
		running = running[:0]
		for _, p := range b.GetAll() {
			if p.Status == api.StatusRunning {
				running = append(running, p)
			}
		}
		return len(running) >= n
	})
	pids := map[int]bool{}
	for _, p := range running {
		if pids[p.PID] {
			t.Errorf("pid %d supervised twice", p.PID)
		}
		pids[p.PID] = true
		if _, err := os.Lstat(filepath.Join(dirs.sock, p.ID+".sock")); err != nil {
			t.Errorf("replacement %s has no socket: %v", p.ID, err)
		}
	}
	if len(running) != n {
		t.Errorf("%d running, want %d (each crashed process replaced once)", len(running), n)
	}
}

// A replacement says in its environment which process it replaces, so a
// node that finds it without its record (killed between the fork and the
// record) does not restart the replaced one again.
func TestReplacementCarriesWhatItReplaces(t *testing.T) {
	dirs := newNodeDirs(t)
	a, rec := startSupervisor(t, dirs, func(d *node.Definition) { d.AutoRestart, d.RestartDelay = true, node.RestartAtOnce })
	closeOnCleanup(t, a)
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, node.KindConnected, p.ID)
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	rs := rec.Wait(t, node.KindRestarted, "").Payload.(api.Restarted)
	np, ok := a.Get(rs.NewProcessID)
	if !ok {
		t.Fatalf("replacement %s not listed", rs.NewProcessID)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", np.PID))
	if err != nil {
		t.Fatal(err)
	}
	if want := node.EnvReplaces + "=" + p.ID; !slices.Contains(strings.Split(string(env), "\x00"), want) {
		t.Errorf("the replacement's environment lacks %s", want)
	}
}

// A restart pending when the node went away follows the definition the
// next node has: carried out while it still restarts, dropped once it no
// longer does (auto_restart off).
func TestPendingRestartFollowsTodaysDefinition(t *testing.T) {
	for _, tc := range []struct {
		name     string
		today    func(*node.Definition)
		restarts bool
	}{
		{"unchanged", func(*node.Definition) {}, true},
		{"auto_restart off", func(d *node.Definition) { d.AutoRestart = false }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dirs := newNodeDirs(t)
			const delay = 300 * time.Millisecond
			before := func(d *node.Definition) {
				d.AutoRestart, d.RestartDelay, d.RestartDelayMax, d.MaxRestarts = true, delay, delay, 5
			}
			a, recA := startSupervisor(t, dirs, before)
			p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
			if err != nil {
				t.Fatal(err)
			}
			recA.Wait(t, node.KindConnected, p.ID)
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
			recA.Wait(t, node.KindCrashed, p.ID)
			detach(t, a)

			b, recB := startSupervisor(t, dirs, func(d *node.Definition) { before(d); tc.today(d) })
			closeOnCleanup(t, b)
			b.Recover()
			got, _ := b.Get(p.ID)
			if got.RestartPending != tc.restarts {
				t.Errorf("restart pending %v after recovery, want %v", got.RestartPending, tc.restarts)
			}
			if tc.restarts {
				rs := recB.Wait(t, node.KindRestarted, "").Payload.(api.Restarted)
				if rs.OldProcessID != p.ID {
					t.Errorf("restarted %+v", rs)
				}
			}
		})
	}
}

package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/node/procstat"
)

// A spawn whose record cannot be written (the state directory is on a
// full disk) fails with a 500 that says why, and leaves no child, socket
// or log behind.
func TestSpawnFailsWhenItsRecordCannotBeWritten(t *testing.T) {
	dirs := newNodeDirs(t)
	if err := os.MkdirAll(dirs.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dirs.state, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("this test mounts a small tmpfs as the state directory (it needs root): %v", err)
	}
	t.Cleanup(func() { // registered first: runs after the supervisor's Close
		if err := syscall.Unmount(dirs.state, 0); err != nil {
			t.Errorf("unmount %s: %v", dirs.state, err)
		}
	})
	fill, err := os.Create(filepath.Join(dirs.state, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = fill.Write(make([]byte, 4096))
	}
	fill.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v", err)
	}

	token := "spawn-without-record-" + strconv.Itoa(os.Getpid())
	sup, rec := startSupervisor(t, dirs, func(d *node.Definition) {
		d.Env = map[string]string{testchild.EnvRole: testchild.RoleSleep, "CORRAL_TEST_EXTRA": token}
	})
	closeOnCleanup(t, sup)
	_, err = sup.Spawn(context.Background(), "w", node.SpawnOptions{})
	if !errors.Is(err, api.ErrInternal) || api.Code(err) != 500 ||
		err.Error() != `cannot spawn "w": cannot write its record: no space left on device` {
		t.Fatalf("spawn with a full state directory: %v, want a 500 saying its record cannot be written", err)
	}
	if pids := withEnv(t, "CORRAL_TEST_EXTRA="+token); len(pids) != 0 {
		t.Errorf("the child of the failed spawn runs on: %v", pids)
	}
	if all := sup.GetAll(); len(all) != 0 {
		t.Errorf("the failed spawn is listed: %+v", all)
	}
	if n := len(rec.Of(node.KindSpawned, "")); n != 0 {
		t.Errorf("process.spawned reported for a spawn that failed")
	}
	for _, dir := range []string{dirs.sock, dirs.logs} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "proc_") {
				t.Errorf("the failed spawn left %s in %s", e.Name(), dir)
			}
		}
	}
}

// withEnv lists the live processes (not zombies) whose environment holds
// kv.
func withEnv(t *testing.T, kv string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && slices.ContainsFunc(bytes.Split(env, []byte{0}), func(b []byte) bool { return string(b) == kv }) && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// A child's output is not lost across a node restart: while no node
// reads, it waits in the FIFO (the child is not killed by SIGPIPE, it goes
// on writing), and the next node appends it to the same log, every line
// once and whole.
func TestLogsCarryOnAcrossANodeRestart(t *testing.T) {
	dirs := newNodeDirs(t)
	ticker := func(d *node.Definition) { d.Env = map[string]string{testchild.EnvRole: roleTicker} }
	a, _ := startSupervisor(t, dirs, ticker)
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dirs.logs, p.ID+".log")
	countLines := func() int {
		b, _ := os.ReadFile(logPath)
		return bytes.Count(b, []byte{'\n'})
	}
	await.Until(t, 10*time.Second, "the child's output in its log", func() bool { return countLines() >= 20 })
	detach(t, a)

	// No node reads: the output piles up in the FIFO, and the child lives.
	fifo, err := os.OpenFile(filepath.Join(dirs.logs, p.ID+".fifo"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "output waiting in the FIFO", func() bool {
		n, err := unix.IoctlGetInt(int(fifo.Fd()), unix.TIOCINQ) // FIONREAD
		return err == nil && n >= 1024
	})
	fifo.Close()
	if !alive(p.PID) || zombie(p.PID) {
		t.Fatal("the child died while no node read its output")
	}
	atDetach := countLines()

	b, _ := startSupervisor(t, dirs, ticker)
	closeOnCleanup(t, b)
	if res := b.Recover(); len(res.Adopted) != 1 {
		t.Fatalf("recover: %+v", res)
	}
	await.Until(t, 10*time.Second, "the next node to go on with the log", func() bool { return countLines() >= atDetach+200 })
	got, err := b.Stop(context.Background(), p.ID, 0)
	if err != nil || got.Status != api.StatusStopped {
		t.Fatalf("stop: %+v %v", got, err)
	}
	out, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for i, l := range lines {
		if want := fmt.Sprintf("tick %06d", i); l != want {
			t.Fatalf("line %d of %d is %q, want %q: a line was lost, repeated or cut", i, len(lines), l, want)
		}
	}
}

// A child spawned by a node before this version (records of version 1,
// with paths; output written by the child itself to <name>-<id>.log) is
// re-adopted across the upgrade, and its log is still read from there.
func TestUpgradeFromVersion1Records(t *testing.T) {
	dirs := newNodeDirs(t)
	for _, d := range []string{dirs.logs, dirs.state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	const id = "proc_0ldn0de0f0rupgra"
	exe, _ := os.Executable()
	logPath := filepath.Join(dirs.logs, "w-"+id+".log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	child := exec.Command(exe)
	child.Env = append(os.Environ(), testchild.EnvRole+"="+roleTicker, "DONKEYLABS_PROCESS_ID="+id)
	child.Stdout, child.SysProcAttr = out, &syscall.SysProcAttr{Setpgid: true}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = child.Wait(); close(exited) }()
	t.Cleanup(func() { _ = syscall.Kill(-child.Process.Pid, syscall.SIGKILL); <-exited })
	ticks, err := procstat.StartTime(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	exeDef := node.Definition{Name: "w", Command: exe}
	rec, _ := json.Marshal(map[string]any{"version": 1, "id": id, "definition": exeDef.Info(), "pid": child.Process.Pid,
		"startTicks": ticks, "startedAt": time.Now(), "socketPath": filepath.Join(dirs.sock, id+".sock"), "logPath": logPath, "metadata": json.RawMessage("{}")})
	if err := os.WriteFile(filepath.Join(dirs.state, id+".json"), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "the old child's output", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Count(b, []byte{'\n'}) >= 3
	})

	b, _ := startSupervisor(t, dirs, func(d *node.Definition) { d.Env = map[string]string{testchild.EnvRole: roleTicker} })
	closeOnCleanup(t, b)
	if res := b.Recover(); !slices.Equal(res.Adopted, []string{id}) {
		t.Fatalf("recover: %+v", res)
	}
	if tail, err := b.LogTail(id, 1); err != nil || !strings.HasPrefix(tail, "tick ") {
		t.Errorf("logs of the upgraded child: %q %v", tail, err)
	}
	if got, err := b.Stop(context.Background(), id, 0); err != nil || got.Status != api.StatusStopped {
		t.Fatalf("stop: %+v %v", got, err)
	}
	<-exited
	if tail, err := b.LogTail(id, 1); err != nil || !strings.HasPrefix(tail, "tick ") {
		t.Errorf("logs of the upgraded child once stopped: %q %v", tail, err)
	}
}

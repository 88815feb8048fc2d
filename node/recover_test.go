package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// A process that has ended is still listed after a node restart (within
// retention), as it ended, and its output can still be read.
func TestLogsOfAFinishedProcessAfterANodeRestart(t *testing.T) {
	dirs := newNodeDirs(t)
	printer := func(d *node.Definition) { d.Env = map[string]string{testchild.EnvRole: rolePrint, envLines: "50"} }
	a, recA := startSupervisor(t, dirs, printer)
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{Metadata: json.RawMessage(`{"job":7}`)})
	if err != nil {
		t.Fatal(err)
	}
	recA.Wait(t, node.KindStopped, p.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	b, recB := startSupervisor(t, dirs, printer)
	closeOnCleanup(t, b)
	res := b.Recover()
	if !slices.Equal(res.Ended, []string{p.ID}) || len(res.Adopted)+len(res.Lost) != 0 {
		t.Fatalf("recover: %+v", res)
	}
	got, ok := b.Get(p.ID)
	if !ok || got.Status != api.StatusStopped || got.ExitCode == nil || *got.ExitCode != 0 || got.EndedAt == nil ||
		got.PID != p.PID || string(got.Metadata) != `{"job":7}` {
		t.Errorf("get after the restart: %+v, %v", got, ok)
	}
	if all := b.GetAll(); len(all) != 1 || all[0].ID != p.ID {
		t.Errorf("ps --all after the restart: %+v", all)
	}
	out, err := b.LogTail(p.ID, 2)
	if err != nil || out != printedLine(49)+"\ndone, on stderr\n" {
		t.Errorf("logs after the restart: %q, %v", out, err)
	}
	if n := len(recB.Of(node.KindStopped, p.ID)) + len(recB.Of(node.KindCrashed, p.ID)); n != 0 {
		t.Errorf("the end of a process the last node saw end was reported again (%d)", n)
	}
}

// A record is trusted for what it says of the process, never for where
// files are: a record edited to point its socket and log at other files
// does not make the node delete, create or write them.
func TestTamperedRecordPathsAreNotUsed(t *testing.T) {
	dirs := newNodeDirs(t)
	a, recA := startSupervisor(t, dirs, nil)
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recA.Wait(t, node.KindConnected, p.ID)
	detach(t, a)

	victims := filepath.Join(testchild.ShortTempDir(t), "precious")
	if err := os.WriteFile(victims, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := readRecord(t, dirs, p.ID)
	rec["socketPath"], rec["logPath"] = victims, victims // as records once held them
	b1, _ := json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(dirs.state, p.ID+".json"), b1, 0o600); err != nil {
		t.Fatal(err)
	}

	b, recB := startSupervisor(t, dirs, nil)
	closeOnCleanup(t, b)
	if res := b.Recover(); len(res.Adopted) != 1 {
		t.Fatalf("recover: %+v", res)
	}
	recB.Wait(t, node.KindConnected, p.ID) // the child found its socket where it always was
	if got, _ := b.Get(p.ID); got.SocketPath != p.SocketPath {
		t.Errorf("socket path %q after re-adoption, want %q", got.SocketPath, p.SocketPath)
	}
	if _, err := b.Stop(context.Background(), p.ID, 0); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(victims); err != nil || string(b) != "keep me" {
		t.Errorf("the file the record pointed at: %q, %v; want it untouched", b, err)
	}
}

// A child whose record was deleted, or torn, is still found at Recover (by
// the mark of its node in its environment) and re-adopted, with the same
// supervision as one that had a record.
func TestChildWithoutRecordIsReadopted(t *testing.T) {
	dirs := newNodeDirs(t)
	a, recA := startSupervisor(t, dirs, nil)
	deleted, err := a.Spawn(context.Background(), "w", node.SpawnOptions{Metadata: json.RawMessage(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	torn, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// empty: what a node killed between creating a first record and
	// writing it leaves (store.reserve, store.fill).
	empty, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recA.Wait(t, node.KindConnected, deleted.ID)
	recA.Wait(t, node.KindConnected, torn.ID)
	recA.Wait(t, node.KindConnected, empty.ID)
	detach(t, a)
	if err := os.Remove(filepath.Join(dirs.state, deleted.ID+".json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirs.state, torn.ID+".json"), []byte(`{"version":2,"id":"pro`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirs.state, empty.ID+".json"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	b, recB := startSupervisor(t, dirs, nil)
	closeOnCleanup(t, b)
	res := b.Recover()
	slices.Sort(res.Adopted)
	want := []string{deleted.ID, torn.ID, empty.ID}
	slices.Sort(want)
	if !slices.Equal(res.Adopted, want) || !slices.Equal(res.Orphans, want) || res.Corrupt != 1 {
		t.Fatalf("recover: %+v, want all three adopted as orphans, one corrupt record (the empty one is a spawn not finished)", res)
	}
	if _, err := os.Stat(filepath.Join(dirs.state, empty.ID+".json.corrupt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the empty record was moved aside as corrupt: %v", err)
	}
	for _, p := range []api.ManagedProcess{deleted, torn, empty} {
		rc := recB.Wait(t, node.KindReconnected, p.ID).Payload.(api.Reconnected)
		if rc != (api.Reconnected{ProcessID: p.ID, Name: "w", PID: p.PID}) {
			t.Errorf("reconnected %+v", rc)
		}
		recB.Wait(t, node.KindConnected, p.ID)
		if got, ok := b.Get(p.ID); !ok || got.Status != api.StatusRunning || got.PID != p.PID {
			t.Errorf("re-adopted orphan %+v", got)
		}
	}
	if got, _ := b.Get(deleted.ID); string(got.Metadata) != `{"n":1}` {
		t.Errorf("metadata of the re-adopted orphan: %s", got.Metadata)
	}
	if got, err := b.Stop(context.Background(), deleted.ID, 0); err != nil || got.Status != api.StatusStopped {
		t.Errorf("stop a re-adopted orphan: %+v %v", got, err)
	}
	waitGone(t, deleted.PID)
	if r := readRecord(t, dirs, torn.ID); r["pid"] != float64(torn.PID) {
		t.Errorf("the re-adopted orphan has no record again: %v", r)
	}
}

// A child of this node without a record whose definition the node no
// longer has cannot be supervised: it is killed and reported crashed,
// never left running unreported.
func TestOrphanOfUnknownDefinitionIsKilledAndReported(t *testing.T) {
	dirs := newNodeDirs(t)
	a, recA := startSupervisor(t, dirs, nil)
	p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recA.Wait(t, node.KindConnected, p.ID)
	detach(t, a)
	if err := os.Remove(filepath.Join(dirs.state, p.ID+".json")); err != nil {
		t.Fatal(err)
	}

	b, recB := startSupervisor(t, dirs, func(d *node.Definition) { d.Name = "other" })
	closeOnCleanup(t, b)
	res := b.Recover()
	if !slices.Equal(res.Orphans, []string{p.ID}) || len(res.Adopted) != 0 {
		t.Fatalf("recover: %+v", res)
	}
	cr := recB.Wait(t, node.KindCrashed, p.ID).Payload.(api.Crashed)
	if cr.Name != "w" || cr.ExitCode != nil || !strings.Contains(cr.Error, `of definition "w", which the node does not have`) {
		t.Errorf("crashed %+v", cr)
	}
	waitGone(t, p.PID)
	if got, ok := b.Get(p.ID); !ok || got.Status != api.StatusCrashed {
		t.Errorf("the killed orphan is not listed crashed: %+v", got)
	}
}

// An OnCrash that spawns, as an embedder's may, works for a process
// Recover finds dead too: Recover holds the lock spawns take for its whole
// run, so it calls the callbacks of the processes it finds dead once it
// has let go of it, in the order it found them, before it returns.
func TestOnCrashOfAProcessFoundDeadAtRecoverCanSpawn(t *testing.T) {
	dirs := newNodeDirs(t)
	a, recA := startSupervisor(t, dirs, nil)
	var dead []api.ManagedProcess
	for range 2 {
		p, err := a.Spawn(context.Background(), "w", node.SpawnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		recA.Wait(t, node.KindConnected, p.ID)
		dead = append(dead, p)
	}
	detach(t, a)
	// Killed and reaped while no node watches: their records are of
	// processes that are gone.
	for _, p := range dead {
		if err := syscall.Kill(-p.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(p.PID, &ws, 0, nil); err != nil {
			t.Fatalf("reap %d: %v", p.PID, err)
		}
	}

	type crash struct {
		id      string
		code    int
		spawned api.ManagedProcess
		err     error
	}
	crashes := make(chan crash, len(dead))
	var b *node.Supervisor
	b, recB := startSupervisor(t, dirs, func(d *node.Definition) {
		d.OnCrash = func(mp api.ManagedProcess, code int) {
			np, err := b.Spawn(context.Background(), "w", node.SpawnOptions{})
			crashes <- crash{id: mp.ID, code: code, spawned: np, err: err}
		}
	})
	closeOnCleanup(t, b)
	recovered := make(chan node.RecoverResult, 1)
	go func() { recovered <- b.Recover() }()
	var res node.RecoverResult
	select {
	case res = <-recovered:
	case <-time.After(10 * time.Second):
		t.Fatal("Recover did not return within 10 s: an OnCrash that spawns deadlocked it")
	}
	want := []string{dead[0].ID, dead[1].ID}
	slices.Sort(want)
	if !slices.Equal(res.Lost, want) || len(res.Adopted) != 0 {
		t.Fatalf("recover: %+v, want both lost", res)
	}
	for _, id := range res.Lost {
		var c crash
		select {
		case c = <-crashes:
		default:
			t.Fatalf("OnCrash of %s was not called before Recover returned", id)
		}
		if c.id != id || c.code != -1 {
			t.Errorf("OnCrash of %s (code %d), want %s (code -1): not in the order Recover found them", c.id, c.code, id)
		}
		if c.err != nil || c.spawned.Status != api.StatusRunning {
			t.Fatalf("the spawn of OnCrash: %+v, %v", c.spawned, c.err)
		}
		recB.Wait(t, node.KindConnected, c.spawned.ID)
	}
}

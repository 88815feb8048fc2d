package node

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/testchild"
)

// forgetful is a Reporter that drops every report and tells, on forgot,
// the id of each process prune forgets (Config.Reporter's Forget), once
// its record is removed.
type forgetful struct{ forgot chan string }

func (forgetful) Publish(r Report) error {
	if r.Done != nil {
		r.Done(nil)
	}
	return nil
}

func (f forgetful) Forget(id string) { f.forgot <- id }

// A persist that lands after prune has removed a process's record (finish,
// a respawn or a heartbeat's persistConnected writing on another goroutine
// as prune forgets the process) does not bring the record back: save finds
// no file and creates one, and persist must remove it again. The next node
// on the same state directory does not list the pruned process.
func TestPersistAfterPruneLeavesNoRecord(t *testing.T) {
	dir := testchild.ShortTempDir(t)
	rep := forgetful{forgot: make(chan string, 16)}
	cfg := Config{NodeID: "n1", SocketDir: filepath.Join(dir, "sock"), StateDir: filepath.Join(dir, "state"),
		Reporter: rep, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	short := cfg
	short.Retention = time.Nanosecond // pruned as soon as its end is handled
	closeSup := func(s *Supervisor) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	s, err := New(short)
	if err != nil {
		t.Fatal(err)
	}
	closeFirst := sync.OnceFunc(func() { closeSup(s) })
	t.Cleanup(closeFirst)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Define(Definition{Name: "w", Command: exe, StopTimeout: 2 * time.Second,
		Env: map[string]string{testchild.EnvRole: testchild.RoleSleep}}); err != nil {
		t.Fatal(err)
	}
	mp, err := s.Spawn(context.Background(), "w", SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := s.lookup(mp.ID) // what a racing goroutine holds on to
	if p == nil {
		t.Fatal("the spawned process is not listed")
	}
	if _, err := s.Stop(context.Background(), mp.ID, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-rep.forgot:
		if id != mp.ID {
			t.Fatalf("pruned %s, want %s", id, mp.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the stopped process to be pruned")
	}
	path := s.store.path(mp.ID)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("prune left the record: %v", err)
	}

	// The racing persist comes now, after prune removed the record.
	_ = s.persist(p)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a persist after prune wrote back the record of a pruned process (stat: %v)", err)
	}

	closeFirst()
	next, err := New(cfg) // the default retention would list it, had it a record
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSup(next) })
	res := next.Recover()
	if slices.Contains(res.Ended, mp.ID) || slices.Contains(res.Lost, mp.ID) {
		t.Errorf("the next node recovered the pruned process: %+v", res)
	}
	if got, ok := next.Get(mp.ID); ok {
		t.Errorf("the next node lists the pruned process: %+v", got)
	}
}

// A process that ends before it is listed (Recover builds an ended one
// from its record, then lists it) and that prune takes in between is
// kept for a later prune, not forgotten half-way: marked pruned and its
// record gone, yet listed for good once it is listed.
func TestAProcessEndedBeforeItIsListedIsPrunedOnceListed(t *testing.T) {
	rep := forgetful{forgot: make(chan string, 4)}
	s, err := New(Config{NodeID: "n1", SocketDir: filepath.Join(testchild.ShortTempDir(t), "sock"),
		Reporter: rep, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	p := &process{sup: s, id: "proc_endedbeforelisted"}
	s.retained.add(p, time.Now().Add(-2*s.cfg.Retention)) // long past its retention

	s.prune() // before it is listed
	if p.pruned || len(rep.forgot) > 0 {
		t.Fatal("prune forgot a process that is not listed yet")
	}
	s.mu.Lock()
	s.procs[p.id] = p
	s.mu.Unlock()
	s.prune()
	if _, listed := s.Get(p.id); listed || !p.pruned || len(rep.forgot) != 1 {
		t.Fatalf("once listed: listed %v, pruned %v, forgotten %d times", listed, p.pruned, len(rep.forgot))
	}
}

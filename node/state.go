package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/corral-run/corral/api"
)

// record is what the node keeps on disk about a process, so that the next
// node on this host can re-adopt it after a restart or a crash, and can
// still show it (ps --all, get, logs) once it has ended. A record is
// written before the spawn is reported, rewritten as "ended" (Status set)
// when the process ends, and removed when the process is pruned
// (retention).
//
// Nothing in a record says where a file is: the socket, the log files and
// the FIFO are derived from the id and the node's configuration, so an
// edited record cannot make the node create, read or delete anything else.
type record struct {
	Version    int                `json:"version"`
	ID         string             `json:"id"`
	Definition api.DefinitionInfo `json:"definition"`
	PID        int                `json:"pid"`
	StartTicks uint64             `json:"startTicks"` // /proc start time, to tell a recycled pid
	StartedAt  time.Time          `json:"startedAt"`
	TCPPort    int                `json:"tcpPort,omitempty"`
	// LogMaxBytes and LogMaxFiles are its log limits, for a node that no
	// longer has its definition.
	LogMaxBytes int64             `json:"logMaxBytes,omitempty"`
	LogMaxFiles int               `json:"logMaxFiles,omitempty"`
	Metadata    json.RawMessage   `json:"metadata"`
	Env         map[string]string `json:"env,omitempty"`
	Cwd         string            `json:"cwd,omitempty"`
	Instance    string            `json:"instance,omitempty"`
	Service     string            `json:"service,omitempty"`
	Restarts    int               `json:"restarts"`
	Failures    int               `json:"failures"`
	// Connected: the child has connected (sent connected or a heartbeat),
	// so its heartbeat is monitored after a re-adoption too.
	Connected bool `json:"connected,omitempty"`

	// How it ended; Status is empty while it runs.
	Status   api.Status `json:"status,omitempty"` // stopped or crashed
	ExitCode *int       `json:"exitCode,omitempty"`
	Error    string     `json:"error,omitempty"`
	EndedAt  time.Time  `json:"endedAt,omitzero"`
	// Restart: it ended and its auto-restart is pending. A node that
	// finds this record at start (the last one died during the backoff)
	// restarts it when due, unless a record says it Replaces this one.
	Restart *recordedRestart `json:"restart,omitempty"`
	// Replaces is the id of the process this one was started in place of
	// (auto-restart).
	Replaces string `json:"replaces,omitempty"`

	// LegacyLog: spawned by a node before FIFOs (whose records were of
	// version 1), the child writes <name>-<id>.log itself.
	LegacyLog bool `json:"legacyLog,omitempty"`
}

// recordedRestart is a pending auto-restart: when it is due, and the
// lineage of the replacement.
type recordedRestart struct {
	At       time.Time `json:"at"`
	Restarts int       `json:"restarts"`
	Failures int       `json:"failures"`
}

// ended reports whether r is the record of a process that has ended.
func (r record) ended() bool { return r.Status != "" }

// recordVersion 2: no paths (they are derived), and ended records.
const recordVersion = 2

// validID reports whether id is one the node makes (newProcessID): the
// only ids it derives paths from.
func validID(id string) bool {
	if len(id) != IDLength || !strings.HasPrefix(id, "proc_") {
		return false
	}
	for i := 5; i < len(id); i++ {
		if !strings.ContainsRune(idAlphabet, rune(id[i])) {
			return false
		}
	}
	return true
}

// store writes records as one file per process. A record that replaces
// another is written to a temporary file of its own and renamed into
// place, so a node killed at any point, or two writers of one record,
// leave either the old record or a new one, never a torn one; the first
// record of a process is written in place (create), where a node killed
// midway leaves what reads as no record at all, which Recover handles. Files are fsynced in the background (one goroutine,
// batched) so a spawn does not wait for the disk; a machine crash, which
// the children do not survive either, is the only way to lose the last
// records. A write the disk refuses (full, read-only) fails at once.
type store struct {
	dir  string
	sync chan string // paths to fsync
	done chan struct{}
	once sync.Once
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create state directory: %w", err)
	}
	st := &store{dir: dir, sync: make(chan string, 1024), done: make(chan struct{})}
	go st.syncLoop()
	return st, nil
}

func (st *store) path(id string) string { return filepath.Join(st.dir, id+".json") }

// save writes r atomically.
func (st *store) save(r record) error {
	r.Version = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("cannot encode its record: %w", err)
	}
	f, err := os.CreateTemp(st.dir, "."+r.ID+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot write its record: %w", unwrapPath(err))
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), st.path(r.ID))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("cannot write its record: %w", unwrapPath(err))
	}
	st.queueSync(st.path(r.ID))
	return nil
}

// create writes the first record of a process, which a spawn waits for:
// straight to its place, a file that must not exist yet, in one write.
// That is one change to the directory where save makes two (a temporary
// file, then the rename), and on a journalling file system each costs
// as much as the write. A node killed before the write is done leaves an
// empty record (the write of a few hundred bytes to a new file is not
// torn by the death of its writer); the next node reads it as corrupt,
// as it would a missing one, and finds the child by the mark in its
// environment (orphans.go), so it is never worse off than after a node
// killed before save's rename.
func (st *store) create(r record) error {
	r.Version = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("cannot encode its record: %w", err)
	}
	path := st.path(r.ID)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return st.save(r) // not the first after all: replace it whole
	}
	if err != nil {
		return fmt.Errorf("cannot write its record: %w", unwrapPath(err))
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("cannot write its record: %w", unwrapPath(err))
	}
	st.queueSync(path)
	return nil
}

// queueSync has path fsynced in the background.
func (st *store) queueSync(path string) {
	select {
	case st.sync <- path:
	default: // the loop is behind; its next directory sync still helps
	}
}

// unwrapPath drops the *PathError around err: the message names the
// record, and the temporary file's name says nothing.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// remove deletes the record of a process that has been pruned.
func (st *store) remove(id string) error {
	if err := os.Remove(st.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot remove state of %s: %w", id, err)
	}
	return nil
}

// load reads every record. Torn or unreadable ones are returned as errors
// (one per file) and moved aside, never fatal.
func (st *store) load() ([]record, []error) {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, []error{fmt.Errorf("cannot read state directory: %w", err)}
	}
	var recs []record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp"):
			_ = os.Remove(filepath.Join(st.dir, name)) // a write the last node did not finish
			continue
		case !strings.HasSuffix(name, ".json"):
			continue
		}
		path := filepath.Join(st.dir, name)
		b, err := os.ReadFile(path)
		var r record
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err == nil && (!validID(r.ID) || r.ID+".json" != name || r.PID <= 0 || r.Definition.Name == "") {
			err = errors.New("record is incomplete")
		}
		if err == nil && r.ended() && r.Status != api.StatusStopped && r.Status != api.StatusCrashed {
			err = fmt.Errorf("record has status %q", r.Status)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("skipping corrupt state file %s (moved to %s.corrupt): %w", path, path, err))
			_ = os.Rename(path, path+".corrupt")
			continue
		}
		recs = append(recs, r)
	}
	return recs, errs
}

func (st *store) syncLoop() {
	for {
		var path string
		select {
		case path = <-st.sync:
		case <-st.done:
			return
		}
		batch := map[string]bool{path: true}
		for more := true; more; {
			select {
			case p := <-st.sync:
				batch[p] = true
			default:
				more = false
			}
		}
		for p := range batch {
			if f, err := os.Open(p); err == nil {
				_ = f.Sync()
				f.Close()
			}
		}
		if d, err := os.Open(st.dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
}

func (st *store) close() { st.once.Do(func() { close(st.done) }) }

package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/corral-run/corral/api"
)

// record is what the node keeps on disk about a running process, so that
// the next node on this host can re-adopt it after a restart or a crash.
// A record exists exactly while the process is believed to be alive.
type record struct {
	Version    int                `json:"version"`
	ID         string             `json:"id"`
	Definition api.DefinitionInfo `json:"definition"`
	PID        int                `json:"pid"`
	StartTicks uint64             `json:"startTicks"` // /proc start time, to tell a recycled pid
	StartedAt  time.Time          `json:"startedAt"`
	SocketPath string             `json:"socketPath,omitempty"`
	TCPPort    int                `json:"tcpPort,omitempty"`
	LogPath    string             `json:"logPath,omitempty"`
	Metadata   json.RawMessage    `json:"metadata"`
	Env        map[string]string  `json:"env,omitempty"`
	Cwd        string             `json:"cwd,omitempty"`
	Instance   string             `json:"instance,omitempty"`
	Service    string             `json:"service,omitempty"`
	Restarts   int                `json:"restarts"`
	Failures   int                `json:"failures"`
	// Connected: the child has connected (sent connected or a heartbeat),
	// so its heartbeat is monitored after a re-adoption too.
	Connected bool `json:"connected,omitempty"`
}

const recordVersion = 1

// store writes records as one file per process: written to a temporary
// file and renamed into place, so a node killed at any point leaves either
// the old record or the new one, never a torn one. Files are fsynced in the
// background (one goroutine, batched) so a spawn does not wait for the
// disk; a machine crash, which the children do not survive either, is the
// only way to lose the last records.
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
		return fmt.Errorf("cannot encode state of %s: %w", r.ID, err)
	}
	tmp := filepath.Join(st.dir, "."+r.ID+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("cannot write state of %s: %w", r.ID, err)
	}
	if err := os.Rename(tmp, st.path(r.ID)); err != nil {
		return fmt.Errorf("cannot write state of %s: %w", r.ID, err)
	}
	select {
	case st.sync <- st.path(r.ID):
	default: // the loop is behind; its next directory sync still helps
	}
	return nil
}

// remove deletes the record of a process that has ended.
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
		if err == nil && (r.ID+".json" != name || r.PID <= 0 || r.Definition.Name == "") {
			err = errors.New("record is incomplete")
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

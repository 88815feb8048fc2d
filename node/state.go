package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

// store writes records as one file per process. The first record of a
// process is written in one write (create), to a new file. A record that
// replaces another is written over it in one write from its start (save),
// padded with spaces to the old length, and read back as the first JSON
// value in the file, when both fit in one page (inPlaceMax): a write
// within a page the file already holds is neither torn by the death of
// its writer nor cut short by a full disk, and two writers of one record
// (the write lock of the file orders them) leave one whole record at the
// start, whatever the other left after it. A longer record is written to
// a temporary file renamed over the old one (replace): a write of several
// pages may be cut between them. A node killed during create leaves what
// reads as no record at all, which Recover handles. Writing over in place
// allocates and frees no inode, where a temporary file renamed over the
// record did both at every change of status (on ext4 that has freed many
// lately, an allocation costs a hundred times a rename).
//
// Files are fsynced in the background, at most one round per syncEvery,
// so a spawn does not wait for the disk: a machine crash, which the
// children do not survive either, is the only way to lose the last
// records. Spaced rounds make a burst of changes cost one fsync per file
// and round rather than one per change. A write the disk refuses (full,
// read-only) fails at once.
type store struct {
	dir  string
	done chan struct{}
	once sync.Once
	wake chan struct{} // a path was queued (capacity 1)
	left chan struct{} // closed when syncLoop has returned

	mu      sync.Mutex
	pending map[string]struct{} // paths to fsync in the next round
}

// syncEvery spaces the store's fsync rounds; ext4 commits its journal
// every 5 s by default, so this shortens that window, not the spawn.
const syncEvery = time.Second

// maxPendingSyncs bounds the paths waiting for a round; past it, the
// round's directory sync still covers the new entries' names.
const maxPendingSyncs = 4096

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create state directory: %w", err)
	}
	st := &store{dir: dir, done: make(chan struct{}), wake: make(chan struct{}, 1), left: make(chan struct{}),
		pending: map[string]struct{}{}}
	go st.syncLoop()
	return st, nil
}

func (st *store) path(id string) string { return filepath.Join(st.dir, id+".json") }

// inPlaceMax is the most a record and the file it is written over may
// hold for save to write over it (see store): a page.
const inPlaceMax = 4096

// save writes r over its record (see store), or creates it.
func (st *store) save(r record) error {
	r.Version = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("cannot encode its record: %w", err)
	}
	path := st.path(r.ID)
	err = writeOver(path, b)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return st.create(r)
	case errors.Is(err, errTooLong):
		err = replace(st.dir, r.ID, path, b)
	}
	if err != nil {
		return fmt.Errorf("cannot write its record: %w", unwrapPath(err))
	}
	st.queueSync(path)
	return nil
}

// errTooLong: the record, or the file it would be written over, is past
// inPlaceMax.
var errTooLong = errors.New("too long to write in place")

// writeOver writes b and a newline over the regular file at path, from its
// start and in one write, padded with spaces to what the file held (see
// store); errTooLong when either is past inPlaceMax, and then nothing is
// written.
func writeOver(path string, b []byte) error {
	if len(b)+1 > inPlaceMax {
		return errTooLong
	}
	// A FIFO in its place does not hold it up; a symbolic link is not
	// followed (the state directory holds records, nothing else).
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case fi.Size() > inPlaceMax:
		return errTooLong
	}
	b = append(b, '\n')
	if pad := int(fi.Size()) - len(b); pad > 0 {
		b = append(b[:len(b)-1], strings.Repeat(" ", pad)...)
		b = append(b, '\n')
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Close()
}

// replace writes b to a temporary file renamed over path: the old record
// or the new one, whatever happens.
func replace(dir, id, path string, b []byte) error {
	f, err := os.CreateTemp(dir, "."+id+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// create writes the first record of a process, which a spawn waits for,
// in one write, to a new file that must not exist yet (reserve, fill).
func (st *store) create(r record) error {
	f, err := st.reserve(r.ID)
	if errors.Is(err, fs.ErrExist) {
		return st.save(r) // not the first after all: replace it whole
	}
	if err != nil {
		return fmt.Errorf("cannot write its record: %w", unwrapPath(err))
	}
	return st.fill(f, r)
}

// reserve creates the empty record file of process id, which must not
// exist yet. A spawn reserves its record while the child starts, so that
// the file system's work (a new inode, which costs most of a spawn's time
// on a file system that freed many lately) is done meanwhile; fill then
// writes the record into it.
func (st *store) reserve(id string) (*os.File, error) {
	return os.OpenFile(st.path(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
}

// fill writes r, the first record of its process, in one write into f,
// the file reserve made for it, and closes f; on failure the file is
// removed. A node killed between reserve and the end of the write leaves
// an empty record, with or without a child: the next node removes it
// (load), and finds the child, if there is one, by the mark in its
// environment (orphans.go).
func (st *store) fill(f *os.File, r record) error {
	r.Version = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		st.discard(f)
		return fmt.Errorf("cannot encode its record: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("cannot write its record: %w", unwrapPath(err))
	}
	st.queueSync(f.Name())
	return nil
}

// discard closes and removes a reserved record file that will not be
// filled: its process did not start.
func (st *store) discard(f *os.File) {
	f.Close()
	_ = os.Remove(f.Name())
}

// queueSync has path fsynced in the background.
func (st *store) queueSync(path string) {
	st.mu.Lock()
	if len(st.pending) < maxPendingSyncs {
		st.pending[path] = struct{}{}
	}
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// unwrapPath drops the *PathError around err: the caller's message says
// whose record it is, which the path only repeats.
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
	if err := os.Remove(st.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot remove state of %s: %w", id, err)
	}
	return nil
}

// emptyRecord is an empty record file load removed: not corrupt, but
// worth a word in the log.
type emptyRecord struct{ path string }

func (e emptyRecord) Error() string {
	return fmt.Sprintf("removed the empty record %s: a spawn the last node did not finish, or a record lost in a host crash", e.path)
}

// load reads every record. Torn or unreadable ones are returned as errors
// (one per file) and moved aside, never fatal; empty ones are removed and
// returned as emptyRecord.
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
		case !e.Type().IsRegular(): // a FIFO would hold the read up forever
			errs = append(errs, fmt.Errorf("skipping %s: not a regular file", filepath.Join(st.dir, name)))
			continue
		}
		path := filepath.Join(st.dir, name)
		b, err := os.ReadFile(path)
		if err == nil && len(b) == 0 {
			// A spawn the last node did not finish (reserve, fill), or a
			// record the host lost in a crash before it was synced: its
			// child, if it runs, is found by its mark (orphans.go).
			_ = os.Remove(path)
			errs = append(errs, emptyRecord{path})
			continue
		}
		var r record
		if err == nil {
			err = decodeRecord(b, &r)
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

// syncLoop syncs what was queued, a round at a time and at most one per
// syncEvery; a last round when the store closes.
func (st *store) syncLoop() {
	defer close(st.left)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-st.wake:
		case <-st.done:
			st.syncRound()
			return
		}
		select {
		case <-t.C: // the last round was at least syncEvery ago
		case <-st.done:
			st.syncRound()
			return
		}
		st.syncRound()
		t.Reset(syncEvery)
	}
}

// syncRound fsyncs the queued paths, then the directory.
func (st *store) syncRound() {
	st.mu.Lock()
	batch := st.pending
	st.pending = make(map[string]struct{}, len(batch))
	st.mu.Unlock()
	if len(batch) == 0 {
		return
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

// close ends the loop after a last round, and waits for it.
func (st *store) close() {
	st.once.Do(func() { close(st.done) })
	<-st.left
}

// decodeRecord reads the first JSON value of a record file (see store):
// what follows it, spaces or the tail of a longer record it was written
// over, is not part of it.
func decodeRecord(b []byte, r *record) error {
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(r); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("record is empty")
		}
		return err
	}
	return nil
}

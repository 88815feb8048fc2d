package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// spares keeps a few files of one kind made ahead of need (the FIFOs of
// children's output, the records of processes), in a directory of their
// own beside where they go: a spawn moves one into place by a rename
// instead of making it. And a file whose use is over, and that nobody can
// reach any more (a FIFO whose every writer has closed it), may be moved
// back among them rather than deleted.
//
// Why: making a file allocates an inode, and on this machine's ext4 that
// costs 0.2–0.7 ms of CPU once files were deleted in the last minutes (the
// allocator steps over recently freed inodes), against 18 µs for a
// rename. A spawn made two (its FIFO and its record), and a process's end
// freed its FIFO. Made ahead by a goroutine of their own, they cost the same
// CPU, off the spawn's path; recycled, they cost nothing and free nothing.
//
// At most keep are made ahead, and at most max are kept in all: the rest
// are deleted. A spare dir left by the node before is taken over.
type spares struct {
	dir    string
	create func(path string) error // a new spare at path
	kind   fs.FileMode             // what a spare is (fs.ModeNamedPipe; 0: a regular file)
	keep   int
	max    int

	mu    sync.Mutex
	names []string // in dir, ready
	seq   uint64   // for the next name
	off   bool     // renames that refuse to replace are not supported here

	wake chan struct{} // taken from: make more (capacity 1)
	done chan struct{}
	left chan struct{} // closed when run has returned
	once sync.Once
}

// Bounds of spares.
const (
	sparesKeep = 16
	sparesMax  = 64
)

// newSpares takes over dir (made when missing) and starts making spares.
// A dir it cannot use leaves it off: everything is made in place then.
func newSpares(dir string, kind fs.FileMode, create func(path string) error) *spares {
	sp := &spares{dir: dir, create: create, kind: kind, keep: sparesKeep, max: sparesMax,
		wake: make(chan struct{}, 1), done: make(chan struct{}), left: make(chan struct{})}
	if !sparesWork {
		sp.off = true
		close(sp.left)
		return sp
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		sp.off = true
		close(sp.left)
		return sp
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		n, err := strconv.ParseUint(e.Name(), 36, 64)
		if err != nil || e.Type() != kind || len(sp.names) >= sp.max {
			_ = os.RemoveAll(path) // not one of ours, or one too many
			continue
		}
		sp.names = append(sp.names, path)
		sp.seq = max(sp.seq, n+1)
	}
	go sp.run()
	sp.poke()
	return sp
}

func (sp *spares) poke() {
	select {
	case sp.wake <- struct{}{}:
	default:
	}
}

// take moves a spare to dst, which must not exist, and reports whether it
// did; when it did not, the caller makes dst itself. ErrExist: dst exists.
func (sp *spares) take(dst string) (bool, error) {
	if sp == nil {
		return false, nil
	}
	for {
		sp.mu.Lock()
		if sp.off || len(sp.names) == 0 {
			sp.mu.Unlock()
			sp.poke()
			return false, nil
		}
		src := sp.names[len(sp.names)-1]
		sp.names = sp.names[:len(sp.names)-1]
		sp.mu.Unlock()
		sp.poke()
		err := renameNoReplace(src, dst)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EEXIST):
			sp.putBack(src)
			return false, fs.ErrExist
		case errors.Is(err, unix.ENOENT):
			continue // gone meanwhile: the next one
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EXDEV):
			sp.mu.Lock()
			sp.off = true // this file system cannot: make in place from now on
			sp.mu.Unlock()
			_ = os.Remove(src)
			return false, nil
		default:
			sp.putBack(src)
			return false, nil
		}
	}
}

func (sp *spares) putBack(path string) {
	sp.mu.Lock()
	sp.names = append(sp.names, path)
	sp.mu.Unlock()
}

// give moves path among the spares, or deletes it when there are enough.
// The caller has made sure nobody uses it any more.
func (sp *spares) give(path string) error {
	if sp == nil {
		return removeIfThere(path)
	}
	sp.mu.Lock()
	if sp.off || len(sp.names) >= sp.max {
		sp.mu.Unlock()
		return removeIfThere(path)
	}
	dst := sp.nextName()
	sp.mu.Unlock()
	if err := os.Rename(path, dst); err != nil {
		return removeIfThere(path)
	}
	sp.putBack(dst)
	return nil
}

// removeIfThere removes path; that it is not there is no error.
func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// nextName is a new name in dir (sp.mu held).
func (sp *spares) nextName() string {
	n := sp.seq
	sp.seq++
	return filepath.Join(sp.dir, strconv.FormatUint(n, 36))
}

// run makes spares up to keep whenever one was taken, until close.
func (sp *spares) run() {
	defer close(sp.left)
	for {
		select {
		case <-sp.wake:
		case <-sp.done:
			return
		}
		for {
			sp.mu.Lock()
			if sp.off || len(sp.names) >= sp.keep {
				sp.mu.Unlock()
				break
			}
			path := sp.nextName()
			sp.mu.Unlock()
			if err := sp.create(path); err != nil {
				break // the disk refuses: spawns make their own, and say why
			}
			sp.putBack(path)
			select {
			case <-sp.done:
				return
			default:
			}
		}
	}
}

// close stops making spares, and waits; those made stay for the next node.
func (sp *spares) close() {
	if sp == nil {
		return
	}
	sp.once.Do(func() { close(sp.done) })
	<-sp.left
}

// makeFIFOFile and makeEmptyFile make a spare of each kind.
func makeFIFOFile(path string) error { return unix.Mkfifo(path, 0o600) }

func makeEmptyFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

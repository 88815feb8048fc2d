package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockName is the file in data_dir that one node holds locked for its
// life: two nodes on one data_dir would share a JetStream store and
// re-adopt each other's children.
const lockName = "corrald.lock"

// ErrDataDirInUse is matched by the error of Start when another node
// holds the data directory.
var ErrDataDirInUse = errors.New("data_dir in use")

// dataDirLock is the held lock of a data directory.
type dataDirLock struct{ f *os.File }

// lockDataDir creates dir if needed, proves it writable (a full disk or a
// read-only file system fails here, with a message that says so, rather
// than somewhere in the JetStream store), and locks it for this process.
func lockDataDir(dir string) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot use data_dir %s: %w (set node.data_dir to a directory corrald may write)", dir, plainErr(err))
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot use data_dir %s: %w (set node.data_dir to a directory corrald may write)", dir, plainErr(err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		holder := strings.TrimSpace(string(b[:n]))
		if _, perr := strconv.Atoi(holder); perr != nil {
			holder = "?"
		}
		return nil, fmt.Errorf("%w: data_dir %s is in use by corrald pid %s (one node per data_dir: stop it, or give this node another node.data_dir)", ErrDataDirInUse, dir, holder)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot use data_dir %s: %w", dir, plainErr(err))
		}
	}
	return &dataDirLock{f: f}, nil
}

// release lets the next node have the directory.
func (l *dataDirLock) release() {
	if l != nil && l.f != nil {
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}

// plainErr turns a *PathError into its cause with a word on what it means
// for the operator: "no space left on device: the disk is full".
func plainErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: the disk is full", err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: the file system is read-only", err)
	}
	return err
}

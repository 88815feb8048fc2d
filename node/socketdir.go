package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The socket directory is the node's own: it creates it, mode 0700, and
// opens it to 0711 (traverse, not list) once a definition runs its
// children as another user (process.go listen). A directory it did not
// create — another owner, or a mode that lets others list it or create
// files in it (/tmp, 1777) — is refused rather than changed: chmodding
// someone else's directory would break whatever else lives there, and a
// directory others can write to lets them put files where the children
// connect.

// ownSocketDir creates dir (mode 0700) when it does not exist, and checks
// that an existing one is a directory of the node's user with mode 0700
// or 0711. It never changes an existing directory.
func ownSocketDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("cannot create socket directory %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("cannot create socket directory %s: %w", dir, err)
		}
		fi, err = os.Lstat(dir) // what is there now, ours or not
	}
	if err != nil {
		return fmt.Errorf("cannot use socket directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cannot use socket directory %s: it is not a directory (%s); set node.socket_dir to a path that does not exist, and corrald creates it", dir, fileKind(fi.Mode()))
	}
	uid, euid := fileOwner(fi), os.Geteuid()
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSticky | fs.ModeSetuid | fs.ModeSetgid)
	if uid != euid || (mode != 0o700 && mode != 0o711) {
		return fmt.Errorf("cannot use socket directory %s: corrald did not create it (owner uid %d, mode %s; corrald's own is uid %d, mode 0700): "+
			"set node.socket_dir to a path that does not exist, and corrald creates it, or remove this directory",
			dir, uid, octalMode(mode), euid)
	}
	return nil
}

// fileOwner is the uid that owns the file fi describes (-1 when the OS
// does not say).
func fileOwner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// octalMode writes the permission bits of m as chmod takes them: 0700,
// 1777.
func octalMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	return fmt.Sprintf("%04o", v)
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsRegular():
		return "a file"
	}
	return "not a directory"
}

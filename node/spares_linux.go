package node

import "golang.org/x/sys/unix"

// renameNoReplace renames src to dst unless dst exists (EEXIST).
func renameNoReplace(src, dst string) error {
	return unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
}

// sparesWork: renameat2 can take spares here.
const sparesWork = true

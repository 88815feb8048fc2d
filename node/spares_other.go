//go:build !linux

package node

import "golang.org/x/sys/unix"

// renameNoReplace is not supported here: spares are off (ENOSYS).
func renameNoReplace(src, dst string) error { return unix.ENOSYS }

// sparesWork: no spares here; everything is made in place.
const sparesWork = false

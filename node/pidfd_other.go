//go:build !linux

package node

import (
	"errors"
	"os"
)

// openPidfd: re-adoption needs Linux's pidfd to watch a process that is not
// the node's child.
func openPidfd(pid int) (*os.File, error) {
	return nil, errors.New("cannot re-adopt a process on this OS: it needs Linux pidfd")
}

func waitPidfd(*os.File) bool { return false }

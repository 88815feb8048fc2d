package node

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openPidfd opens a pidfd for a process that is not our child, so its exit
// can be waited for through the runtime's poller, without polling and
// without a blocked thread per process.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("cannot watch pid %d: pidfd_open: %w", pid, err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), nil
}

// waitPidfd returns true once the process has exited (its pidfd is
// readable), or false when the pidfd was closed first (the node let go of
// the process); then it closes the pidfd.
func waitPidfd(f *os.File) bool {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err != nil || n > 0 // done when readable; else wait for the poller
	})
	return err == nil
}

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
		return exitedNow(fd, unix.Poll) // else wait for the poller
	})
	return err == nil
}

// exitedNow reports whether the process of the pidfd fd has exited (the
// pidfd is readable), by a poll that does not wait. A poll that a signal
// interrupted is made again: the Go runtime's own preemption signals
// interrupt it now and then (EINTR), and taken for an exit, that had the
// node report a live re-adopted child ended and kill its group. Any other
// failure is taken for an exit, as it cannot be waited on.
func exitedNow(fd uintptr, poll func([]unix.PollFd, int) (int, error)) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n > 0
	}
}

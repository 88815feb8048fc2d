//go:build linux

package node

import (
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// A poll that a signal interrupts says nothing about the process: it is
// made again, and a live process is not taken for ended (it used to be,
// and the node then killed a healthy re-adopted child's group).
func TestAnInterruptedPollIsNoExit(t *testing.T) {
	calls := 0
	interrupted := func(fds []unix.PollFd, timeout int) (int, error) {
		calls++
		if calls <= 2 {
			return -1, unix.EINTR
		}
		return 0, nil
	}
	if exitedNow(0, interrupted) {
		t.Fatal("an interrupted poll was taken for an exit")
	}
	if calls != 3 {
		t.Fatalf("polled %d times, want 3 (twice interrupted, then an answer)", calls)
	}

	// The real thing: a live process's pidfd is not readable; once the
	// process has ended, it is.
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f, err := openPidfd(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	defer f.Close()
	if exitedNow(f.Fd(), unix.Poll) {
		t.Fatal("a live process was taken for ended")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !exitedNow(f.Fd(), unix.Poll) {
		t.Fatal("an ended process was not seen ended")
	}
}

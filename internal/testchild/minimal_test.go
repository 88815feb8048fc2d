package testchild_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
)

// The minimal child runs, waits in pause(2), and ends by the signal it is
// sent.
func TestMinimalChildWaitsForASignal(t *testing.T) {
	path, err := testchild.WriteMinimalChild(t.TempDir())
	if err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	await.Until(t, 10*time.Second, "the child to wait in pause", func() bool {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return exe == path && strings.Contains(string(stat), ") S ")
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("the child ended with %v, want killed by SIGTERM", err)
	}
}

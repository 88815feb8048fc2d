package testchild_test

import (
	"github.com/corral-run/corral/internal/testchild"
	"os/exec"
	"testing"
	"time"
)

func TestMinimalChildWaitsForASignal(t *testing.T) {
	path, err := testchild.WriteMinimalChild(t.TempDir())
	if err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("it ended by itself: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cmd.Process.Kill()
	<-done
	t.Log(cmd.ProcessState)
}

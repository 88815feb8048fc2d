package await_test

import (
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
)

func TestPoll(t *testing.T) {
	n := 0
	if !await.Poll(time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Poll stopped after %d calls, want 3", n)
	}
	start := time.Now()
	if await.Poll(30*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a condition that never holds reported true")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("Poll gave up after %v, before its deadline", d)
	}
}

package node_test

import (
	"io"
	"log/slog"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// restartAtOnce defines "w" restarting at once, without limit, and
// spawns it.
func restartAtOnce(tb testing.TB, h *harness) api.ManagedProcess {
	tb.Helper()
	h.define(tb, "w", role(testchild.RoleSleep), func(d *node.Definition) {
		d.AutoRestart, d.RestartDelay, d.MaxRestarts = true, node.RestartAtOnce, -1
	})
	return h.spawn(tb, "w", node.SpawnOptions{})
}

// killAndWaitReplacement kills p with SIGKILL and returns its replacement
// once process.restarted named it.
func killAndWaitReplacement(tb testing.TB, h *harness, p api.ManagedProcess) api.ManagedProcess {
	tb.Helper()
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	re := h.rec.WaitFor(tb, 10*time.Second, func(r node.Report) bool {
		return r.Kind == node.KindRestarted && r.Payload.(api.Restarted).OldProcessID == p.ID
	}).Payload.(api.Restarted)
	np, ok := h.sup.Get(re.NewProcessID)
	if !ok {
		tb.Fatalf("the replacement %s is not listed", re.NewProcessID)
	}
	return np
}

// With restart_delay "0s" a crash is followed by a new process at once,
// and the restarts are still counted.
func TestRestartAtOnce(t *testing.T) {
	h := newHarness(t, "unix")
	p := restartAtOnce(t, h)
	for i := 1; i <= 3; i++ {
		np := killAndWaitReplacement(t, h, p)
		if np.Status != api.StatusRunning || np.Restarts != i || np.PID == p.PID {
			t.Fatalf("replacement %d: %+v", i, np)
		}
		p = np
	}
}

// BenchmarkRestartAtOnce is the time from kill -9 of a child (restart_delay
// "0s") to process.restarted of its replacement, which is running by then.
func BenchmarkRestartAtOnce(b *testing.B) {
	h := newHarnessWith(b, node.Config{Transport: "unix", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	p := restartAtOnce(b, h)
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		p = killAndWaitReplacement(b, h, p)
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
}

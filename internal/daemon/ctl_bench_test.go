package daemon_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/testchild"
)

// BenchmarkCtlPs runs `corralctl ps` as a user does, a whole process each
// time (built as make build builds it), against the bench node with 20
// processes, and reports its wall time: start, connect, ask every node,
// print, exit. CORRAL_BENCH_CTL runs that corralctl instead (to compare
// builds in one run).
func BenchmarkCtlPs(b *testing.B) {
	bin := os.Getenv("CORRAL_BENCH_CTL")
	if bin == "" {
		bin = filepath.Join(testchild.ShortTempDir(b), "corralctl")
		build := exec.Command("go", "build", "-o", bin, "github.com/corral-run/corral/cmd/ctl")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("cannot build corralctl: %v\n%s", err, out)
		}
	}
	d, nc := benchNodeWith(b, true, false) // with JetStream, as by default: the registry says which nodes to wait for
	ctl := control.New(nc)
	ctx := context.Background()
	const processes = 20
	for range processes {
		if _, err := ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { _, _ = ctl.StopAll(ctx, "sleeper", "SIGKILL") })
	run := func() time.Duration {
		cmd := exec.Command(bin, "--server", d.ClientURL(), "ps")
		t0 := time.Now()
		out, err := cmd.Output()
		took := time.Since(t0)
		if err != nil {
			b.Fatalf("corralctl ps: %v\n%s", err, out)
		}
		return took
	}
	run() // the first run reads the binary from disk
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		durs = append(durs, run())
	}
	b.StopTimer()
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(durs[len(durs)*9/10].Microseconds())/1000, "p90-ms")
	b.ReportMetric(processes, "processes")
}

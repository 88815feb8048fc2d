package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/testchild"
)

// BenchmarkIdleChildren supervises many idle children (examples/idle-worker:
// a heartbeat every 5 s) with node stats sampling on, and reports the
// node's RSS and CPU over a quiet window. The node and its embedded NATS
// server run in this process; the children are separate processes.
// CORRAL_BENCH_CHILDREN (default 1000) and CORRAL_BENCH_SECONDS (default
// 60) size it; CORRAL_BENCH_CPUPROFILE writes a CPU profile of the window,
// CORRAL_BENCH_MEMPROFILE a heap profile at its end; JetStream is on, as
// by default, unless CORRAL_BENCH_JETSTREAM=0. Nobody listens to the
// heartbeats and stats, so the node does not send them, but for the
// per-process stats (process.<name>.stats) while JetStream is on: the
// event stream's subjects take them in, which counts as interest, though
// it refuses to store them; with
// CORRAL_BENCH_WATCH=1 a subscriber of process.> (as corralctl events or
// the dashboard) takes them all.
func BenchmarkIdleChildren(b *testing.B) {
	children := envInt("CORRAL_BENCH_CHILDREN", 1000)
	window := time.Duration(envInt("CORRAL_BENCH_SECONDS", 60)) * time.Second
	dir := testchild.ShortTempDir(b)
	worker := filepath.Join(dir, "idle-worker")
	build := exec.Command("go", "build", "-o", worker, "github.com/corral-run/corral/examples/idle-worker")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("cannot build idle-worker: %v\n%s", err, out)
	}
	toml := fmt.Sprintf(`
[node]
id = "bench"
data_dir = %q
stats_interval = "5s"
[nats]
listen = "127.0.0.1:0"
jetstream = %t
[processes.idle]
command = %q
heartbeat_timeout = "30s"
stop_timeout = "5s"
env = { IDLE_HEARTBEAT = "5s" }
`, dir, envInt("CORRAL_BENCH_JETSTREAM", 1) == 1, worker)
	d := startDaemon(b, parseConfig(b, toml), quiet)
	nc, err := nats.Connect(d.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	connected := make(chan struct{}, children)
	if _, err := nc.Subscribe(bus.SubjectConnected, func(*nats.Msg) { connected <- struct{}{} }); err != nil {
		b.Fatal(err)
	}
	watched := 0
	if os.Getenv("CORRAL_BENCH_WATCH") == "1" {
		watched = 1
		if _, err := nc.Subscribe(bus.SubjectAll, func(*nats.Msg) {}); err != nil {
			b.Fatal(err)
		}
	}
	_ = nc.Flush()
	ctl := control.New(nc)
	start := time.Now()
	for i := 0; i < children; i++ {
		if _, err := ctl.Spawn(context.Background(), "", "idle", api.SpawnRequest{}); err != nil {
			b.Fatalf("spawn %d: %v", i, err)
		}
	}
	spawnTime := time.Since(start)
	for i := 0; i < children; i++ {
		select {
		case <-connected:
		case <-time.After(2 * time.Minute):
			b.Fatalf("only %d of %d children connected", i, children)
		}
	}
	b.ResetTimer()
	if path := os.Getenv("CORRAL_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(window) // the measured quiet window
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	b.StopTimer()
	list, err := ctl.List(context.Background(), api.ListRequest{})
	if err != nil || len(list.Processes) != children {
		b.Fatalf("%d processes listed, want %d (%v)", len(list.Processes), children, err)
	}
	b.ReportMetric(float64(children), "children")
	b.ReportMetric(float64(watched), "watched")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	b.ReportMetric(rssMiB(), "node-RSS-MiB")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(ms.StackInuse)/(1<<20), "stack-MiB")
	if path := os.Getenv("CORRAL_BENCH_MEMPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	b.ReportMetric(float64(cpu)/float64(wall)*100, "node-CPU-%")
	b.ReportMetric(spawnTime.Seconds(), "spawn-all-s")
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMiB is this process's resident set in MiB.
func rssMiB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

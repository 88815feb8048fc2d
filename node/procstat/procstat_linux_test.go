package procstat

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/internal/await"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/process"
)

// startGroup starts a command in its own process group, as the node does,
// and kills the whole group when the test ends.
func startGroup(tb testing.TB, name string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("cannot start %s: %v", name, err)
	}
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

// comm is a process's command name, "" once it is gone.
func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return string(bytes.TrimSpace(b))
}

// vmRSS is /proc/self/status's VmRSS in bytes.
func vmRSS(t *testing.T) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// burn spins until this process has used d more CPU time.
func burn(d time.Duration) {
	for end := cpuTime() + d; cpuTime() < end; {
		for i := 0; i < 1e5; i++ {
			_ = math.Sqrt(float64(i))
		}
	}
}

func TestSampleSelf(t *testing.T) {
	burn(50 * time.Millisecond) // CPU times count in 10 ms ticks
	s := NewSampler()
	pid := os.Getpid()
	got, ok := s.Sample([]Root{{PID: pid}})[pid]
	if !ok {
		t.Fatal("no result for the test process")
	}
	if got.PIDs[0] != pid {
		t.Errorf("PIDs = %v, want the root first", got.PIDs)
	}
	want := vmRSS(t)
	if got.RSS < want/2 || got.RSS > want*3/2 {
		t.Errorf("RSS = %d, want within 50%% of VmRSS %d", got.RSS, want)
	}
	created, err := process.NewProcess(int32(pid))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := created.CreateTime()
	if err != nil {
		t.Fatal(err)
	}
	if since := time.Since(time.UnixMilli(ms)).Seconds(); got.Uptime <= 0 || math.Abs(got.Uptime-since) > 1.5 {
		t.Errorf("Uptime = %v s, want > 0 and about %v s (gopsutil CreateTime)", got.Uptime, since)
	}
	if got.CPUPercent <= 0 || got.UserMicros+got.SystemMicros <= 0 {
		t.Errorf("first sample CPU = %v%% (%v+%v µs), want the lifetime use, > 0", got.CPUPercent, got.UserMicros, got.SystemMicros)
	}
	st := got.Stats()
	if st.Memory.RSS != float64(got.RSS) || st.CPU.Percent != got.CPUPercent || st.CPU.User != got.UserMicros ||
		st.CPU.System != got.SystemMicros || st.Uptime != got.Uptime || st.Memory.HeapUsed != 0 {
		t.Errorf("Stats() = %+v, does not carry %+v", st, got)
	}
}

func TestSampleTree(t *testing.T) {
	cmd := startGroup(t, "sh", "-c", "sleep 30 & sleep 30 & wait")
	root := cmd.Process.Pid
	s := NewSampler()
	var tree TreeStats
	await.Until(t, 10*time.Second, "sh and two sleeps", func() bool {
		tree = s.Sample([]Root{{PID: root}})[root]
		if len(tree.PIDs) != 3 {
			return false
		}
		for _, pid := range tree.PIDs[1:] {
			if comm(pid) != "sleep" { // forked, but not yet exec'd
				return false
			}
		}
		return true
	})
	tree = s.Sample([]Root{{PID: root}})[root]
	if tree.PIDs[0] != root {
		t.Errorf("PIDs = %v, want the root %d first", tree.PIDs, root)
	}

	// The same tree and the same memory as gopsutil sees one process at a
	// time. A process that has just exec'd may still be touching pages
	// between the two looks, so they are taken again until they agree.
	p, err := process.NewProcess(int32(root))
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	var rss uint64
	agree := await.Poll(5*time.Second, func() bool {
		tree = s.Sample([]Root{{PID: root}})[root]
		children, err := p.Children()
		if err != nil {
			t.Fatal(err)
		}
		want, rss = []int{root}, 0
		for _, q := range append(children, p) {
			if q != p {
				want = append(want, int(q.Pid))
			}
			mem, err := q.MemoryInfo()
			if err != nil {
				t.Fatal(err)
			}
			rss += mem.RSS
		}
		return tree.RSS == rss
	})
	got := slices.Clone(tree.PIDs)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("PIDs = %v, want %v", tree.PIDs, want)
	}
	if !agree {
		t.Errorf("RSS = %d, want the sum over the tree %d", tree.RSS, rss)
	}
}

// A grandchild whose parent exited is re-parented away from the tree but
// stays in the root's process group, so it is still counted.
func TestSampleKeepsProcessGroup(t *testing.T) {
	cmd := startGroup(t, "sh", "-c", "(sleep 31 &); exec sleep 32")
	root := cmd.Process.Pid
	s := NewSampler()
	await.Until(t, 10*time.Second, "the root and its orphaned grandchild", func() bool {
		tree := s.Sample([]Root{{PID: root}})[root]
		return len(tree.PIDs) == 2 && comm(tree.PIDs[0]) == "sleep" && comm(tree.PIDs[1]) == "sleep"
	})
	tree := s.Sample([]Root{{PID: root}})[root]
	orphan, err := process.NewProcess(int32(tree.PIDs[1]))
	if err != nil {
		t.Fatal(err)
	}
	if ppid, _ := orphan.Ppid(); int(ppid) == root {
		t.Fatalf("grandchild %d is the root's child; want it re-parented", orphan.Pid)
	}
}

func TestSampleCPU(t *testing.T) {
	cmd := startGroup(t, "sh", "-c", "while :; do :; done")
	root := cmd.Process.Pid
	s := NewSampler()
	if _, ok := s.Sample([]Root{{PID: root}})[root]; !ok {
		t.Fatal("no first sample")
	}
	time.Sleep(300 * time.Millisecond) // the interval measured, not a wait for an event
	got, ok := s.Sample([]Root{{PID: root}})[root]
	if !ok {
		t.Fatal("no second sample")
	}
	if got.CPUPercent < 50 || got.CPUPercent > 250 {
		t.Errorf("CPUPercent = %v, want a busy loop's 50..250", got.CPUPercent)
	}
	// The delta covers ~300 ms, not the lifetime.
	if used := got.UserMicros + got.SystemMicros; used <= 0 || used > 2e6 {
		t.Errorf("user+system = %v µs, want the use over ~300 ms", used)
	}
}

func TestSampleRecycledPID(t *testing.T) {
	pid := os.Getpid()
	start, err := StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSampler()
	if _, ok := s.Sample([]Root{{PID: pid, StartTime: start + 1}})[pid]; ok {
		t.Error("a root whose start time differs gave a result; want none (recycled pid)")
	}
	if _, ok := s.Sample([]Root{{PID: pid, StartTime: start}})[pid]; !ok {
		t.Error("a root whose start time matches gave no result")
	}

	// State left from another process on the same pid is not used as a baseline.
	s.prev[pid] = previous{start: start + 1, user: 1e15, system: 1e15, at: time.Now()}
	got := s.Sample([]Root{{PID: pid}})[pid]
	if got.UserMicros <= 0 || got.Uptime <= 0 {
		t.Errorf("after a pid was recycled: %+v, want a first sample over the lifetime", got)
	}
}

func TestSampleMissingRoots(t *testing.T) {
	cmd := startGroup(t, "sleep", "30")
	gone := cmd.Process.Pid
	s := NewSampler()
	if _, ok := s.Sample([]Root{{PID: gone}})[gone]; !ok {
		t.Fatal("no result for a running child")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	got := s.Sample([]Root{{PID: gone}, {PID: 0}, {PID: -1}, {PID: os.Getpid()}})
	if len(got) != 1 {
		t.Errorf("Sample = %v, want only the test process", got)
	}
	if _, ok := s.prev[gone]; ok {
		t.Error("state kept for a root that no longer exists")
	}
}

func TestForget(t *testing.T) {
	burn(30 * time.Millisecond)
	pid := os.Getpid()
	s := NewSampler()
	first := s.Sample([]Root{{PID: pid}})[pid]
	if first.UserMicros+first.SystemMicros <= 0 {
		t.Fatalf("first sample: no CPU time after burning 30 ms: %+v", first)
	}
	s.Forget(pid)
	if _, ok := s.prev[pid]; ok {
		t.Fatal("Forget kept the root's state")
	}
	again := s.Sample([]Root{{PID: pid}})[pid]
	if a, b := again.UserMicros+again.SystemMicros, first.UserMicros+first.SystemMicros; a < b {
		t.Errorf("after Forget: %v µs, want the lifetime use again (>= %v µs)", a, b)
	}
	s.Forget(12345678) // unknown: no-op
}

func TestStartTime(t *testing.T) {
	pid := os.Getpid()
	ticks, err := StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := host.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		t.Fatal(err)
	}
	created, err := p.CreateTime()
	if err != nil {
		t.Fatal(err)
	}
	ms := float64(boot)*1000 + float64(ticks)/clockTicks*1000
	if math.Abs(ms-float64(created)) > 1000 {
		t.Errorf("StartTime = %d ticks = %v ms since epoch; gopsutil CreateTime = %d ms", ticks, ms, created)
	}
	if _, err := StartTime(-1); err == nil {
		t.Error("StartTime(-1) succeeded")
	}
}

// startSleepers starts n `sleep 600`, each in its own process group.
func startSleepers(b *testing.B, n int) []Root {
	b.Helper()
	roots := make([]Root, n)
	for i := range roots {
		cmd := startGroup(b, "sleep", "600")
		roots[i] = Root{PID: cmd.Process.Pid}
	}
	return roots
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSample1000 measures one Sample over 1,000 children, and what
// sampling them every 5 s costs in percent of one core.
func BenchmarkSample1000(b *testing.B) {
	roots := startSleepers(b, 1000)
	s := NewSampler()
	if got := s.Sample(roots); len(got) != len(roots) {
		b.Fatalf("Sample found %d of %d roots", len(got), len(roots))
	}
	cpu0 := cpuTime()
	for b.Loop() {
		s.Sample(roots)
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	cpuPerOp := float64(cpuTime()-cpu0) / float64(b.N)
	b.ReportMetric(perOp/5e9*100, "%core@5s")
	b.ReportMetric(cpuPerOp, "cpu-ns/op")
}

// BenchmarkGopsutilPerRoot is what the obvious gopsutil code costs for one
// root among 1,000 (NewProcess, Children, MemoryInfo, Times): the reason
// the Linux Sampler scans /proc itself.
func BenchmarkGopsutilPerRoot(b *testing.B) {
	roots := startSleepers(b, 1000)
	i := 0
	for b.Loop() {
		p, err := process.NewProcess(int32(roots[i%len(roots)].PID))
		if err != nil {
			b.Fatal(err)
		}
		i++
		_, _ = p.Children()
		_, _ = p.MemoryInfo()
		_, _ = p.Times()
		_, _ = p.CreateTime()
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp*1000/5e9*100, "%core@5s-for-1000")
}

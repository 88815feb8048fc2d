package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

func TestHeartbeatStaleThenKillThenRestart(t *testing.T) {
	h := newHarness(t, "unix")
	unhealthy := make(chan string, 4)
	h.define(t, "hb", h.ctrl.Env(), func(d *node.Definition) {
		d.HeartbeatTimeout = 150 * time.Millisecond
		d.AutoRestart = true
		d.RestartDelay = 50 * time.Millisecond
		d.StopTimeout = 500 * time.Millisecond
		d.OnUnhealthy = func(p api.ManagedProcess) { unhealthy <- p.ID }
	})
	mp := h.spawn(t, "hb", node.SpawnOptions{Metadata: []byte(`{"k":"v"}`)})
	peer := h.ctrl.Accept()
	peer.Send(line(mp.ID, "connected", ""))
	h.rec.Wait(t, node.KindConnected, mp.ID)
	// Heartbeats in time keep it healthy; then the child goes quiet.
	for i := 0; i < 3; i++ {
		peer.Send(line(mp.ID, "heartbeat", ""))
		h.rec.WaitN(t, node.KindHeartbeat, i+1, 10*time.Second)
	}
	stale := h.rec.Wait(t, node.KindStale, mp.ID).Payload.(api.Stale)
	if stale.TimeSince < 150 || stale.Name != "hb" {
		t.Errorf("stale payload %+v", stale)
	}
	ws := h.rec.Wait(t, node.KindWatchdogStale, mp.ID).Payload.(api.WatchdogStale)
	if ws != (api.WatchdogStale{ProcessID: mp.ID, Name: "hb", Reason: "heartbeat", TimeoutMs: 150}) {
		t.Errorf("watchdog.stale payload %+v", ws)
	}
	if got := <-unhealthy; got != mp.ID {
		t.Errorf("OnUnhealthy(%s)", got)
	}
	killed := h.rec.Wait(t, node.KindWatchdogKilled, mp.ID).Payload.(api.WatchdogKilled)
	if killed.Reason != "heartbeat" || killed.Value < 300 {
		t.Errorf("watchdog.killed payload %+v", killed)
	}
	// The proxy exits 0 on SIGTERM, yet a watchdog kill is a crash.
	cr := h.rec.Wait(t, node.KindCrashed, mp.ID).Payload.(api.Crashed)
	if !strings.Contains(cr.Error, "watchdog") {
		t.Errorf("crashed payload %+v", cr)
	}
	if got, _ := h.sup.Get(mp.ID); got.Status != api.StatusCrashed {
		t.Errorf("status %s, want crashed", got.Status)
	}
	if n := h.rec.Count(node.KindStale, mp.ID); n != 1 {
		t.Errorf("%d stale reports in one episode, want 1", n)
	}
	// Auto-restart: a new id, same metadata, spawned then restarted.
	rs := h.rec.Wait(t, node.KindRestarted, "").Payload.(api.Restarted)
	if rs.OldProcessID != mp.ID || rs.NewProcessID == mp.ID || rs.Attempt != 1 {
		t.Errorf("restarted payload %+v", rs)
	}
	np, ok := h.sup.Get(rs.NewProcessID)
	if !ok || string(np.Metadata) != `{"k":"v"}` || np.Restarts != 1 {
		t.Errorf("restarted record %+v", np)
	}
	h.rec.Wait(t, node.KindSpawned, rs.NewProcessID)
	h.ctrl.Accept() // the new child connects to the test too
}

func TestHeartbeatComingBackEndsTheEpisode(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "hb", h.ctrl.Env(), func(d *node.Definition) { d.HeartbeatTimeout = 400 * time.Millisecond })
	mp := h.spawn(t, "hb", node.SpawnOptions{})
	peer := h.ctrl.Accept()
	peer.Send(line(mp.ID, "connected", ""))
	h.rec.Wait(t, node.KindStale, mp.ID)
	if got, _ := h.sup.Get(mp.ID); !got.Stale || got.Status != api.StatusRunning {
		t.Errorf("while stale: %+v", got)
	}
	peer.Send(line(mp.ID, "heartbeat", `"id":1`))
	peer.ReadLine()
	if got, _ := h.sup.Get(mp.ID); got.Stale {
		t.Error("still stale after a heartbeat")
	}
	// Quiet again: a second episode is reported.
	h.rec.WaitN(t, node.KindStale, 2, 10*time.Second)
	_, err := h.sup.Stop(context.Background(), mp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatTimeoutOffLeavesTheChildAlone(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "quiet", h.ctrl.Env(), func(d *node.Definition) {
		d.HeartbeatTimeout = -1
		d.StatsInterval = 100 * time.Millisecond
	})
	mp := h.spawn(t, "quiet", node.SpawnOptions{})
	peer := h.ctrl.Accept()
	peer.Send(line(mp.ID, "connected", ""))
	// Several node stats rounds pass (each 100 ms) with no heartbeat: far
	// beyond any default-free timeout, and nothing is reported stale.
	h.rec.WaitN(t, node.KindStats, 5, 10*time.Second)
	if n := h.rec.Count(node.KindStale, mp.ID); n != 0 {
		t.Errorf("%d stale reports with monitoring off", n)
	}
	if got, _ := h.sup.Get(mp.ID); got.Status != api.StatusRunning {
		t.Errorf("status %s", got.Status)
	}
}

func TestCrashLoopBacksOffThenGivesUp(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "crasher", map[string]string{testchild.EnvRole: testchild.RoleExit, testchild.EnvExitCode: "1"}, func(d *node.Definition) {
		d.AutoRestart = true
		d.MaxRestarts = 3
		d.RestartDelay = 100 * time.Millisecond
		d.RestartDelayMax = time.Second
	})
	first := h.spawn(t, "crasher", node.SpawnOptions{})
	limit := h.rec.Wait(t, node.KindRestartLimit, "").Payload.(api.RestartLimit)
	if limit.Restarts != 3 || limit.Name != "crasher" {
		t.Errorf("restart_limit payload %+v", limit)
	}
	restarts, rtimes := h.rec.All(node.KindRestarted)
	if len(restarts) != 3 {
		t.Fatalf("%d restarts, want exactly 3", len(restarts))
	}
	crashes, ctimes := h.rec.All(node.KindCrashed)
	if len(crashes) != 4 || crashes[0].ProcessID != first.ID {
		t.Fatalf("%d crashes, want 4", len(crashes))
	}
	// Delays: ~100, ~200, ~400 ms (minus up to 10 % jitter, and the time the
	// crash report took, which the timer does not wait for).
	prev := time.Duration(0)
	for i := range restarts {
		if a := restarts[i].Payload.(api.Restarted).Attempt; a != i+1 {
			t.Errorf("restart %d has attempt %d", i, a)
		}
		delay := rtimes[i].Sub(ctimes[i])
		want := (100 * time.Millisecond) << i
		if delay < want*8/10 || delay <= prev {
			t.Errorf("restart %d after %s, want about %s and more than the previous %s", i+1, delay, want, prev)
		}
		prev = delay
	}
	last := restarts[2].Payload.(api.Restarted).NewProcessID
	if limit.ProcessID != last {
		t.Errorf("restart_limit names %s, want the last process %s", limit.ProcessID, last)
	}
	if got, _ := h.sup.Get(last); got.Status != api.StatusCrashed || got.RestartPending {
		t.Errorf("last process %+v", got)
	}
}

func TestHealthyRunEarnsAFreshRestartBudget(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "flaky", map[string]string{testchild.EnvRole: testchild.RoleSleepExit, testchild.EnvSleep: "300ms", testchild.EnvExitCode: "2"},
		func(d *node.Definition) {
			d.AutoRestart = true
			d.MaxRestarts = 1
			d.RestartDelay = 20 * time.Millisecond
			d.RestartResetAfter = 200 * time.Millisecond // every run (300 ms) counts as healthy
		})
	h.spawn(t, "flaky", node.SpawnOptions{})
	// With a budget of 1 and no reset it would give up after one restart;
	// each healthy run resets the count, so it keeps coming back.
	reps := h.rec.WaitN(t, node.KindRestarted, 3, 20*time.Second)
	for _, r := range reps {
		if a := r.Payload.(api.Restarted).Attempt; a != 1 {
			t.Errorf("attempt %d after a healthy run, want 1", a)
		}
	}
	if n, _ := h.rec.All(node.KindRestartLimit); len(n) != 0 {
		t.Errorf("restart limit reached despite healthy runs")
	}
}

func TestStopCancelsAPendingRestart(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "crasher", map[string]string{testchild.EnvRole: testchild.RoleExit, testchild.EnvExitCode: "1"}, func(d *node.Definition) {
		d.AutoRestart = true
		d.RestartDelay = time.Hour
	})
	mp := h.spawn(t, "crasher", node.SpawnOptions{})
	h.rec.Wait(t, node.KindCrashed, mp.ID)
	if got, _ := h.sup.Get(mp.ID); !got.RestartPending {
		t.Fatalf("no pending restart: %+v", got)
	}
	if _, err := h.sup.Stop(context.Background(), mp.ID, 0); err != nil {
		t.Fatalf("stop of a process waiting to restart: %v", err)
	}
	if got, _ := h.sup.Get(mp.ID); got.RestartPending {
		t.Error("restart still pending after stop")
	}
}

func TestMemoryLimitKillsTheWholeTree(t *testing.T) {
	h := newHarness(t, "unix")
	pidFile := filepath.Join(h.dir, "grandchild.pid")
	h.define(t, "wrapper", map[string]string{
		testchild.EnvRole: testchild.RoleWrapper, testchild.EnvInnerRole: testchild.RoleAlloc,
		testchild.EnvAllocMB: "120", testchild.EnvPidFile: pidFile,
	}, func(d *node.Definition) {
		d.Limits.MaxMemoryMB = 60
		d.StatsInterval = 100 * time.Millisecond
		d.StopTimeout = 500 * time.Millisecond
	})
	mp := h.spawn(t, "wrapper", node.SpawnOptions{})
	gpid, _ := strconv.Atoi(testchild.WaitFile(t, pidFile))
	le := h.rec.Wait(t, node.KindLimitsExceeded, mp.ID).Payload.(api.LimitsExceeded)
	if le.Reason != "maxMemoryMb" || le.Limit != 60 || le.Value <= 60 {
		t.Errorf("limits_exceeded payload %+v", le)
	}
	wk := h.rec.Wait(t, node.KindWatchdogKilled, mp.ID).Payload.(api.WatchdogKilled)
	if wk.Reason != "maxMemoryMb" || wk.Value != le.Value {
		t.Errorf("watchdog.killed payload %+v", wk)
	}
	h.rec.Wait(t, node.KindCrashed, mp.ID)
	waitGone(t, gpid)
}

// waitGone waits for pid to be gone: it is not our child, so /proc is all
// there is to look at.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	await.Until(t, 10*time.Second, fmt.Sprintf("pid %d to be gone", pid), func() bool { return !alive(pid) || zombie(pid) })
}

func TestCPULimitNeedsTwoSamplesInARow(t *testing.T) {
	h := newHarness(t, "unix")
	ready := filepath.Join(h.dir, "ready")
	h.define(t, "spinner", map[string]string{testchild.EnvRole: testchild.RoleBusy, testchild.EnvReadyFile: ready}, func(d *node.Definition) {
		d.Limits.MaxCPUPercent = 30
		d.StatsInterval = 150 * time.Millisecond
		d.StopTimeout = 500 * time.Millisecond
	})
	mp := h.spawn(t, "spinner", node.SpawnOptions{})
	le := h.rec.Wait(t, node.KindLimitsExceeded, mp.ID).Payload.(api.LimitsExceeded)
	if le.Reason != "maxCpuPercent" || le.Value <= 30 {
		t.Errorf("limits_exceeded payload %+v", le)
	}
	// At least two node samples were over the limit before the kill.
	over := 0
	reps, _ := h.rec.All(node.KindStats)
	for _, r := range reps {
		if r.ProcessID == mp.ID && r.Payload.(api.StatsReport).Stats.CPU.Percent > 30 {
			over++
		}
	}
	if over < 2 {
		t.Errorf("killed after %d samples over the limit, want 2", over)
	}
	h.rec.Wait(t, node.KindCrashed, mp.ID)
}

func TestMaxRuntime(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "long", role(testchild.RoleSleep), func(d *node.Definition) { d.Limits.MaxRuntime = 200 * time.Millisecond })
	mp := h.spawn(t, "long", node.SpawnOptions{})
	le := h.rec.Wait(t, node.KindLimitsExceeded, mp.ID).Payload.(api.LimitsExceeded)
	if le.Reason != "maxRuntimeMs" || le.Limit != 200 || le.Value < 200 {
		t.Errorf("limits_exceeded payload %+v", le)
	}
	h.rec.Wait(t, node.KindWatchdogKilled, mp.ID)
	h.rec.Wait(t, node.KindCrashed, mp.ID)
	if got, _ := h.sup.Get(mp.ID); got.Status != api.StatusCrashed {
		t.Errorf("status %s", got.Status)
	}
}

func TestNodeStatsForAChildThatNeverConnects(t *testing.T) {
	h := newHarness(t, "unix")
	ready := filepath.Join(h.dir, "ready")
	h.define(t, "mute", map[string]string{testchild.EnvRole: testchild.RoleAlloc, testchild.EnvAllocMB: "40", testchild.EnvReadyFile: ready},
		func(d *node.Definition) { d.StatsInterval = 100 * time.Millisecond })
	mp := h.spawn(t, "mute", node.SpawnOptions{})
	testchild.WaitFile(t, ready)
	// Compare /proc with the first node sample taken after reading it.
	rss := vmRSS(t, mp.PID)
	after := time.Now()
	var sr api.StatsReport
	h.rec.WaitFor(t, 10*time.Second, func(r node.Report) bool {
		s, ok := r.Payload.(api.StatsReport)
		if ok && r.ProcessID == mp.ID && s.Source == "node" && s.Stats.Uptime > after.Sub(mp.StartedAt).Seconds() {
			sr = s
			return true
		}
		return false
	})
	if got := sr.Stats.Memory.RSS; got < 40e6 || got < rss*0.75 || got > rss*1.25 {
		t.Errorf("node RSS %.0f, /proc says %.0f", got, rss)
	}
	if sr.Stats.Uptime <= 0 || sr.Stats.Uptime > 60 {
		t.Errorf("uptime %v", sr.Stats.Uptime)
	}
	if got, _ := h.sup.Get(mp.ID); got.Stats == nil || got.Stats.Memory.RSS == 0 {
		t.Errorf("record has no stats: %+v", got)
	}
}

// vmRSS reads a process's resident set from /proc in bytes.
func vmRSS(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

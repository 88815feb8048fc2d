package node_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// instances returns the live processes of each instance name.
func (h *harness) instances(name string) map[string][]api.ManagedProcess {
	out := map[string][]api.ManagedProcess{}
	for _, mp := range h.sup.GetByName(name) {
		if mp.Instance != "" && (!mp.Status.Finished() || mp.RestartPending) {
			out[mp.Instance] = append(out[mp.Instance], mp)
		}
	}
	return out
}

func (h *harness) waitInstances(t *testing.T, name string, want ...string) map[string][]api.ManagedProcess {
	t.Helper()
	var got map[string][]api.ManagedProcess
	await.Until(t, 10*time.Second, "instances "+fmtList(want), func() bool {
		got = h.instances(name)
		if len(got) != len(want) {
			return false
		}
		for _, inst := range want {
			if len(got[inst]) != 1 || got[inst][0].Status != api.StatusRunning {
				return false
			}
		}
		return true
	})
	return got
}

func fmtList(s []string) string { return "[" + strings.Join(s, ", ") + "]" }

func TestInstancesAreKeptRunningAndReplaced(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "enc", role(testchild.RoleSleep), func(d *node.Definition) {
		d.Instances, d.RestartDelay = 2, 20*time.Millisecond
	})
	started, err := h.sup.EnsureInstances()
	if err != nil || len(started) != 2 {
		t.Fatalf("EnsureInstances started %d (%v), want 2", len(started), err)
	}
	got := h.waitInstances(t, "enc", "enc/0", "enc/1")
	if again, err := h.sup.EnsureInstances(); err != nil || len(again) != 0 {
		t.Fatalf("a second EnsureInstances started %d (%v), want none", len(again), err)
	}

	// A kill -9 is a crash: the slot gets a new process with the same
	// instance name, reported as process.restarted.
	victim := got["enc/0"][0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	re := h.rec.WaitFor(t, 10*time.Second, func(r node.Report) bool {
		return r.Kind == node.KindRestarted && r.Payload.(api.Restarted).OldProcessID == victim.ID
	}).Payload.(api.Restarted)
	got = h.waitInstances(t, "enc", "enc/0", "enc/1")
	if got["enc/0"][0].ID != re.NewProcessID || re.NewProcessID == victim.ID {
		t.Errorf("enc/0 is %s, restarted said %s (old %s)", got["enc/0"][0].ID, re.NewProcessID, victim.ID)
	}

	// Even a clean exit is replaced: an instance is kept running.
	clean := got["enc/1"][0]
	if err := syscall.Kill(clean.PID, syscall.SIGTERM); err != nil { // the sleeper exits 0 on SIGTERM
		t.Fatal(err)
	}
	h.rec.WaitFor(t, 10*time.Second, func(r node.Report) bool {
		return r.Kind == node.KindRestarted && r.Payload.(api.Restarted).OldProcessID == clean.ID
	})
	h.waitInstances(t, "enc", "enc/0", "enc/1")
}

func TestInstanceHeldAtRestartLimitUntilRestarted(t *testing.T) {
	h := newHarness(t, "unix")
	env := role(testchild.RoleExit)
	env[testchild.EnvExitCode] = "3"
	h.define(t, "flaky", env, func(d *node.Definition) {
		d.Instances, d.MaxRestarts, d.RestartDelay = 1, 2, 10*time.Millisecond
	})
	if _, err := h.sup.EnsureInstances(); err != nil {
		t.Fatal(err)
	}
	limit := h.rec.Wait(t, node.KindRestartLimit, "").Payload.(api.RestartLimit)
	last, ok := h.sup.Get(limit.ProcessID)
	if !ok || !last.Held || last.Instance != "flaky/0" {
		t.Fatalf("the last process is %+v, want flaky/0 held", last)
	}
	// Held: EnsureInstances leaves it down.
	if started, err := h.sup.EnsureInstances(); err != nil || len(started) != 0 {
		t.Fatalf("EnsureInstances started %d (%v) of a held instance", len(started), err)
	}
	// Restart releases it.
	np, err := h.sup.Restart(context.Background(), last.ID)
	if err != nil {
		t.Fatal(err)
	}
	if np.Instance != "flaky/0" || np.Held {
		t.Errorf("restarted process %+v, want flaky/0 not held", np)
	}
	if old, _ := h.sup.Get(last.ID); old.Held {
		t.Error("the old process still says held after the restart")
	}
	h.rec.Wait(t, node.KindSpawned, np.ID)
}

func TestStoppedLocalInstanceStaysDownAndIsNotDoubled(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "w", role(testchild.RoleSleep), func(d *node.Definition) { d.Instances = 1 })
	if _, err := h.sup.EnsureInstances(); err != nil {
		t.Fatal(err)
	}
	mp := h.waitInstances(t, "w", "w/0")["w/0"][0]

	// A second process of a live instance is refused.
	_, err := h.sup.Spawn(context.Background(), "w", node.SpawnOptions{Instance: "w/0"})
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("second w/0: %v, want a conflict", err)
	}
	stopped, err := h.sup.Stop(context.Background(), mp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !stopped.Held {
		t.Errorf("a stopped local instance is not held: %+v", stopped)
	}
	if started, err := h.sup.EnsureInstances(); err != nil || len(started) != 0 {
		t.Fatalf("EnsureInstances started %d (%v) of a stopped instance", len(started), err)
	}
	// Restarting the stopped one brings exactly one back.
	if _, err := h.sup.Restart(context.Background(), mp.ID); err != nil {
		t.Fatal(err)
	}
	h.waitInstances(t, "w", "w/0")
	if _, err := h.sup.Restart(context.Background(), mp.ID); !errors.Is(err, api.ErrConflict) {
		t.Errorf("restart of an old process of a live instance: %v, want a conflict", err)
	}
}

func TestFewerInstancesStopTheSurplus(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "w", role(testchild.RoleSleep), func(d *node.Definition) { d.Instances = 3 })
	if _, err := h.sup.EnsureInstances(); err != nil {
		t.Fatal(err)
	}
	h.waitInstances(t, "w", "w/0", "w/1", "w/2")
	h.define(t, "w", role(testchild.RoleSleep), func(d *node.Definition) { d.Instances = 1 })
	if _, err := h.sup.EnsureInstances(); err != nil {
		t.Fatal(err)
	}
	h.waitInstances(t, "w", "w/0")
	// Surplus instances are stopped, not held and not restarted.
	for _, mp := range h.sup.GetByName("w") {
		if mp.Instance != "w/0" && (mp.RestartPending || !mp.Status.Finished()) {
			t.Errorf("%s still runs: %+v", mp.Instance, mp)
		}
	}
}

func TestBadInstanceOptionsAreRefused(t *testing.T) {
	h := newHarness(t, "unix")
	h.define(t, "w", role(testchild.RoleSleep), nil)
	for _, opts := range []node.SpawnOptions{
		{Instance: "w"},
		{Instance: "w/x"},
		{Instance: "w/-1"},
		{Instance: "w/01"},
		{Instance: "a.b/0"},
		{Service: "svc"},
		{Service: "svc", Instance: "other/0"},
		{Service: "bad name", Instance: "bad name/0"},
	} {
		if _, err := h.sup.Spawn(context.Background(), "w", opts); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("spawn with %+v: %v, want invalid", opts, err)
		}
	}
	if err := h.sup.Define(node.Definition{Name: "x", Command: "/bin/true", Instances: 3, MaxInstances: 2}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("instances above max_instances: %v", err)
	}
}

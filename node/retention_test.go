package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
)

// Beyond RetentionMax, the processes that ended first are forgotten, one
// as each later one ends; a running process and one waiting for its
// auto-restart are never counted among the ended, however many end.
func TestRetentionForgetsTheFirstEndedOnly(t *testing.T) {
	h := newHarnessWith(t, node.Config{RetentionMax: 2})
	h.define(t, "s", role(testchild.RoleSleep), nil)
	h.define(t, "c", map[string]string{testchild.EnvRole: testchild.RoleExit, testchild.EnvExitCode: "1"},
		func(d *node.Definition) { d.AutoRestart, d.RestartDelay, d.MaxRestarts = true, time.Hour, 3 })
	running := h.spawn(t, "s", node.SpawnOptions{})
	waiting := h.spawn(t, "c", node.SpawnOptions{})
	h.rec.Wait(t, node.KindCrashed, waiting.ID)

	var ended []string
	for range 4 {
		mp := h.spawn(t, "s", node.SpawnOptions{})
		if _, err := h.sup.Stop(context.Background(), mp.ID, 0); err != nil {
			t.Fatal(err)
		}
		ended = append(ended, mp.ID)
	}
	want := []string{running.ID, waiting.ID, ended[2], ended[3]}
	slices.Sort(want)
	var got []string
	await.Until(t, 10*time.Second, "the first two ended to be forgotten", func() bool {
		got = got[:0]
		for _, mp := range h.sup.GetAll() {
			got = append(got, mp.ID)
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
	if mp, _ := h.sup.Get(waiting.ID); mp.Status != api.StatusCrashed {
		t.Errorf("the process waiting for its restart: %+v", mp)
	}
	if mp, _ := h.sup.Get(running.ID); mp.Status != api.StatusRunning {
		t.Errorf("the running process: %+v", mp)
	}
}

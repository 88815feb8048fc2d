package service_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/testnode"
)

// A node at its capacity refuses a spawn addressed to it with a 503 that
// names the limit; a spawn by name that the queue group hands it goes to
// another node that defines the name and has room: a cluster with room
// never refuses.
func TestFullNodeHandsSpawnsOn(t *testing.T) {
	srv := testnode.StartServer(t, false)
	full := testnode.Start(t, srv, testnode.Spec{ID: "full", MaxProcesses: 1})
	roomy := testnode.Start(t, srv, testnode.Spec{ID: "roomy"})
	ctx := testnode.Context(t)
	if _, err := full.Ctl.Spawn(ctx, "full", "sleeper", api.SpawnRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := full.Ctl.Spawn(ctx, "full", "sleeper", api.SpawnRequest{})
	var se *control.ServiceError
	if !errors.As(err, &se) || se.Code != 503 || !errors.Is(err, control.ErrNoCapacity) || !strings.Contains(err.Error(), "node.max_processes") {
		t.Fatalf("spawn on the full node: %v, want a 503 naming node.max_processes", err)
	}
	for i := range 8 {
		mp, err := full.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
		if err != nil {
			t.Fatalf("spawn %d by name with room on roomy: %v", i, err)
		}
		if mp.Node != "roomy" {
			t.Errorf("spawn %d by name ran on %s, which is full", i, mp.Node)
		}
	}
	if n := len(roomy.Sup.GetAll()); n != 8 {
		t.Errorf("roomy runs %d processes, want 8", n)
	}

	// Once every node is full, the refusal names them.
	srv2 := testnode.StartServer(t, false)
	a := testnode.Start(t, srv2, testnode.Spec{ID: "a", MaxProcesses: 1})
	testnode.Start(t, srv2, testnode.Spec{ID: "b", MaxProcesses: 1})
	for range 2 {
		if _, err := a.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	_, err = a.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if !errors.Is(err, control.ErrNoCapacity) || !strings.Contains(err.Error(), "no other node that defines it has room") {
		t.Errorf("spawn with every node full: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the refusal took %v", d)
	}
}

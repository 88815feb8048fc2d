package service_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/service"
	"github.com/corral-run/corral/internal/testnode"
)

// Remote definitions are off unless the node turns them on: define is a
// 403 that says how. On, a definition from the node's configuration
// cannot be replaced (409); a new one can be added.
func TestDefineIsOffByDefault(t *testing.T) {
	n := testnode.StartOne(t)
	ctx := testnode.Context(t)
	_, err := n.Ctl.Define(ctx, "n1", api.DefinitionInfo{Name: "x", Command: "/bin/sh", Args: []string{"-c", "id"}})
	var se *control.ServiceError
	if !errors.As(err, &se) || se.Code != 403 || !errors.Is(err, control.ErrNotPermitted) || !strings.Contains(err.Error(), "remote_definitions = true") {
		t.Fatalf("define: %v, want a 403 that says how to allow it", err)
	}
	if _, err := n.Ctl.Spawn(ctx, "", "x", api.SpawnRequest{}); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("spawn of the refused definition: %v", err)
	}

	m := testnode.Start(t, testnode.StartServer(t, false), testnode.Spec{ID: "n2", Service: service.Config{RemoteDefinitions: true}})
	_, err = m.Ctl.Define(ctx, "n2", api.DefinitionInfo{Name: "sleeper", Command: "/bin/sh"})
	if !errors.As(err, &se) || se.Code != 409 || !strings.Contains(err.Error(), "the node's configuration defines it") {
		t.Errorf("define over a configured definition: %v, want 409", err)
	}
	got, err := m.Ctl.Define(ctx, "n2", api.DefinitionInfo{Name: "new", Command: "/bin/true", Env: map[string]string{"DB_PASSWORD": "hunter2"}})
	if err != nil || got.Env["DB_PASSWORD"] != "xxxxx" {
		t.Errorf("define a new one: %+v, %v; want its secret redacted in the reply", got, err)
	}
	defs, err := m.Ctl.Definitions(ctx)
	if err != nil || len(defs) != 1 || len(defs[0].Definitions) != 2 || defs[0].Definitions[0].Env["DB_PASSWORD"] != "xxxxx" {
		t.Errorf("definitions: %+v, %v", defs, err)
	}
}

// A spawn's environment and working directory overrides that its
// definition does not allow are refused with 403, naming them.
func TestSpawnOverrideOutsideTheAllowListIs403(t *testing.T) {
	n := testnode.StartOne(t)
	_, err := n.Ctl.Spawn(testnode.Context(t), "", "sleeper", api.SpawnRequest{Env: map[string]string{"LD_PRELOAD": "/tmp/evil.so"}})
	var se *control.ServiceError
	if !errors.As(err, &se) || se.Code != 403 || !strings.Contains(err.Error(), "LD_PRELOAD") {
		t.Errorf("spawn with LD_PRELOAD: %v, want 403 naming it", err)
	}
}

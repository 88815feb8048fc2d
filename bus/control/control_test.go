package control_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/testnode"
)

func TestControlErrors(t *testing.T) {
	n := testnode.StartOne(t)
	ctx := testnode.Context(t)
	running, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		call   func() error
		target error
		text   string
	}{
		{"get unknown id", func() error {
			_, err := n.Ctl.Get(ctx, "proc_nope")
			return err
		}, control.ErrNotFound, "no such process"},
		{"spawn name nobody defines", func() error {
			_, err := n.Ctl.Spawn(ctx, "", "nope", api.SpawnRequest{})
			return err
		}, control.ErrNotFound, "no node defines"},
		{"spawn name the node does not define", func() error {
			_, err := n.Ctl.Spawn(ctx, "n1", "nope", api.SpawnRequest{})
			return err
		}, control.ErrNotFound, "definition not found"},
		{"spawn on unknown node", func() error {
			_, err := n.Ctl.Spawn(ctx, "n9", "sleeper", api.SpawnRequest{})
			return err
		}, control.ErrUnreachable, `node "n9"`},
		{"spawn with metadata that is not an object", func() error {
			_, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{Metadata: json.RawMessage(`[1]`)})
			return err
		}, control.ErrBadRequest, "must be a JSON object"},
		{"stop with unknown signal", func() error {
			_, err := n.Ctl.Stop(ctx, running.ID, "SIGBOGUS")
			return err
		}, control.ErrBadRequest, "unknown signal"},
		{"send to a process without a connection", func() error {
			return n.Ctl.Send(ctx, running.ID, json.RawMessage(`{"hello":1}`))
		}, control.ErrConflict, "no open connection"},
		{"send invalid JSON", func() error {
			return n.Ctl.Send(ctx, running.ID, json.RawMessage(`{`))
		}, control.ErrBadRequest, "not valid JSON"},
		{"logs of unknown id", func() error {
			_, err := n.Ctl.Logs(ctx, "proc_nope", 10)
			return err
		}, control.ErrNotFound, "no such process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.target) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.target)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %q, want it to mention %q", err, tt.text)
			}
			if !strings.HasPrefix(err.Error(), "cannot ") {
				t.Errorf("err = %q, want it to start with \"cannot \"", err)
			}
		})
	}

	t.Run("stop twice", func(t *testing.T) {
		mp, err := n.Ctl.Stop(ctx, running.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		if mp.Status != api.Status("stopped") {
			t.Errorf("status after stop = %s, want stopped", mp.Status)
		}
		_, err = n.Ctl.Stop(ctx, running.ID, "")
		if !errors.Is(err, control.ErrConflict) {
			t.Errorf("second stop: err = %v, want ErrConflict", err)
		}
	})
}

// Requests made without Control (as `nats req` makes them) get their errors
// in the micro error headers, on micro endpoints and on the per-process
// subjects alike.
func TestErrorHeadersOnRawRequests(t *testing.T) {
	n := testnode.StartOne(t)
	ctx := testnode.Context(t)
	running, err := n.Ctl.Spawn(ctx, "n1", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, subject, body, code string
	}{
		{"unknown definition", bus.NodeSubject("n1", bus.VerbSpawn), `{"name":"nope"}`, "404"},
		{"unknown field", bus.NodeSubject("n1", bus.VerbSpawn), `{"nmae":"sleeper"}`, "400"},
		{"not JSON", bus.NodeSubject("n1", bus.VerbList), `{`, "400"},
		{"bad signal", bus.ProcSubject(running.ID, bus.VerbStop), `{"signal":"SIGBOGUS"}`, "400"},
		{"unknown field on a process", bus.ProcSubject(running.ID, bus.VerbLogs), `{"line":3}`, "400"},
		{"unknown verb", bus.ProcSubject(running.ID, "explode"), ``, "400"},
		{"not connected", bus.ProcSubject(running.ID, bus.VerbSend), `{}`, "409"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := n.Conn.RequestWithContext(ctx, tt.subject, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Header.Get(micro.ErrorCodeHeader); got != tt.code {
				t.Errorf("%s = %q, want %q (body %q)", micro.ErrorCodeHeader, got, tt.code, m.Data)
			}
			if m.Header.Get(micro.ErrorHeader) == "" {
				t.Errorf("%s is empty", micro.ErrorHeader)
			}
		})
	}
}

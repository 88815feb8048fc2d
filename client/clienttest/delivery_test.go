package clienttest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/internal/testchild"
	"github.com/corral-run/corral/node"
	"github.com/corral-run/corral/node/nodetest"
)

// The environment that makes the test binary a child.
const (
	// envChild selects the child's job: "emit" or "refused".
	envChild = "CORRAL_CLIENTTEST_CHILD"
	// envEvents is how many events the emit job sends.
	envEvents = "CORRAL_CLIENTTEST_EVENTS"
)

func TestMain(m *testing.M) {
	if job := os.Getenv(envChild); job != "" {
		os.Exit(runChild(job))
	}
	os.Exit(m.Run())
}

// runChild is the managed process: it connects with the settings the node
// gave it, does its job and returns the exit code (0 when all went as
// expected; otherwise it says why on stderr, which the node logs).
func runChild(job string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Disconnect()
	switch job {
	case "emit":
		n, err := strconv.Atoi(os.Getenv(envEvents))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad", envEvents, err)
			return 2
		}
		for i := range n {
			if err := c.EmitAsync(ctx, "item", map[string]int{"i": i}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3
			}
		}
		if err := c.Flush(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
	case "refused":
		// Schema-invalid: Flush must report the node's refusal.
		if err := c.EmitAsync(ctx, "item", map[string]string{"i": "one"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		err := c.Flush(ctx)
		var ne *client.NodeError
		if !errors.As(err, &ne) || ne.Code != wire.CodeSchemaInvalid {
			fmt.Fprintf(os.Stderr, "Flush after a schema-invalid event: %v, want a %s refusal\n", err, wire.CodeSchemaInvalid)
			return 4
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown job", job)
		return 2
	}
	if err := c.Disconnect(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 5
	}
	return 0
}

// itemSchema is the schema the node checks "item" events against.
const itemSchema = `{"type":"object","properties":{"i":{"type":"integer"}},"required":["i"]}`

// runJob starts a supervisor on transport, runs one child doing job and
// waits for it to end; the child must exit 0.
func runJob(t *testing.T, transport, job string, env map[string]string) (*nodetest.Recorder, string) {
	t.Helper()
	dir := testchild.ShortTempDir(t)
	rec := nodetest.NewRecorder()
	sup, err := node.New(node.Config{
		NodeID: "n1", Transport: transport,
		SocketDir: filepath.Join(dir, "sock"), LogDir: filepath.Join(dir, "logs"),
		Reporter: rec, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := sup.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	childEnv := map[string]string{envChild: job}
	for k, v := range env {
		childEnv[k] = v
	}
	if err := sup.Define(node.Definition{
		Name: "emitter", Command: exe, Env: childEnv, StopTimeout: 2 * time.Second,
		Events: map[string]json.RawMessage{"item": json.RawMessage(itemSchema)},
	}); err != nil {
		t.Fatal(err)
	}
	mp, err := sup.Spawn(context.Background(), "emitter", node.SpawnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	end := rec.WaitFor(t, 30*time.Second, func(rep node.Report) bool {
		return rep.ProcessID == mp.ID && (rep.Kind == node.KindStopped || rep.Kind == node.KindCrashed)
	})
	if st, ok := end.Payload.(api.Stopped); end.Kind != node.KindStopped || !ok || st.ExitCode == nil || *st.ExitCode != 0 {
		logs, _ := os.ReadFile(filepath.Join(dir, "logs", "emitter-"+mp.ID+".log"))
		t.Fatalf("the child did not exit 0: %+v\nits output:\n%s", end.Payload, logs)
	}
	return rec, mp.ID
}

// TestDeliveryThroughANode: a child sends N events with EmitAsync, then
// Flush, then Disconnect; the node publishes each exactly once, in order,
// with the Nats-Msg-Id <processId>:<id> that lets JetStream drop a resent
// duplicate.
func TestDeliveryThroughANode(t *testing.T) {
	const events = 5000
	for _, transport := range []string{"unix", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			rec, id := runJob(t, transport, "emit", map[string]string{envEvents: strconv.Itoa(events)})
			reps := rec.Of(node.KindEvent, id)
			if len(reps) != events {
				t.Fatalf("the node published %d events, want %d", len(reps), events)
			}
			msgIDs := make(map[string]bool, events)
			for i, rep := range reps {
				var payload struct {
					ProcessID string `json:"processId"`
					Name      string `json:"name"`
					I         *int   `json:"i"`
				}
				if err := json.Unmarshal(rep.Raw, &payload); err != nil || payload.I == nil {
					t.Fatalf("event %d: payload %s: %v", i, rep.Raw, err)
				}
				if *payload.I != i || rep.Event != "item" || payload.ProcessID != id || payload.Name != "emitter" {
					t.Fatalf("event %d: %s event=%s", i, rep.Raw, rep.Event)
				}
				if want := id + ":" + strconv.Itoa(i+1); rep.MsgID != want || msgIDs[rep.MsgID] {
					t.Fatalf("event %d: MsgID %q (seen before: %v), want %q", i, rep.MsgID, msgIDs[rep.MsgID], want)
				}
				msgIDs[rep.MsgID] = true
			}
		})
	}
}

// TestRefusalThroughANode: a schema-invalid event sent with EmitAsync is
// refused by the node, and the child's Flush reports it (the child checks
// and exits 0 only then); nothing is published.
func TestRefusalThroughANode(t *testing.T) {
	rec, id := runJob(t, "unix", "refused", nil)
	if reps := rec.Of(node.KindEvent, id); len(reps) != 0 {
		t.Fatalf("the node published %d events, want none", len(reps))
	}
}

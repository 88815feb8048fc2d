package presence_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/bus/service"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testnode"
	"github.com/corral-run/corral/node"
)

// A process list longer than a message holds (max_payload, here its
// least: 64 KiB, some 450 processes) is written in parts, in the
// registry and in the answers to corral.node.<node>.procs. The other
// nodes put it together, and once the node is gone every one of its
// processes is listed as unknown, and a request for one fails naming the
// node. The list used to be refused by the bucket and left out of the
// answer: the others knew none of it.
func TestALongProcessListComesInParts(t *testing.T) {
	const n = 600
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:-1", JetStream: true, StoreDir: t.TempDir(), MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	spec := func(id string) testnode.Spec {
		return testnode.Spec{ID: id, Service: service.Config{Registry: &registry.Config{}}, MaxProcesses: 2 * n}
	}
	a, b := testnode.Start(t, srv, spec("a")), testnode.Start(t, srv, spec("b"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // 600 spawns, under -race
	defer cancel()
	spawned := map[string]bool{}
	for range n {
		mp, err := b.Sup.Spawn(ctx, "sleeper", node.SpawnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		spawned[mp.ID] = true
	}
	all := func(procs []api.ProcessSummary) bool {
		seen := map[string]bool{}
		for _, p := range procs {
			if spawned[p.ID] {
				seen[p.ID] = true
			}
		}
		return len(seen) == n && len(procs) == n
	}

	js, err := jetstream.New(a.Conn)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, registry.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "the registry to hold b's list in parts", func() bool {
		e, err := kv.Get(ctx, registry.ProcsKey("b"))
		var first api.NodeProcesses
		if err != nil || json.Unmarshal(e.Value(), &first) != nil || first.Parts < 2 {
			return false
		}
		procs, err := registry.ReadProcs(ctx, kv, []string{"b"})
		return err == nil && all(procs["b"])
	})
	await.Until(t, 10*time.Second, "a to know b's processes", func() bool {
		v, _ := a.Svc.RegistryView(api.RegistryRequest{Processes: api.ProcessesAll})
		for _, e := range v.Nodes {
			if e.Info.ID == "b" && all(e.Processes) {
				return true
			}
		}
		return false
	})
	// The parts of corral.node.b.procs, and past the last one a 404.
	var first api.NodeProcesses
	if m, err := a.Conn.RequestWithContext(ctx, bus.NodeSubject("b", bus.VerbProcs), nil); err != nil || json.Unmarshal(m.Data, &first) != nil || first.Parts < 2 {
		t.Fatalf("first part: %v, %d parts", err, first.Parts)
	}
	req, _ := json.Marshal(api.ProcsRequest{Part: first.Parts})
	if m, err := a.Conn.RequestWithContext(ctx, bus.NodeSubject("b", bus.VerbProcs), req); err != nil {
		t.Error(err)
	} else if m.Header.Get(bus.HeaderServiceErrorCode) != "404" {
		t.Errorf("the part past the last: %v", m.Header)
	}

	b.Die(t)
	var list control.ListResult
	await.Until(t, 10*time.Second, "a to list b gone, its processes unknown", func() bool {
		list, err = a.Ctl.List(ctx, api.ListRequest{})
		return err == nil && len(list.Gone) == 1 && len(list.Processes) == n
	})
	for _, p := range list.Processes {
		if !spawned[p.ID] || p.Status != api.StatusUnknown || p.Node != "b" {
			t.Fatalf("after b is gone: %+v", p)
		}
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := a.Ctl.Stop(stopCtx, list.Processes[n-1].ID, ""); !errors.Is(err, control.ErrUnreachable) {
		t.Errorf("stop of b's last process: %v, want unreachable", err)
	}
}

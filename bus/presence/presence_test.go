package presence_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/presence"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/bus/service"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/testnode"
)

// Every interval the node publishes its NodeInfo, host included, on
// corral.node.<node>.heartbeat, and Nodes shows the host too.
func TestHeartbeat(t *testing.T) {
	n := testnode.StartOne(t) // heartbeat every 100ms, no JetStream
	ctx := testnode.Context(t)
	cc, err := nats.Connect(n.Srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sub, err := cc.SubscribeSync(bus.SubjectNodeHeartbeats)
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for i := range 2 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		testnode.CheckSchema(t, "corral.node.<node>.heartbeat", m.Data)
		var info api.NodeInfo
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatal(err)
		}
		if m.Subject != bus.NodeHeartbeatSubject("n1") || m.Header.Get(bus.HeaderNode) != "n1" || info.ID != "n1" ||
			info.IntervalMs != 100 || info.Host == nil || info.Host.MemTotalBytes == 0 ||
			len(info.Definitions) != 1 || info.LastSeen.IsZero() {
			t.Errorf("heartbeat %d on %s = %s", i, m.Subject, m.Data)
		}
		if i == 1 && !info.LastSeen.After(last) {
			t.Errorf("heartbeat LastSeen %v, not after %v", info.LastSeen, last)
		}
		last = info.LastSeen
	}
	nodes, err := n.Ctl.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Host == nil || nodes[0].Gone {
		t.Errorf("nodes = %+v, %v, want n1 with its host", nodes, err)
	}
}

// With JetStream the node keeps its record and its processes in the
// registry; a node that stops with no process left leaves it, so it is
// not shown gone.
func TestRegistryRecordAndLeave(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:-1", JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1", Service: service.Config{Registry: &registry.Config{}}})
	ctx := testnode.Context(t)
	mp, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}

	js, err := jetstream.New(n.Conn)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, registry.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	var procs api.NodeProcesses
	await.Until(t, 5*time.Second, "n1.procs to list the process", func() bool {
		e, err := kv.Get(ctx, "n1.procs")
		return err == nil && json.Unmarshal(e.Value(), &procs) == nil && len(procs.Processes) == 1
	})
	if p := procs.Processes[0]; p.ID != mp.ID || p.Node != "n1" || p.Name != "sleeper" || p.PID != mp.PID || p.Status != "running" {
		t.Errorf("n1.procs = %+v, want %s", procs, mp.ID)
	}
	e, err := kv.Get(ctx, "n1")
	var info api.NodeInfo
	if err != nil || json.Unmarshal(e.Value(), &info) != nil || info.ID != "n1" || info.Lost {
		t.Errorf("n1 = %v, %v", e, err)
	}

	if _, err := n.Ctl.Stop(ctx, mp.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := n.Svc.Close(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"n1", "n1.procs"} {
		if _, err := kv.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
			t.Errorf("%s after a clean stop: %v, want it gone", key, err)
		}
	}
	nodes, err := n.Ctl.Nodes(ctx)
	if err != nil || len(nodes) != 0 {
		t.Errorf("nodes after n1 left = %+v, %v, want none", nodes, err)
	}
	list, err := n.Ctl.List(ctx, api.ListRequest{})
	if err != nil || len(list.Processes)+len(list.Gone)+len(list.Missing) != 0 {
		t.Errorf("list after n1 left = %+v, %v, want nothing", list, err)
	}
}

// With every node gone, nobody keeps a view of the registry: the client
// reads the bucket itself, and still shows what ran where.
func TestAllNodesGone(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:-1", JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	n := testnode.Start(t, srv, testnode.Spec{ID: "n1", Service: service.Config{Registry: &registry.Config{}}})
	ctx := testnode.Context(t)
	mp, err := n.Ctl.Spawn(ctx, "", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n.Die(t)

	var list control.ListResult
	await.Until(t, 5*time.Second, "list to show n1 gone", func() bool {
		list, err = n.Ctl.List(ctx, api.ListRequest{})
		return err == nil && len(list.Gone) == 1
	})
	if list.Gone[0] != "n1" || len(list.Processes) != 1 || list.Processes[0].ID != mp.ID || list.Processes[0].Status != api.StatusUnknown {
		t.Errorf("list = %+v, want n1 gone with %s unknown", list, mp.ID)
	}
	nodes, err := n.Ctl.Nodes(ctx)
	if err != nil || len(nodes) != 1 || !nodes[0].Gone || nodes[0].Running != 1 {
		t.Errorf("nodes = %+v, %v, want n1 gone with 1 running", nodes, err)
	}
	if _, err := n.Ctl.Stop(ctx, mp.ID, ""); !errors.Is(err, control.ErrUnreachable) || !strings.Contains(err.Error(), `node "n1" is unreachable`) {
		t.Errorf("stop of n1's process: %v, want ErrUnreachable naming n1", err)
	}
	if _, err := n.Ctl.StopAll(ctx, "", ""); !errors.Is(err, control.ErrUnreachable) || !strings.Contains(err.Error(), `cannot stop 1 process on node "n1"`) {
		t.Errorf("stop --all: %v, want ErrUnreachable for n1's process", err)
	}
}

// Without any registry (no JetStream), three nodes know each other from
// their heartbeats alone: a node that dies is declared lost exactly once,
// its last processes show unknown from the others, and a request to one
// of them fails as unreachable.
func TestLossFromHeartbeatsAlone(t *testing.T) {
	srv := testnode.StartServer(t, false)
	nodes := map[string]*testnode.Node{}
	for _, id := range []string{"a", "b", "c"} {
		nodes[id] = testnode.Start(t, srv, testnode.Spec{ID: id})
	}
	a, b := nodes["a"], nodes["b"]
	ctx := testnode.Context(t)
	mp, err := a.Ctl.Spawn(ctx, "b", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Every node learns b's new process from b's heartbeat (its version
	// changed) and asks b for the list.
	for _, id := range []string{"a", "c"} {
		await.Until(t, 5*time.Second, id+" to know b's process", func() bool {
			v, ok := nodes[id].Svc.RegistryView(api.RegistryRequest{Processes: api.ProcessesAll})
			for _, e := range v.Nodes {
				for _, p := range e.Processes {
					if ok && e.Info.ID == "b" && p.ID == mp.ID {
						return true
					}
				}
			}
			return false
		})
	}
	watcher := testnode.Connect(t, srv.ClientURL())
	lost, err := watcher.SubscribeSync(bus.SubjectNodeLost)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	b.Die(t)
	died := time.Now()
	m, err := lost.NextMsgWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var nl api.NodeLost
	if json.Unmarshal(m.Data, &nl); nl.Node != "b" {
		t.Fatalf("node_lost %s", m.Data)
	}
	t.Logf("b declared lost %v after it died (3 heartbeats of 100ms)", time.Since(died).Round(time.Millisecond))
	list, err := a.Ctl.List(ctx, api.ListRequest{})
	if err != nil || len(list.Gone) != 1 || len(list.Processes) != 1 || list.Processes[0].Status != api.StatusUnknown {
		t.Errorf("list from a = %+v, %v, want b gone and its process unknown", list, err)
	}
	if _, err := a.Ctl.Stop(ctx, mp.ID, ""); !errors.Is(err, control.ErrUnreachable) {
		t.Errorf("stop of b's process: %v, want unreachable", err)
	}
	// A second announcement would come within a few checks.
	if m, err := lost.NextMsg(5 * 100 * time.Millisecond); err == nil {
		t.Errorf("a second process.node_lost: %s from %s", m.Data, m.Header.Get(bus.HeaderNode))
	}
}

// A loss is announced once, live as well as in the stream, at the default
// interval: the node next in line has seen the smallest's announcement
// before its own turn comes, even when announcements take a while to reach
// the others (20 ms here, as across a route or two). The survivors are
// started where their checks used to let the first two in line announce
// at the same check (checks every quarter second, each next node's turn a
// fifth of a second later): a and b then both published process.node_lost
// for d.
func TestLossAnnouncedOnce(t *testing.T) {
	const interval = registry.DefaultHeartbeatInterval
	srv := testnode.StartServer(t, false)
	watcher := testnode.Connect(t, srv.ClientURL())
	lost, err := watcher.SubscribeSync(bus.SubjectNodeLost)
	if err != nil {
		t.Fatal(err)
	}
	beats, err := watcher.SubscribeSync(bus.NodeHeartbeatSubject("d"))
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	start := func(id string) (*presence.Announcer, *nats.Conn) {
		nc := testnode.Connect(t, srv.ClientURL())
		started := time.Now()
		a := presence.New(nc, presence.Config{NodeID: id, Interval: interval,
			Describe: func() (api.NodeInfo, []api.ProcessSummary) {
				return api.NodeInfo{ID: id, StartedAt: started, IntervalMs: interval.Milliseconds(), LastSeen: time.Now()}, nil
			},
			PublishLifecycle: func(m *nats.Msg) error {
				time.Sleep(20 * time.Millisecond) // on its way to the other nodes
				return nc.PublishMsg(m)
			},
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
		a.Start()
		t.Cleanup(a.Stop)
		return a, nc
	}
	nextBeat := func() time.Time {
		t.Helper()
		if _, err := beats.NextMsg(2 * interval); err != nil {
			t.Fatal("no heartbeat from d:", err)
		}
		return time.Now()
	}

	d, dConn := start("d")
	nextBeat() // the one Start publishes
	beat := nextBeat()
	// Start the survivors so that their checks (every quarter second
	// before the fix) come 220 ms after d's heartbeats, modulo a quarter
	// second. This places the phase, it waits for nothing.
	time.Sleep(time.Until(beat.Add(220 * time.Millisecond)))
	survivors := map[string]*presence.Announcer{}
	conns := map[string]*nats.Conn{}
	for _, id := range []string{"a", "b", "c"} {
		survivors[id], conns[id] = start(id)
	}
	lastBeat := nextBeat()
	for id, a := range survivors {
		await.Until(t, interval/2, id+" to see d", func() bool { return slices.Contains(a.Alive(), "d") })
	}
	d.Stop() // d vanishes, as in a crash
	dConn.Close()

	m, err := lost.NextMsg(registry.GoneAfter(interval.Milliseconds()) + 2*interval)
	if err != nil {
		t.Fatal("no process.node_lost:", err)
	}
	var nl api.NodeLost
	if err := json.Unmarshal(m.Data, &nl); err != nil || nl.Node != "d" {
		t.Fatalf("node_lost %s", m.Data)
	}
	t.Logf("%s announced d lost %v after its last heartbeat (the bound: 3 intervals + 0.5 s = %v)",
		m.Header.Get(bus.HeaderNode), time.Since(lastBeat).Round(time.Millisecond), 3*interval+500*time.Millisecond)

	// Once every survivor knows d lost, none announces it any more: stop
	// them (Stop waits for an announcement under way) and count what
	// reached the watcher.
	for id, a := range survivors {
		await.Until(t, 2*interval, id+" to know d lost", func() bool { return lostIn(a, "d") })
	}
	for id, a := range survivors {
		a.Stop()
		if err := conns[id].Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := lost.NextMsg(0)
		if err != nil {
			break
		}
		t.Errorf("a second process.node_lost: %s from %s", m.Data, m.Header.Get(bus.HeaderNode))
	}
}

// lostIn reports whether a's view has node id lost.
func lostIn(a *presence.Announcer, id string) bool {
	v, ok := a.View(api.RegistryRequest{})
	for _, e := range v.Nodes {
		if ok && e.Info.ID == id {
			return e.Info.Lost
		}
	}
	return false
}

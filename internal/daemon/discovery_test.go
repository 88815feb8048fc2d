package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/config"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/daemon"
	"github.com/corral-run/corral/internal/natstest"
	"github.com/corral-run/corral/internal/testchild"
)

// fabricBeat is the nodes' heartbeat interval in the cluster tests.
const fabricBeat = 100 * time.Millisecond

// fabricNode is a whole node (corrald) of a test cluster.
type fabricNode struct {
	d   *daemon.Daemon
	ctl *control.Control // on the node's own connection
}

// startFabricNode starts node id on the NATS server at url, keeping its
// state in dataDir, and stops it (stopping its children) when the test
// ends unless the test closed it before.
func startFabricNode(t *testing.T, url, id, dataDir, labels, extra string) *fabricNode {
	t.Helper()
	cfg := parseConfig(t, fmt.Sprintf(`
[node]
id = %q
data_dir = %q
heartbeat_interval = %q
shutdown = "detach"
[node.labels]
%s
[nats]
url = %q
[processes.sleeper]
command = "sleep"
args = ["60"]
stop_timeout = "2s"
%s
`, id, dataDir, fabricBeat, labels, url, extra))
	d := startDaemon(t, cfg, slog.LevelWarn)
	// Runs before startDaemon's close: no orphans once the test is over.
	t.Cleanup(func() { cfg.Node.Shutdown = config.ShutdownStop })
	return &fabricNode{d: d, ctl: control.New(d.Conn())}
}

// msgLog gathers the messages of a subject.
type msgLog struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func collectMsgs(t *testing.T, nc *nats.Conn, subject string) *msgLog {
	t.Helper()
	c := &msgLog{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *msgLog) all() []*nats.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// Three nodes on one NATS server with JetStream: discovery with labels,
// placement, a cluster-wide ps and control from any node, events from
// every node; then node b dies (its children left running): it is shown
// gone, its processes unknown, requests for them fail fast naming it, and
// exactly one surviving node announces the loss; b comes back, re-adopts
// its children and they are listed running again.
func TestManyHostsOneFabric(t *testing.T) {
	ns := natstest.Start(t)
	dirB := testchild.ShortTempDir(t)
	const timeout = 5 * time.Second
	a := startFabricNode(t, ns.URL(), "a", testchild.ShortTempDir(t), `zone = "eu"`, `
[processes.encoder]
command = "sleep"
args = ["60"]`)
	b := startFabricNode(t, ns.URL(), "b", dirB, "zone = \"us\"\ngpu = \"yes\"", "")
	c := startFabricNode(t, ns.URL(), "c", testchild.ShortTempDir(t), `zone = "us"`, "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, n := range []*fabricNode{a, b, c} {
		n.ctl = control.New(n.d.Conn(), control.WithTimeout(timeout))
	}
	events := collectMsgs(t, a.d.Conn(), bus.SubjectAll)
	watcher, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watcher.Close)
	lost := collectMsgs(t, watcher, bus.SubjectNodeLost)

	// Discovery: three nodes with their labels and hosts.
	nodes, err := c.ctl.Nodes(ctx)
	if err != nil || len(nodes) != 3 {
		t.Fatalf("nodes = %+v, %v, want a, b and c", nodes, err)
	}
	wantLabels := []string{"zone=eu", "gpu=yes,zone=us", "zone=us"}
	for i, n := range nodes {
		if n.ID != []string{"a", "b", "c"}[i] || control.LabelSelector(n.Labels) != wantLabels[i] || n.Gone ||
			n.IntervalMs != fabricBeat.Milliseconds() || n.Host == nil || n.Host.MemTotalBytes == 0 {
			t.Errorf("node %d = %+v, want %s with labels %s, alive, with its host", i, n, []string{"a", "b", "c"}[i], wantLabels[i])
		}
	}

	// Placement: c runs one process, so zone=us picks b, the one with
	// the fewest running.
	if _, err := a.ctl.Spawn(ctx, "c", "sleeper", api.SpawnRequest{}); err != nil {
		t.Fatal(err)
	}
	// Placement reads one node's view of the counts the heartbeats carry
	// (c sends one early when its processes change): wait until every
	// node's view has c's.
	await.Until(t, 5*time.Second, "every node to see c running one process", func() bool {
		for _, n := range []*fabricNode{a, b, c} {
			seen := false
			for _, e := range n.d.RegistryView().Nodes {
				seen = seen || (e.Info.ID == "c" && e.Info.Running == 1)
			}
			if !seen {
				return false
			}
		}
		return true
	})
	onB, err := a.ctl.SpawnAt(ctx, "sleeper", control.Placement{Labels: map[string]string{"zone": "us"}}, api.SpawnRequest{})
	if err != nil || onB.Node != "b" {
		t.Fatalf("spawn by zone=us = %+v, %v, want it on b (fewest running)", onB, err)
	}
	gpu, err := c.ctl.SpawnAt(ctx, "sleeper", control.Placement{Labels: map[string]string{"gpu": "yes"}}, api.SpawnRequest{})
	if err != nil || gpu.Node != "b" {
		t.Fatalf("spawn by gpu=yes = %+v, %v, want it on b", gpu, err)
	}
	start := time.Now()
	_, err = a.ctl.SpawnAt(ctx, "sleeper", control.Placement{Labels: map[string]string{"zone": "mars"}}, api.SpawnRequest{})
	if !errors.Is(err, control.ErrNotFound) || !strings.Contains(err.Error(), "no node has labels zone=mars") {
		t.Errorf("spawn by zone=mars: %v, want ErrNotFound saying no node has the labels", err)
	}
	_, err = a.ctl.SpawnAt(ctx, "encoder", control.Placement{Labels: map[string]string{"zone": "us"}}, api.SpawnRequest{})
	if !errors.Is(err, control.ErrNotFound) || !strings.Contains(err.Error(), "no node with labels zone=us defines it (nodes with those labels: b, c)") {
		t.Errorf("spawn of encoder by zone=us: %v, want ErrNotFound naming b and c", err)
	}
	_, err = a.ctl.Spawn(ctx, "", "nope", api.SpawnRequest{})
	if !errors.Is(err, control.ErrNotFound) {
		t.Errorf("spawn of a name nobody defines: %v", err)
	}
	if d := time.Since(start); d >= timeout {
		t.Errorf("three refused spawns took %v, the timeout is %v", d, timeout)
	} else {
		t.Logf("three refused spawns took %v", d)
	}

	// ps from any node's connection: every process, every node, at once.
	for _, n := range []*fabricNode{a, b, c} {
		start := time.Now()
		list, err := n.ctl.List(ctx, api.ListRequest{})
		d := time.Since(start)
		if err != nil || strings.Join(list.Nodes, ",") != "a,b,c" || len(list.Processes) != 3 || len(list.Missing)+len(list.Gone) != 0 {
			t.Errorf("list = %+v, %v, want the 3 processes of a, b and c", list, err)
		}
		if d >= timeout/2 {
			t.Errorf("list took %v: it should not wait once every node answered", d)
		}
		t.Logf("list took %v", d)
	}

	// Control from any node: c's connection stops a process of b.
	stopped, err := c.ctl.Stop(ctx, gpu.ID, "")
	if err != nil || stopped.Status != "stopped" || stopped.Node != "b" {
		t.Errorf("stop of b's process from c = %+v, %v", stopped, err)
	}

	// Events of every node reach a subscriber on any node, with their
	// Corral-Node.
	await.Until(t, 5*time.Second, "process.spawned of b's process on a's connection", func() bool {
		for _, m := range events.all() {
			if m.Subject == bus.SubjectSpawned && m.Header.Get(bus.HeaderProcessID) == onB.ID {
				return m.Header.Get(bus.HeaderNode) == "b"
			}
		}
		return false
	})

	// b dies, leaving its child running.
	closeCtx, cancelClose := context.WithTimeout(ctx, 20*time.Second)
	if err := b.d.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	cancelClose()
	died := time.Now()
	slack := 2 * time.Second
	took := await.Until(t, registry.MissedHeartbeats*fabricBeat+slack, "b shown gone", func() bool {
		nodes, err := a.ctl.Nodes(ctx)
		return err == nil && len(nodes) == 3 && nodes[1].ID == "b" && nodes[1].Gone
	})
	t.Logf("b shown gone %v after it died (%d heartbeats of %v)", took, registry.MissedHeartbeats, fabricBeat)

	start = time.Now()
	list, err := c.ctl.List(ctx, api.ListRequest{})
	if d := time.Since(start); d >= timeout/2 {
		t.Errorf("list with b gone took %v", d)
	}
	if err != nil || strings.Join(list.Nodes, ",") != "a,c" || strings.Join(list.Gone, ",") != "b" || strings.Join(list.Missing, ",") != "b" {
		t.Fatalf("list with b gone = %+v, %v", list, err)
	}
	var unknown []string
	for _, p := range list.Processes {
		if p.Node == "b" {
			if p.Status != api.StatusUnknown {
				t.Errorf("b's process %s is %s, want unknown", p.ID, p.Status)
			}
			unknown = append(unknown, p.ID)
		}
	}
	if strings.Join(unknown, ",") != onB.ID {
		t.Errorf("b's processes listed: %v, want %s", unknown, onB.ID)
	}

	start = time.Now()
	_, err = a.ctl.Get(ctx, onB.ID)
	if d := time.Since(start); d >= timeout/2 {
		t.Errorf("get of b's process took %v: not fast", d)
	}
	if !errors.Is(err, control.ErrUnreachable) || !strings.Contains(err.Error(), `node "b" is unreachable`) {
		t.Errorf("get of b's process = %v, want ErrUnreachable naming b", err)
	}

	// Exactly one process.node_lost {node: b}, from a surviving node.
	await.Until(t, 5*time.Second, "process.node_lost", func() bool { return len(lost.all()) > 0 })
	t.Logf("process.node_lost %v after b died", time.Since(died))
	// Absence cannot be awaited: give every survivor a few more checks
	// of b (one each half interval) to announce it again, wrongly.
	quiet := time.NewTimer(10 * fabricBeat)
	<-quiet.C
	msgs := lost.all()
	if len(msgs) != 1 {
		t.Fatalf("%d process.node_lost messages, want 1", len(msgs))
	}
	var payload api.NodeLost
	if err := json.Unmarshal(msgs[0].Data, &payload); err != nil || payload.Node != "b" {
		t.Errorf("process.node_lost payload %s", msgs[0].Data)
	}
	if from := msgs[0].Header.Get(bus.HeaderNode); from != "a" && from != "c" {
		t.Errorf("process.node_lost published by %q, want a or c", from)
	}

	// b comes back on the same data directory and re-adopts its child.
	b = startFabricNode(t, ns.URL(), "b", dirB, "zone = \"us\"\ngpu = \"yes\"", "")
	nodes, err = a.ctl.Nodes(ctx)
	if err != nil || len(nodes) != 3 || nodes[1].ID != "b" || nodes[1].Gone || nodes[1].Lost {
		t.Errorf("nodes with b back = %+v, %v", nodes, err)
	}
	list, err = a.ctl.List(ctx, api.ListRequest{})
	if err != nil || strings.Join(list.Nodes, ",") != "a,b,c" || len(list.Gone)+len(list.Missing) != 0 {
		t.Fatalf("list with b back = %+v, %v", list, err)
	}
	found := false
	for _, p := range list.Processes {
		if p.ID == onB.ID {
			found = true
			if p.Status != "running" || p.Node != "b" {
				t.Errorf("b's re-adopted process = %+v, want running on b", p)
			}
		}
	}
	if !found {
		t.Errorf("b's re-adopted process %s is not listed: %+v", onB.ID, list.Processes)
	}
	if got, err := c.ctl.Get(ctx, onB.ID); err != nil || got.Status != "running" {
		t.Errorf("get of b's re-adopted process = %+v, %v", got, err)
	}
	if len(lost.all()) != 1 {
		t.Errorf("%d process.node_lost messages after b came back, want 1", len(lost.all()))
	}
}

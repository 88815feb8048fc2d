package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/natstest"
)

// heartbeatInterval is the cluster tests' node heartbeat: a node is gone
// after three missed ones.
const heartbeatInterval = 250 * time.Millisecond

// clusterDefinitions is what every cluster node offers.
const clusterDefinitions = `
[processes.sleeper]
command = "sleep"
args = ["600"]
heartbeat_timeout = "0s"
stop_timeout = "2s"
`

// clusterNode writes a node's config: id, labels, NATS settings, and the
// cluster definitions; the node is launched by the caller.
func clusterNode(t testing.TB, id string, labels map[string]string, natsTOML string) *node {
	t.Helper()
	dataDir, err := os.MkdirTemp("", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	var lb strings.Builder
	for k, v := range labels {
		fmt.Fprintf(&lb, "%s = %q\n", k, v)
	}
	cfg := fmt.Sprintf(`
[node]
id = %q
data_dir = %q
heartbeat_interval = %q
log_level = "debug"
remote_definitions = true

[node.labels]
%s
%s
%s`, id, dataDir, heartbeatInterval.String(), lb.String(), natsTOML, clusterDefinitions)
	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "corral.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &node{id: id, cfgPath: cfgPath, dataDir: dataDir, logPath: filepath.Join(cfgDir, "corrald.log")}
}

// startEmbeddedCluster starts three nodes whose embedded servers form one
// NATS cluster (with clustered JetStream) over loopback ports, and waits
// until each sees the three alive and storing events.
func startEmbeddedCluster(t testing.TB) []*node {
	t.Helper()
	nodes := launchEmbeddedCluster(t)
	for _, n := range nodes {
		n.waitCluster(t, []string{"a", "b", "c"})
	}
	return nodes
}

// launchEmbeddedCluster starts the three nodes and does not wait.
func launchEmbeddedCluster(t testing.TB) []*node {
	t.Helper()
	ids := []string{"a", "b", "c"}
	labels := []map[string]string{{"zone": "z1"}, {"zone": "z2", "gpu": "yes"}, {"zone": "z3"}}
	ports := freePorts(t, 6)
	clientPorts, clusterPorts := ports[:3], ports[3:]
	var routes []string
	for i := range ids {
		routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i])))
	}
	nodes := make([]*node, 3)
	for i, id := range ids {
		natsTOML := fmt.Sprintf(`
[nats]
listen = "127.0.0.1:%d"

[nats.cluster]
name = "e2e"
listen = "127.0.0.1:%d"
routes = [%s]
`, clientPorts[i], clusterPorts[i], strings.Join(routes, ", "))
		n := clusterNode(t, id, labels[i], natsTOML)
		n.port, n.url = clientPorts[i], fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i])
		nodes[i] = n
	}
	// All three start together: the first JetStream meta leader election
	// needs every configured route up.
	for _, n := range nodes {
		n.start(t)
	}
	return nodes
}

// nodeView is what the tests read of corralctl nodes --json.
type nodeView struct {
	ID      string            `json:"id"`
	Labels  map[string]string `json:"labels"`
	Gone    bool              `json:"gone"`
	Durable bool              `json:"durable"`
}

// waitCluster waits until n's corralctl sees every node in ids alive and
// durable (JetStream stores the events).
func (n *node) waitCluster(t testing.TB, ids []string) {
	t.Helper()
	var out string
	var err error
	if !await.Poll(waitReady, func() bool { // polling the CLI: there is nothing to wait on
		out, err = n.runCtl("--timeout", "2s", "nodes", "--json")
		var nodes []nodeView
		if err != nil || json.Unmarshal([]byte(out), &nodes) != nil {
			return false
		}
		var alive []string
		for _, v := range nodes {
			if !v.Gone && v.Durable {
				alive = append(alive, v.ID)
			}
		}
		slices.Sort(alive)
		return slices.Equal(alive, ids)
	}) {
		t.Fatalf("node %s does not see nodes %v within %v: %v %s", n.id, ids, waitReady, err, out)
	}
}

// listResult is corralctl ps --json.
type listResult struct {
	Processes []process `json:"processes"`
	Nodes     []string  `json:"nodes"`
	Missing   []string  `json:"missing"`
}

func (n *node) ps(t testing.TB, args ...string) listResult {
	t.Helper()
	var res listResult
	decode(t, n.ctl(t, append([]string{"--json", "ps"}, args...)...), &res)
	return res
}

func (n *node) spawnOn(t testing.TB, args ...string) process {
	t.Helper()
	var p process
	decode(t, n.ctl(t, append([]string{"--json", "spawn", "sleeper"}, args...)...), &p)
	return p
}

func TestClusterSpawnPlacementAndControl(t *testing.T) {
	nodes := startEmbeddedCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]

	// A subscriber on C sees what happens on B.
	ev := watch(t, c.url)

	onB := a.spawnOn(t, "--node", "b")
	if onB.Node != "b" {
		t.Fatalf("spawn --node b landed on %q", onB.Node)
	}
	m := ev.waitFor(t, "process.spawned", onB.ID, nil)
	if got := m.Header.Get("Corral-Node"); got != "b" {
		t.Errorf("Corral-Node %q on an event of b's process, seen from c", got)
	}
	byLabel := a.spawnOn(t, "--label", "gpu=yes")
	if byLabel.Node != "b" {
		t.Errorf("spawn --label gpu=yes landed on %q, want b", byLabel.Node)
	}
	// The fewest running wins: a and c run nothing, b runs two.
	spread := a.spawnOn(t, "--label", "zone=z1")
	if spread.Node != "a" {
		t.Errorf("spawn --label zone=z1 landed on %q", spread.Node)
	}
	anyNode := c.spawnOn(t)
	if anyNode.Node == "" {
		t.Errorf("spawn without placement: %+v", anyNode)
	}
	if out, err := a.runCtl("spawn", "sleeper", "--label", "zone=mars"); err == nil || !strings.Contains(err.Error(), "zone=mars") {
		t.Errorf("spawn with a selector nobody matches: %v %s", err, out)
	}
	if out, err := a.runCtl("spawn", "nothing-defines-this"); err == nil || !strings.Contains(err.Error(), "no node defines") {
		t.Errorf("spawn of an undefined name: %v %s", err, out)
	}

	// ps from any node shows every process.
	want := []string{onB.ID, byLabel.ID, spread.ID, anyNode.ID}
	slices.Sort(want)
	for _, n := range nodes {
		res := n.ps(t)
		var ids []string
		for _, p := range res.Processes {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) || len(res.Missing) != 0 {
			t.Errorf("ps from %s: %v (missing %v), want %v", n.id, ids, res.Missing, want)
		}
	}

	// get and stop from C reach B.
	var got process
	decode(t, c.ctl(t, "--json", "get", onB.ID), &got)
	if got.Node != "b" || got.Status != "running" {
		t.Errorf("get from c: %+v", got)
	}
	c.ctl(t, "stop", onB.ID)
	ev.waitFor(t, "process.stopped", onB.ID, nil)

	// stop --all --name stops them everywhere.
	a.ctl(t, "stop", "--all", "--name", "sleeper")
	if res := b.ps(t); len(res.Processes) != 0 {
		t.Errorf("processes left after stop --all: %+v", res.Processes)
	}
}

// A node lost in the cluster's first second, before the registry's
// JetStream stream has a leader, is declared lost like any other: from
// the heartbeats alone.
func TestNodeLossRightAfterFormation(t *testing.T) {
	nodes := launchEmbeddedCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	var onB process
	if !await.Poll(waitReady, func() bool { // as soon as a can place on b
		out, err := a.runCtl("--json", "spawn", "sleeper", "--node", "b")
		return err == nil && json.Unmarshal([]byte(out), &onB) == nil
	}) {
		t.Fatal("a could not spawn on b")
	}
	waitKnown(t, a.url, "b", onB.ID, "a", "c")
	ev := watch(t, a.url)
	formed := time.Now()
	b.kill9(t)
	ev.waitFor(t, "process.node_lost", "", func(p map[string]any) bool { return p["node"] == "b" })
	t.Logf("b, killed as soon as the cluster could place on it, was declared lost %v later (heartbeat interval %v)",
		time.Since(formed).Round(time.Millisecond), heartbeatInterval)
	for _, n := range []*node{a, c} {
		var res listResult
		if !await.Poll(5*time.Second, func() bool {
			res = n.ps(t)
			for _, p := range res.Processes {
				if p.ID == onB.ID {
					return p.Status == "unknown"
				}
			}
			return false
		}) {
			t.Errorf("ps from %s does not show b's process unknown: %+v", n.id, res)
		}
	}
	if _, err := c.runCtl("stop", onB.ID); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("stop of b's process: %v, want unreachable", err)
	}
	time.Sleep(3 * heartbeatInterval) // a second announcement would come within a few checks
	if n := ev.lostAnnouncements("b"); n != 1 {
		t.Errorf("%d process.node_lost for b, want exactly 1", n)
	}
}

func TestClusterNodeLoss(t *testing.T) {
	nodes := startEmbeddedCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ev := watch(t, c.url)
	onB := a.spawnOn(t, "--node", "b")
	ev.waitFor(t, "process.spawned", onB.ID, nil)
	// A node writes its process list to the registry at most once per
	// heartbeat interval: wait for the write that lists onB before the crash.
	waitRegistered(t, a.url, "b", onB.ID)

	b.kill9(t)
	lost := time.Now()
	// Within three heartbeats (plus the time to notice: a registry read can
	// wait out a JetStream leader election when b led it), b is gone.
	var res listResult
	if !await.Poll(3*heartbeatInterval+15*time.Second, func() bool {
		res = a.ps(t)
		for _, p := range res.Processes {
			if p.ID == onB.ID && p.Status == "unknown" {
				return slices.Contains(res.Missing, "b")
			}
		}
		return false
	}) {
		t.Fatalf("ps does not report b gone %v after its loss: %+v", time.Since(lost), res)
	}
	t.Logf("b reported gone %v after kill -9", time.Since(lost).Round(time.Millisecond))
	// Control requests to b's processes fail fast, naming b.
	start := time.Now()
	out, err := c.runCtl("--timeout", "5s", "get", onB.ID)
	if err == nil || !strings.Contains(err.Error(), `node "b" is unreachable`) {
		t.Errorf("get of a process of a lost node: %v %s", err, out)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("get of a lost node's process took %v", d)
	}
	// Exactly one survivor says so.
	ev.waitFor(t, "process.node_lost", "", func(p map[string]any) bool { return p["node"] == "b" })
	// a and c keep serving.
	onC := a.spawnOn(t, "--node", "c")
	if onC.Node != "c" {
		t.Errorf("spawn on c while b is gone: %+v", onC)
	}

	// b comes back and re-adopts its child.
	b2 := b.restartCluster(t)
	a.waitCluster(t, []string{"a", "b", "c"})
	var got process
	decode(t, a.ctl(t, "--json", "get", onB.ID), &got)
	if got.Status != "running" || got.PID != onB.PID || got.Node != "b" {
		t.Errorf("after b's restart: %+v, want running with pid %d", got, onB.PID)
	}
	if n := ev.lostAnnouncements("b"); n != 1 {
		t.Errorf("%d process.node_lost for b, want exactly 1", n)
	}
	// JetStream history survived b's loss: b's spawn, stored while b was
	// up, is still in the (replicated) stream.
	found := false
	readStream(t, c.url, "process.spawned", func(m jetstream.Msg) {
		found = found || m.Headers().Get("Corral-Process-Id") == onB.ID
	})
	if !found {
		t.Errorf("b's process.spawned for %s is not in the stream after b's loss", onB.ID)
		dumpStream(t, c.url)
	}
	b2.ctl(t, "stop", "--all")
}

// restartCluster starts b again on its config, data dir and ports.
func (n *node) restartCluster(t testing.TB) *node {
	t.Helper()
	m := &node{id: n.id, port: n.port, url: n.url, cfgPath: n.cfgPath, dataDir: n.dataDir, logPath: n.logPath + ".2"}
	m.start(t)
	return m
}

func TestExternalCluster(t *testing.T) {
	srv := natstest.Start(t)
	var nodes []*node
	for _, id := range []string{"a", "b", "c"} {
		n := clusterNode(t, id, map[string]string{"role": id}, fmt.Sprintf("[nats]\nurl = %q\n", srv.URL()))
		n.url = srv.URL()
		n.start(t)
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		n.waitCluster(t, []string{"a", "b", "c"})
	}
	var want []string
	for _, n := range nodes {
		p := nodes[0].spawnOn(t, "--node", n.id)
		want = append(want, p.ID)
	}
	slices.Sort(want)
	res := nodes[2].ps(t)
	var ids []string
	for _, p := range res.Processes {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Errorf("ps over an external cluster: %v, want %v", ids, want)
	}
	nodes[1].ctl(t, "stop", "--all")
}

// lostAnnouncements counts the process.node_lost announcements of node
// id: distinct pairs of announcing node and message id. The id is the
// same whichever node announces, so two nodes announcing count twice; a
// lifecycle message the stream has not confirmed is sent again by its
// node with its id (stored once, but live subscribers may see it again),
// and counts once.
func (e *events) lostAnnouncements(id string) int {
	seen := map[[2]string]bool{}
	for _, m := range e.all("process.node_lost") {
		var p map[string]any
		if json.Unmarshal(m.Data, &p) == nil && p["node"] == id {
			seen[[2]string{m.Header.Get(bus.HeaderNode), m.Header.Get(bus.HeaderMsgID)}] = true
		}
	}
	return len(seen)
}

// all returns the messages seen on subject.
func (e *events) all(subject string) []*nats.Msg {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*nats.Msg
	for _, m := range e.msgs {
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func dumpStream(t testing.TB, url string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.Stream(ctx, "CORRAL_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	t.Logf("stream state %+v cluster %+v", info.State, info.Cluster)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Logf("seq %d: %v", seq, err)
			continue
		}
		t.Logf("stored %d %s %s %s", seq, m.Subject, m.Header.Get("Corral-Node"), m.Data)
	}
}

// waitRegistered waits until node's process list in the node registry
// lists process id, watching the registry's bucket.
func waitRegistered(t testing.TB, url, node, id string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), waitEvent)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, registry.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, registry.ProcsKey(node))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for {
		select {
		case e := <-w.Updates():
			var np api.NodeProcesses
			if e == nil || json.Unmarshal(e.Value(), &np) != nil {
				continue
			}
			for _, p := range np.Processes {
				if p.ID == id {
					return
				}
			}
		case <-ctx.Done():
			t.Fatalf("the registry never listed %s on node %s", id, node)
		}
	}
}

// waitKnown waits until each of the nodes named in by lists process id
// among node's processes in its view of the cluster (corral.registry,
// answered by one node at a time).
func waitKnown(t testing.TB, url, node, id string, by ...string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	knows := map[string]bool{}
	if !await.Poll(waitEvent, func() bool {
		m, err := nc.Request("corral.registry", []byte(`{"processes":"all"}`), time.Second)
		var v api.RegistryView
		if err != nil || json.Unmarshal(m.Data, &v) != nil {
			return false
		}
		for _, e := range v.Nodes {
			for _, p := range e.Processes {
				if e.Info.ID == node && p.ID == id {
					knows[v.Node] = true
				}
			}
		}
		for _, n := range by {
			if !knows[n] {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("not every node of %v knows %s's process %s: %v", by, node, id, knows)
	}
}

package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/await"
	"github.com/corral-run/corral/internal/daemon"
	"github.com/corral-run/corral/internal/testchild"
)

// sleeperDefinition is what every node of the topology tests offers.
const sleeperDefinition = `
[processes.sleeper]
command = "sleep"
args = ["60"]
stop_timeout = "2s"
`

// loopbackPort returns a loopback TCP port that was free a moment ago.
func loopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startTopologyNode starts node id with an embedded server configured by
// natsTOML (the [nats] table and its sub-tables) and the sleeper
// definition, and closes it (stopping its children) when the test ends.
func startTopologyNode(t *testing.T, id, natsTOML string) *daemon.Daemon {
	t.Helper()
	return startDaemon(t, parseConfig(t, fmt.Sprintf(`
[node]
id = %q
data_dir = %q
%s
%s`, id, testchild.ShortTempDir(t), natsTOML, sleeperDefinition)), slog.LevelWarn)
}

// connectTo is a TCP client of a node's bus, as any client on the network
// would be.
func connectTo(t *testing.T, d *daemon.Daemon) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(d.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitDelivery publishes on subject from pub until sub's log shows the
// message: interest crosses routes and leaf connections asynchronously,
// so the first publications may find no route to the subscriber yet.
func waitDelivery(t *testing.T, pub *nats.Conn, got *msgLog, subject string, within time.Duration) *nats.Msg {
	t.Helper()
	probe := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	var found *nats.Msg
	next := time.Now()
	await.Until(t, within, "delivery of "+subject, func() bool {
		for _, m := range got.all() {
			if m.Subject == subject && string(m.Data) == probe {
				found = m
				return true
			}
		}
		if time.Now().After(next) {
			if err := pub.Publish(subject, []byte(probe)); err != nil {
				t.Fatalf("publish %s: %v", subject, err)
			}
			next = time.Now().Add(100 * time.Millisecond)
		}
		return false
	})
	return found
}

// spawnedOf returns the process.spawned message of process id in msgs.
func spawnedOf(msgs []*nats.Msg, id string) *nats.Msg {
	for _, m := range msgs {
		if m.Subject == bus.SubjectSpawned && m.Header.Get(bus.HeaderProcessID) == id {
			return m
		}
	}
	return nil
}

// Three nodes whose embedded servers form one NATS cluster with clustered
// JetStream: the event stream gets three copies, messages cross the
// routes, and any node's connection controls any node.
func TestEmbeddedCluster(t *testing.T) {
	ids := []string{"a", "b", "c"}
	clientPorts, clusterPorts := make([]int, len(ids)), make([]int, len(ids))
	routes := make([]string, len(ids))
	for i := range ids {
		clientPorts[i], clusterPorts[i] = loopbackPort(t), loopbackPort(t)
		routes[i] = fmt.Sprintf("%q", fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]))
	}
	nodes := make([]*daemon.Daemon, len(ids))
	for i, id := range ids {
		// A member does not wait for the others (its JetStream comes up
		// once they are there), so they start one after the other.
		nodes[i] = startTopologyNode(t, id, fmt.Sprintf(`
[nats]
listen = "127.0.0.1:%d"
jetstream = true
[nats.cluster]
name = "corral-test"
listen = "127.0.0.1:%d"
routes = [%s]
`, clientPorts[i], clusterPorts[i], strings.Join(routes, ", ")))
	}
	b, c := nodes[1], nodes[2]
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// The event stream, set up in the background once the cluster has a
	// JetStream leader, with a copy on every member.
	ncC := connectTo(t, c)
	js, err := jetstream.New(ncC)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	took := await.Until(t, 45*time.Second, "stream "+bus.StreamName+" with 3 replicas and a leader", func() bool {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := js.Stream(reqCtx, bus.StreamName)
		if err != nil {
			return false
		}
		info, err = st.Info(reqCtx)
		if err != nil || info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
		return true
	})
	peers := []string{info.Cluster.Leader}
	for _, p := range info.Cluster.Replicas {
		peers = append(peers, p.Name)
	}
	t.Logf("stream %s: leader %s, copies on %v, after %v", bus.StreamName, info.Cluster.Leader, peers, took)
	if slices.Sort(peers); !slices.Equal(peers, ids) {
		t.Errorf("stream copies on %v, want a, b and c", peers)
	}
	if info.Cluster.Name != "corral-test" {
		t.Errorf("stream cluster %q, want corral-test", info.Cluster.Name)
	}

	// A message published on b reaches a subscriber on c.
	onC := collectMsgs(t, ncC, bus.SubjectAll)
	m := waitDelivery(t, b.Conn(), onC, "process.test.x", 10*time.Second)
	if m.Sub.Subject != bus.SubjectAll {
		t.Errorf("delivered on subscription %q", m.Sub.Subject)
	}

	// c's connection spawns on b.
	ctl := control.New(ncC, control.WithTimeout(10*time.Second))
	mp, err := ctl.Spawn(ctx, "b", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatalf("spawn on b from c: %v", err)
	}
	if mp.Node != "b" || mp.Name != "sleeper" || mp.PID <= 0 || mp.Status != "running" {
		t.Errorf("spawned %+v, want sleeper running on b", mp)
	}
	if got, ok := b.Supervisor().Get(mp.ID); !ok || got.PID != mp.PID {
		t.Errorf("b's supervisor has %+v %v, want %s with pid %d", got, ok, mp.ID, mp.PID)
	}
	await.Until(t, 10*time.Second, "process.spawned of b's process on c", func() bool {
		return spawnedOf(onC.all(), mp.ID) != nil
	})
	if m := spawnedOf(onC.all(), mp.ID); m.Header.Get(bus.HeaderNode) != "b" {
		t.Errorf("process.spawned from node %q, want b", m.Header.Get(bus.HeaderNode))
	}

	// Its process.spawned is stored in the replicated stream, read back
	// through c.
	st, err := js.Stream(ctx, bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var stored *jetstream.RawStreamMsg
	await.Until(t, 10*time.Second, "process.spawned stored in "+bus.StreamName, func() bool {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		stored, err = st.GetLastMsgForSubject(reqCtx, bus.SubjectSpawned)
		return err == nil && stored.Header.Get(bus.HeaderProcessID) == mp.ID
	})
	if stored.Header.Get(bus.HeaderNode) != "b" || !strings.Contains(string(stored.Data), fmt.Sprintf(`"processId":%q`, mp.ID)) ||
		!strings.Contains(string(stored.Data), `"node":"b"`) {
		t.Errorf("stored process.spawned: headers %v, data %s", stored.Header, stored.Data)
	}
}

// A hub whose embedded server accepts leaf nodes, and an edge whose
// embedded server is a leaf node of it: the hub's connection sees the
// edge as a node, controls it, and receives its events.
func TestLeafNode(t *testing.T) {
	leafPort := loopbackPort(t)
	hub := startTopologyNode(t, "hub", fmt.Sprintf(`
[nats]
listen = "127.0.0.1:%d"
[nats.leaf]
listen = "127.0.0.1:%d"
`, loopbackPort(t), leafPort))
	edge := startTopologyNode(t, "edge-1", fmt.Sprintf(`
[nats]
listen = "127.0.0.1:%d"
[nats.leaf]
remotes = ["nats-leaf://127.0.0.1:%d"]
`, loopbackPort(t), leafPort))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	ncHub := connectTo(t, hub)
	ctl := control.New(ncHub, control.WithTimeout(5*time.Second))
	var nodes []api.NodeInfo
	took := await.Until(t, 20*time.Second, "hub and edge-1 listed by the hub", func() bool {
		var err error
		nodes, err = ctl.Nodes(ctx)
		if err != nil || len(nodes) != 2 {
			return false
		}
		return nodes[0].ID == "edge-1" && !nodes[0].Gone && nodes[1].ID == "hub" && !nodes[1].Gone
	})
	t.Logf("the hub lists %s and %s after %v", nodes[0].ID, nodes[1].ID, took)

	// The hub's subscriber gets what the edge publishes.
	onHub := collectMsgs(t, ncHub, bus.SubjectAll)
	waitDelivery(t, edge.Conn(), onHub, "process.test.leaf", 10*time.Second)

	mp, err := ctl.Spawn(ctx, "edge-1", "sleeper", api.SpawnRequest{})
	if err != nil {
		t.Fatalf("spawn on edge-1 from the hub: %v", err)
	}
	if mp.Node != "edge-1" || mp.Name != "sleeper" || mp.PID <= 0 {
		t.Errorf("spawned %+v, want sleeper on edge-1", mp)
	}
	if _, ok := edge.Supervisor().Get(mp.ID); !ok {
		t.Errorf("edge-1's supervisor has no %s", mp.ID)
	}
	if _, ok := hub.Supervisor().Get(mp.ID); ok {
		t.Errorf("the hub's supervisor runs %s too", mp.ID)
	}
	await.Until(t, 10*time.Second, "edge-1's process.spawned on the hub", func() bool {
		return spawnedOf(onHub.all(), mp.ID) != nil
	})
	m := spawnedOf(onHub.all(), mp.ID)
	if m.Header.Get(bus.HeaderNode) != "edge-1" || !strings.Contains(string(m.Data), `"node":"edge-1"`) {
		t.Errorf("edge-1's process.spawned on the hub: headers %v, data %s", m.Header, m.Data)
	}
}

package desired

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/node"
)

// fakeCluster is one node, "n1", that defines "sleeper" and runs what the
// reconciler spawns on it.
type fakeCluster struct {
	mu      sync.Mutex
	running []api.ManagedProcess
	spawns  int
	missing []string // known nodes that do not answer
}

func (c *fakeCluster) Nodes(context.Context) ([]api.NodeInfo, error) {
	return []api.NodeInfo{{ID: "n1", Definitions: []string{"sleeper"}}}, nil
}

func (c *fakeCluster) List(context.Context, api.ListRequest) (control.ListResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return control.ListResult{Nodes: []string{"n1"}, Processes: append([]api.ManagedProcess(nil), c.running...),
		Missing: c.missing}, nil
}

func (c *fakeCluster) Spawn(_ context.Context, nodeID, name string, req api.SpawnRequest) (api.ManagedProcess, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spawns++
	mp := api.ManagedProcess{ID: fmt.Sprintf("proc_%d", c.spawns), Name: name, Node: nodeID, Status: api.StatusRunning,
		Service: req.Service, Instance: req.Instance}
	c.running = append(c.running, mp)
	return mp, nil
}

func (c *fakeCluster) Stop(_ context.Context, id, _ string) (api.ManagedProcess, error) {
	return api.ManagedProcess{ID: id, Status: api.StatusStopped}, nil
}

func (c *fakeCluster) spawned() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spawns
}

// A leader whose view of the services lags behind the bucket (its watch
// stalled; here none runs) does not place the instances of a service
// deleted meanwhile: its pass reads the services again before it acts,
// and starts over. With a view that is current, the same pass places.
func TestAPassDoesNotPlaceADeletedService(t *testing.T) {
	m, kv := startBucket(t)
	cluster := &fakeCluster{}
	m.cfg.Control = cluster
	m.elect.set(true, 1) // the lease holder
	ctx := testContext(t)

	putService(t, kv, "web", 2)
	m.rereadServices(kv)
	if err := kv.Delete(ctx, servicePrefix+"web"); err != nil {
		t.Fatal(err)
	}
	m.rec.pass(ctx)
	if n := cluster.spawned(); n != 0 {
		t.Fatalf("a pass on a view behind the bucket placed %d instances of a deleted service", n)
	}
	select {
	case <-m.trigger: // it asked for the pass again, on the view read
	default:
		t.Error("a pass that read the services again did not ask to be made again")
	}
	m.rec.pass(ctx)
	if n := cluster.spawned(); n != 0 {
		t.Fatalf("the pass after catching up placed %d instances", n)
	}

	putService(t, kv, "api", 2)
	m.rereadServices(kv)
	m.rec.pass(ctx)
	if n := cluster.spawned(); n != 2 {
		t.Fatalf("a pass on a current view placed %d instances of api, want 2", n)
	}
	for _, p := range cluster.running {
		if _, k, err := node.ParseInstance(p.Instance); err != nil || p.Service != "api" || k > 1 {
			t.Errorf("placed %+v", p)
		}
	}
}

// A pass that finds a known node not answering, and not yet counted gone,
// places nothing and is made again soon, not at the next tick: the node
// is most likely being declared lost (another node announced it first),
// and its instances are to move at once.
func TestAPassWaitingForAMissingNodeIsMadeAgainSoon(t *testing.T) {
	m, kv := startBucket(t)
	cluster := &fakeCluster{missing: []string{"n2"}}
	m.cfg.Control = cluster
	m.elect.set(true, 1)
	putService(t, kv, "web", 1)
	m.rereadServices(kv)
	start := time.Now()
	m.rec.pass(testContext(t))
	if n := cluster.spawned(); n != 0 {
		t.Fatalf("a pass placed %d instances while a node did not answer", n)
	}
	select {
	case <-m.trigger:
		if took := time.Since(start); took > time.Second {
			t.Errorf("the pass was asked for again after %v, want well before the next tick", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a pass that waited for a missing node was not made again")
	}
}

// A new reconciler whose view of the services was never read (its watch
// has not caught up yet) reads them before its first pass, and acts on
// them, rather than waiting for the next reread.
func TestAFirstPassReadsTheServices(t *testing.T) {
	m, kv := startBucket(t)
	cluster := &fakeCluster{}
	m.cfg.Control = cluster
	m.elect.set(true, 1)
	putService(t, kv, "web", 1)
	m.rec.pass(testContext(t))
	if n := cluster.spawned(); n != 1 {
		t.Fatalf("a first pass, with a view never read, placed %d instances of web, want 1", n)
	}
}

package control_test

import (
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/internal/natstest"
	"github.com/corral-run/corral/internal/testnode"
)

// A Control running in a node takes the nodes from that node's own view
// (WithLocalRegistry): a node just back from a partition, which has not
// heard again from a node that is alive, may answer corral.registry, and a
// reconciler that believed it would count that node gone and place its
// service instances a second time. While the local view is not ready, the
// Control asks corral.registry.
func TestAControlInANodeUsesItsOwnView(t *testing.T) {
	srv := natstest.Start(t)
	nc := testnode.Connect(t, srv.URL())
	life := time.Now().Add(-time.Hour)
	entry := func(id string, age time.Duration) api.RegistryEntry {
		return api.RegistryEntry{Info: api.NodeInfo{ID: id, StartedAt: life, IntervalMs: 1000}, AgeMs: age.Milliseconds(), Processes: []api.ProcessSummary{}}
	}
	// Node a answers corral.list a second after nodes b and c (after the
	// read of corral.registry, however busy the machine).
	answer := func(m *nats.Msg, node string) {
		data, _ := json.Marshal(api.ListReply{Node: node, Processes: []api.ManagedProcess{}})
		_ = m.Respond(data)
	}
	sub, err := nc.Subscribe(bus.SubjectList, func(m *nats.Msg) {
		answer(m, "b")
		answer(m, "c")
		time.AfterFunc(time.Second, func() { answer(m, "a") })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// The node that answers corral.registry has not heard from a for a
	// minute: it was cut off.
	back := api.RegistryView{Node: "c", Nodes: []api.RegistryEntry{entry("a", time.Minute), entry("b", 0), entry("c", 0)}}
	reg, err := nc.Subscribe(bus.SubjectRegistry, func(m *nats.Msg) {
		data, _ := json.Marshal(back)
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unsubscribe()
	// The reconciler's node, b, hears a.
	own := api.RegistryView{Node: "b", Nodes: []api.RegistryEntry{entry("a", 0), entry("b", 0), entry("c", 0)}}
	for _, c := range []struct {
		name  string
		opts  []control.Option
		nodes []string
		gone  []string
	}{
		{"without a view of its own", nil, []string{"b", "c"}, []string{"a"}},
		{"with its node's view", []control.Option{control.WithLocalRegistry(func(api.RegistryRequest) (api.RegistryView, bool) { return own, true })},
			[]string{"a", "b", "c"}, nil},
		{"with its node's view not ready", []control.Option{control.WithLocalRegistry(func(api.RegistryRequest) (api.RegistryView, bool) { return api.RegistryView{}, false })},
			[]string{"b", "c"}, []string{"a"}},
	} {
		res, err := control.New(nc, c.opts...).List(testnode.Context(t), api.ListRequest{All: true})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(res.Nodes, c.nodes) || !slices.Equal(res.Gone, c.gone) {
			t.Errorf("%s: nodes %v, gone %v; want %v, gone %v", c.name, res.Nodes, res.Gone, c.nodes, c.gone)
		}
	}
}

// A request on corral.registry that the queue group hands to a node that
// never answers (cut off by a partition, its interest not yet gone) is
// sent again: another node's view comes, rather than none.
func TestTheRegistryIsAskedAgain(t *testing.T) {
	srv := natstest.Start(t)
	nc := testnode.Connect(t, srv.URL())
	var asked atomic.Int32
	view := api.RegistryView{Node: "z", Nodes: []api.RegistryEntry{{Info: api.NodeInfo{ID: "z"}, Processes: []api.ProcessSummary{}}}}
	sub, err := nc.QueueSubscribe(bus.SubjectRegistry, "registry", func(m *nats.Msg) {
		if asked.Add(1) == 1 {
			return // the first request goes to a node that is gone
		}
		data, _ := json.Marshal(view)
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nodes, err := control.New(nc).Nodes(testnode.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if asked.Load() < 2 || len(nodes) != 1 || nodes[0].ID != "z" {
		t.Errorf("asked %d times, nodes %+v; want a second request, and z from its answer", asked.Load(), nodes)
	}
}

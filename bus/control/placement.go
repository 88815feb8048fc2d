package control

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/nats-io/nats.go"
)

// Placement says where SpawnAt starts a process. The zero Placement means
// any node that defines the name: the queue group corral.spawn.<name>
// picks one.
type Placement struct {
	// Node, when set, is the node that must spawn the process.
	Node string
	// Labels, when set, selects the nodes whose labels include every one
	// of these: of those that define the name, the one with the fewest
	// running processes spawns it (ties are broken at random). It cannot
	// go with Node.
	Labels map[string]string
}

// LabelSelector writes labels as "k=v,k2=v2", sorted by key.
func LabelSelector(labels map[string]string) string {
	pairs := make([]string, 0, len(labels))
	for _, k := range sortedKeys(labels) {
		pairs = append(pairs, k+"="+labels[k])
	}
	return strings.Join(pairs, ",")
}

// Spawn starts a process of the named definition: on the node nodeID, or
// when nodeID is empty on any node that defines name. It is SpawnAt with
// Placement{Node: nodeID}.
func (c *Control) Spawn(ctx context.Context, nodeID, name string, req api.SpawnRequest) (api.ManagedProcess, error) {
	return c.SpawnAt(ctx, name, Placement{Node: nodeID}, req)
}

// SpawnAt starts a process of the named definition where at says. It
// fails fast, without waiting for a timeout: with an error wrapping
// ErrNotFound when no node defines name or no node matches the labels
// (the message says which), and ErrUnreachable when the node asked for
// does not answer.
func (c *Control) SpawnAt(ctx context.Context, name string, at Placement, req api.SpawnRequest) (api.ManagedProcess, error) {
	switch {
	case at.Node != "" && len(at.Labels) > 0:
		return api.ManagedProcess{}, api.Errorf(ErrBadRequest, "cannot spawn %q: give a node or labels, not both", name)
	case at.Node != "":
		return c.spawnOn(ctx, at.Node, name, req)
	case len(at.Labels) > 0:
		return c.spawnByLabels(ctx, name, at.Labels, req)
	}
	var mp api.ManagedProcess
	err := c.request(ctx, bus.SpawnSubject(name), req, &mp)
	if errors.Is(err, nats.ErrNoResponders) {
		return mp, api.Errorf(ErrNotFound, "cannot spawn %q: no node defines it", name)
	}
	if err != nil {
		return mp, explain(err, "cannot spawn %q", name)
	}
	return mp, nil
}

// spawnOn asks one node to spawn.
func (c *Control) spawnOn(ctx context.Context, nodeID, name string, req api.SpawnRequest) (api.ManagedProcess, error) {
	var mp api.ManagedProcess
	req.Name = name
	err := c.request(ctx, bus.NodeSubject(nodeID, bus.VerbSpawn), req, &mp)
	if errors.Is(err, nats.ErrNoResponders) {
		return mp, api.Errorf(ErrUnreachable, "cannot spawn %q: node %q is unreachable", name, nodeID)
	}
	if err != nil {
		return mp, explain(err, "cannot spawn %q", name)
	}
	return mp, nil
}

// spawnByLabels spawns on the live node that matches the labels, defines
// name and runs the fewest processes; if that node is gone by the time it
// is asked, on the next one.
func (c *Control) spawnByLabels(ctx context.Context, name string, labels map[string]string, req api.SpawnRequest) (api.ManagedProcess, error) {
	nodes, ok := c.candidates(ctx)
	if !ok {
		var err error
		if nodes, err = c.Nodes(ctx); err != nil {
			return api.ManagedProcess{}, fmt.Errorf("cannot spawn %q: %w", name, err)
		}
	}
	var matching []string
	var candidates []api.NodeInfo
	for _, n := range nodes {
		if n.Gone || !HasLabels(n.Labels, labels) {
			continue
		}
		matching = append(matching, n.ID)
		if slices.Contains(n.Definitions, name) {
			candidates = append(candidates, n)
		}
	}
	sel := LabelSelector(labels)
	switch {
	case len(matching) == 0:
		return api.ManagedProcess{}, api.Errorf(ErrNotFound, "cannot spawn %q: no node has labels %s", name, sel)
	case len(candidates) == 0:
		return api.ManagedProcess{}, api.Errorf(ErrNotFound, "cannot spawn %q: no node with labels %s defines it (nodes with those labels: %s)",
			name, sel, strings.Join(matching, ", "))
	}
	rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	sort.SliceStable(candidates, func(i, j int) bool { return candidates[i].Running < candidates[j].Running })
	for _, n := range candidates {
		mp, err := c.spawnOn(ctx, n.ID, name, req)
		if errors.Is(err, ErrUnreachable) && ctx.Err() == nil {
			continue // gone since Nodes: the next one
		}
		return mp, err
	}
	tried := make([]string, len(candidates))
	for i, n := range candidates {
		tried[i] = n.ID
	}
	return api.ManagedProcess{}, api.Errorf(ErrUnreachable, "cannot spawn %q: no node with labels %s is reachable (tried %s)",
		name, sel, strings.Join(tried, ", "))
}

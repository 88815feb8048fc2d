package desired

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/node"
)

// reconciler is the leader's work: one pass compares the services with
// what runs and acts on the difference.
type reconciler struct {
	m *Manager
	// complaints are the problems last logged, by service, so that a
	// pass that meets the same one again stays quiet.
	complaints map[string]string

	// idle: the last pass found no service wanted and no service's
	// process running: until a service is applied there is nothing to do.
	idle bool

	mu       sync.Mutex
	stopping map[string]bool // processes a stop was sent to, until it answers
}

// missingRetry is how soon a pass that waited for nodes that did not
// answer is made again.
const missingRetry = 100 * time.Millisecond

// slot is what runs of one instance of a service.
type slot struct {
	live []api.ManagedProcess // running, stopping, or about to restart
	held bool                 // a node stopped replacing it (restart limit)
}

// pass reconciles once. It acts only on a full view: the desired state
// read, and every node that is not gone answered (a node that is slow to
// answer could run what would otherwise be placed again).
func (r *reconciler) pass(ctx context.Context) {
	m := r.m
	wanted, asOf, ok := m.wantedAsOf()
	if !ok { // never read yet (its watch has not caught up): read them now
		if kv, err := m.bucket(); err == nil {
			_, _ = m.rereadServicesWithin(ctx, kv)
		}
		wanted, asOf, ok = m.wantedAsOf()
	}
	if !ok || len(wanted) == 0 && r.idle {
		return
	}
	view, cancel := context.WithTimeout(ctx, max(2*time.Second, 2*m.cfg.Interval))
	defer cancel()
	t0 := time.Now()
	defer func() { m.log.Debug("reconcile pass", "took", time.Since(t0)) }()
	nodes, err := m.cfg.Control.Nodes(view)
	if err != nil {
		m.log.Debug("reconcile: cannot list the nodes", "err", err)
		return
	}
	list, err := m.cfg.Control.List(view, api.ListRequest{All: true})
	if err != nil {
		m.log.Debug("reconcile: cannot list the processes", "err", err)
		return
	}
	if missing := slices.DeleteFunc(slices.Clone(list.Missing), func(n string) bool { return slices.Contains(list.Gone, n) }); len(missing) > 0 {
		// Soon lost, most likely (the pass was asked for on another node's
		// announcement of the loss, before this node's view counts the node
		// gone), or slow: look again well before the next tick.
		m.log.Debug("reconcile: waiting for nodes that did not answer", "nodes", missing)
		m.wg.Go(func() { // the Manager's: it ends with it
			t := time.NewTimer(missingRetry)
			defer t.Stop()
			select {
			case <-t.C:
				m.Poke()
			case <-m.ctx.Done():
			}
		})
		return
	}
	answered := map[string]bool{}
	for _, n := range list.Nodes {
		answered[n] = true
	}
	load := map[string]int{}            // unfinished processes by node
	slots := map[string]map[int]*slot{} // service → k → slot
	var stray []api.ManagedProcess      // live instances of no service (deleted) or beyond the count
	services := map[string]api.ServiceSpec{}
	for _, s := range wanted {
		services[s.Name] = s
	}
	for _, p := range list.Processes {
		if !answered[p.Node] { // a gone node's: replaced, and stopped if it comes back
			continue
		}
		live := !p.Status.Finished() || p.RestartPending
		if live {
			load[p.Node]++
		}
		if p.Service == "" {
			continue
		}
		svc, known := services[p.Service]
		_, k, err := node.ParseInstance(p.Instance)
		if err != nil {
			continue
		}
		if !known || k >= svc.Instances {
			if live {
				stray = append(stray, p)
			}
			continue
		}
		if slots[p.Service] == nil {
			slots[p.Service] = map[int]*slot{}
		}
		sl := slots[p.Service][k]
		if sl == nil {
			sl = &slot{}
			slots[p.Service][k] = sl
		}
		if live {
			sl.live = append(sl.live, p)
		} else if p.Held {
			sl.held = true
		}
	}
	// Before the first action, the view must not be behind the bucket
	// (Manager.behind): if the services were read again, the pass starts
	// over on what was read.
	checked := false
	mayAct := func() bool {
		if !checked {
			checked = true
			if m.behind(ctx, wanted, asOf) {
				m.Poke()
				return false
			}
		}
		return true
	}
	if len(stray) > 0 && !mayAct() {
		return
	}
	for _, p := range stray {
		r.stop(p, "it is beyond its service's count, or its service was deleted")
	}
	r.idle = len(wanted) == 0 && len(stray) == 0
	for _, svc := range wanted {
		for k := range svc.Instances {
			if !m.Leader() { // the lease moved on meanwhile: the new holder acts
				return
			}
			sl := slots[svc.Name][k]
			switch {
			case sl == nil || len(sl.live) == 0 && !sl.held:
				if !mayAct() {
					return
				}
				r.place(ctx, svc, k, nodes, answered, load, slots)
			case len(sl.live) > 1:
				if !mayAct() {
					return
				}
				// Twice: a lost node came back with its instance still
				// running. The newest stays.
				sort.Slice(sl.live, func(i, j int) bool { return sl.live[i].StartedAt.After(sl.live[j].StartedAt) })
				for _, p := range sl.live[1:] {
					r.stop(p, "its instance runs twice; the newest stays")
				}
			}
		}
	}
}

// place starts instance k of svc on the matching node with the fewest
// processes that takes it.
func (r *reconciler) place(ctx context.Context, svc api.ServiceSpec, k int, nodes []api.NodeInfo, answered map[string]bool,
	load map[string]int, slots map[string]map[int]*slot) {
	inst := node.InstanceName(svc.Name, k)
	perNode := map[string]int{}
	for _, sl := range slots[svc.Name] {
		for _, p := range sl.live {
			perNode[p.Node]++
		}
	}
	var candidates []string
	for _, n := range nodes {
		if n.Gone || !answered[n.ID] || !control.HasLabels(n.Labels, svc.Labels) || !slices.Contains(n.Definitions, svc.Process) {
			continue
		}
		if svc.MaxPerNode > 0 && perNode[n.ID] >= svc.MaxPerNode {
			continue
		}
		candidates = append(candidates, n.ID)
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		a, b := candidates[i], candidates[j]
		if load[a] != load[b] {
			return load[a] < load[b]
		}
		return a < b
	})
	var refusals []string
	for _, id := range candidates {
		sctx, cancel := context.WithTimeout(ctx, spawnWait)
		mp, err := r.m.cfg.Control.Spawn(sctx, id, svc.Process, api.SpawnRequest{Metadata: svc.Metadata, Service: svc.Name, Instance: inst})
		cancel()
		if err != nil {
			refusals = append(refusals, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		r.m.log.Info("service instance placed", "instance", inst, "on", id, "process", mp.ID)
		load[id]++
		if slots[svc.Name] == nil {
			slots[svc.Name] = map[int]*slot{}
		}
		slots[svc.Name][k] = &slot{live: []api.ManagedProcess{mp}}
		r.complain(svc.Name, "")
		return
	}
	why := fmt.Sprintf("no node with labels %s that defines %q and has room", control.LabelSelector(svc.Labels), svc.Process)
	if len(refusals) > 0 {
		why += " (" + strings.Join(refusals, "; ") + ")"
	}
	r.complain(svc.Name, fmt.Sprintf("cannot place %s: %s", inst, why))
}

// stop stops, in the background, a service's process the desired state
// no longer wants: a stop waits for the exit, which may take the
// definition's stop timeout, and the pass goes on meanwhile.
func (r *reconciler) stop(p api.ManagedProcess, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping == nil {
		r.stopping = map[string]bool{}
	}
	if r.stopping[p.ID] {
		return
	}
	r.stopping[p.ID] = true
	m := r.m
	m.log.Info("stopping a service's process", "process", p.ID, "instance", p.Instance, "node", p.Node, "why", why)
	m.wg.Go(func() {
		ctx, cancel := context.WithTimeout(m.ctx, stopWait)
		defer cancel()
		if _, err := m.cfg.Control.Stop(ctx, p.ID, ""); err != nil && !errors.Is(err, api.ErrConflict) {
			m.log.Warn("cannot stop a service's process", "process", p.ID, "instance", p.Instance, "node", p.Node, "err", err)
		}
		r.mu.Lock()
		delete(r.stopping, p.ID)
		r.mu.Unlock()
		m.Poke()
	})
}

// spawnWait bounds one spawn of a placement.
const spawnWait = 5 * time.Second

// stopWait bounds a stop: the node gives a stop at most its request
// timeout.
const stopWait = 40 * time.Second

// complain logs a service's problem once until it changes ("" clears it).
func (r *reconciler) complain(service, problem string) {
	if r.complaints == nil {
		r.complaints = map[string]string{}
	}
	if r.complaints[service] == problem {
		return
	}
	r.complaints[service] = problem
	if problem != "" {
		r.m.log.Warn("reconcile: "+problem, "service", service)
	}
}

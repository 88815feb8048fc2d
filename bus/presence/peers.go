package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The watcher: what a node with a registry knows of the other nodes.
//
// It follows the registry (every record and process list) and every
// node's heartbeat. A node is seen, by the watcher's own clock, when its
// heartbeat arrives or its record changes; one not seen for
// MissedHeartbeats of its intervals is lost, once it also fails to answer
// a request on corral.node.<node>.info: the watcher rewrites its record
// with Lost set, as a compare-and-set on the revision it saw (kv.Update).
// Of the surviving nodes that try, exactly one succeeds (the others find
// the revision moved on), and it alone publishes process.node_lost
// {node}. The lost node's next record, when it comes back, clears Lost.
//
// The watcher also answers corral.registry with what it knows: a view of
// the registry that does not need JetStream to answer now. When a node's
// server dies in an embedded JetStream cluster, the registry may not
// answer for a few seconds (its stream elects a new leader), which is when
// clients need it most.

// peerCache is the watcher's knowledge, shared with the corral.registry
// handler.
type peerCache struct {
	mu     sync.Mutex
	synced bool // the registry's current values are in
	peers  map[string]*peer
}

// peer is another node as the watcher knows it.
type peer struct {
	info  api.NodeInfo
	rev   uint64    // its record's revision; 0 while known only from heartbeats
	seen  time.Time // the watcher's clock: its last heartbeat or record change
	procs []api.ProcessSummary
}

func (c *peerCache) get(id string) *peer {
	p := c.peers[id]
	if p == nil {
		p = &peer{}
		c.peers[id] = p
	}
	return p
}

// watchPeers follows the registry and the heartbeats until the announcer
// stops, starting the registry watch again after it failed.
func (a *Announcer) watchPeers(kv jetstream.KeyValue) {
	sub, err := a.nc.Subscribe(bus.SubjectNodeHeartbeats, a.seeHeartbeat)
	if err != nil {
		a.log.Error("cannot follow the nodes' heartbeats", "err", err)
	} else {
		defer sub.Unsubscribe()
	}
	for {
		err := a.followRegistry(kv)
		if a.ctx.Err() != nil {
			return
		}
		a.log.Debug("watching the node registry again", "err", err)
		t := time.NewTimer(a.interval)
		select {
		case <-t.C:
		case <-a.ctx.Done():
			t.Stop()
			return
		}
	}
}

func (a *Announcer) followRegistry(kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(a.ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	initial := true // until the watcher says the current values are in
	tick := time.NewTicker(a.interval / 2)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("registry watch ended")
			case e == nil:
				initial = false
				a.peers.mu.Lock()
				a.peers.synced = true
				a.peers.mu.Unlock()
				a.checkPeers(kv)
			default:
				a.seeEntry(e, initial)
			}
		case <-tick.C:
			if !initial {
				a.checkPeers(kv)
			}
		case <-a.ctx.Done():
			return nil
		}
	}
}

// seeEntry records a change in the registry.
func (a *Announcer) seeEntry(e jetstream.KeyValueEntry, initial bool) {
	key := e.Key()
	id, isProcs := strings.CutSuffix(key, ".procs")
	if id == a.nodeID {
		return
	}
	c := &a.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		if !isProcs {
			delete(c.peers, id) // the node left
		} else if p := c.peers[id]; p != nil {
			p.procs = nil
		}
		return
	}
	if isProcs {
		var np api.NodeProcesses
		if json.Unmarshal(e.Value(), &np) == nil {
			c.get(id).procs = np.Processes
		}
		return
	}
	var info api.NodeInfo
	if err := json.Unmarshal(e.Value(), &info); err != nil || info.ID != id {
		return
	}
	p := c.get(id)
	p.info, p.rev = info, e.Revision()
	switch {
	case initial:
		// Written before this node watched: its age is the server's.
		if at := e.Created(); p.seen.Before(at) {
			p.seen = at
			if now := time.Now(); p.seen.After(now) {
				p.seen = now
			}
		}
	case !info.Lost: // a lost record says nothing of the node's life
		p.seen = time.Now()
	}
}

// seeHeartbeat records another node's heartbeat.
func (a *Announcer) seeHeartbeat(m *nats.Msg) {
	var info api.NodeInfo
	if err := json.Unmarshal(m.Data, &info); err != nil || info.ID == "" || info.ID == a.nodeID {
		return
	}
	c := &a.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.get(info.ID)
	p.info, p.seen = info, time.Now()
}

// suspect is a peer that went quiet.
type suspect struct {
	id   string
	info api.NodeInfo
	rev  uint64
}

// checkPeers declares lost every node quiet for too long.
func (a *Announcer) checkPeers(kv jetstream.KeyValue) {
	c := &a.peers
	now := time.Now()
	var quiet []suspect
	c.mu.Lock()
	for id, p := range c.peers {
		switch quietFor := now.Sub(p.seen); {
		case !p.seen.IsZero() && quietFor > registry.MaxAge:
			delete(c.peers, id) // the registry forgot it too
		case p.rev > 0 && !p.info.Lost && quietFor > registry.GoneAfter(p.info.IntervalMs):
			quiet = append(quiet, suspect{id: id, info: p.info, rev: p.rev})
		}
	}
	c.mu.Unlock()
	for _, s := range quiet {
		a.declareLost(kv, s)
	}
}

// declareLost announces the loss of a quiet node, unless it answers, or
// another node announced it first, or it came back.
func (a *Announcer) declareLost(kv jetstream.KeyValue, s suspect) {
	// A node whose heartbeats are late may still answer: then it is
	// alive (a slow or paused node), and seen now.
	actx, cancel := context.WithTimeout(a.ctx, max(a.interval, 500*time.Millisecond))
	_, err := a.nc.RequestWithContext(actx, bus.NodeSubject(s.id, bus.VerbInfo), nil)
	cancel()
	if err == nil {
		a.peers.mu.Lock()
		if p := a.peers.peers[s.id]; p != nil {
			p.seen = time.Now()
		}
		a.peers.mu.Unlock()
		return
	}
	rec := s.info
	rec.Lost = true
	data, err := json.Marshal(rec)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, max(a.interval, time.Second))
	defer cancel()
	rev, err := kv.Update(ctx, registry.NodeKey(s.id), data, s.rev)
	if err != nil {
		// Another node announced it, or the node came back, or the
		// registry is away: the watcher brings the news, or the next
		// check tries again.
		a.log.Debug("not announcing node loss", "lost", s.id, "err", err)
		return
	}
	a.peers.mu.Lock()
	if p := a.peers.peers[s.id]; p != nil && p.rev == s.rev {
		p.info.Lost, p.rev = true, rev
	}
	a.peers.mu.Unlock()
	payload, _ := json.Marshal(api.NodeLost{Node: s.id})
	m := &nats.Msg{Subject: bus.SubjectNodeLost, Data: payload, Header: nats.Header{
		bus.HeaderNode: []string{a.nodeID}, bus.HeaderMsgID: []string{fmt.Sprintf("node_lost:%s:%d", s.id, rev)},
	}}
	if err := a.nc.PublishMsg(m); err != nil {
		a.log.Error("cannot announce node loss", "lost", s.id, "err", err)
		return
	}
	a.log.Warn("node lost: no heartbeat and no answer", "lost", s.id, "lastSeen", s.info.LastSeen)
}

// View is what the watcher knows of every node, this one included (with
// its processes as they are now), for corral.registry. It reports false
// until the registry's current values are in.
func (a *Announcer) View(req api.RegistryRequest) (api.RegistryView, bool) {
	self, procs := a.snapshot()
	out := api.RegistryView{Node: self.ID, Nodes: []api.RegistryEntry{{Info: self}}}
	if req.Processes == api.ProcessesAll {
		out.Nodes[0].Processes = procs
	}
	now := time.Now()
	c := &a.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return api.RegistryView{}, false
	}
	for _, p := range c.peers {
		if p.info.ID == "" {
			continue // only its process list is known
		}
		age := now.Sub(p.seen)
		e := api.RegistryEntry{Info: p.info, AgeMs: age.Milliseconds()}
		gone := p.info.Lost || age > registry.GoneAfter(p.info.IntervalMs)
		if req.Processes == api.ProcessesAll || req.Processes == api.ProcessesGone && gone {
			e.Processes = p.procs
		}
		out.Nodes = append(out.Nodes, e)
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].Info.ID < out.Nodes[j].Info.ID })
	return out, true
}

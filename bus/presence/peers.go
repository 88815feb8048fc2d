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

// The watcher: what a node knows of the other nodes, and the
// announcement of their loss.
//
// Liveness comes from the heartbeats alone. Every node's heartbeat
// (corral.node.<node>.heartbeat, core NATS) carries its NodeInfo, with a
// ProcsVersion that changes with its process list, and the first one of
// a version carries the list when it is short (api.NodeHeartbeat); a
// watcher that sees a version it has no list of asks the node for it
// (corral.node.<node>.procs), so it knows every node's processes without
// JetStream. The registry (CORRAL_NODES), when there is one, adds what
// happened before this node started (records and lists of nodes it never
// heard) and keeps the loss for those that start later; it is never
// waited for. The watcher reads the records once, when it starts to follow
// the registry, and follows the process lists only: every node puts its
// record every interval, and among 100 nodes, each of them delivered to
// every other was a third of the cluster's work, for what the heartbeats
// already say.
//
// A node is seen, by the watcher's own clock, when its heartbeat arrives
// (or, before this node heard it, when its record was written); one not
// seen for MissedHeartbeats of its intervals is quiet. The watcher looks
// every interval/8, and every maxCheckEvery while a node is near its time
// or its loss is being announced. A quiet node is declared lost by one
// node: the alive node with the smallest id, as each node sees them (the
// views agree within a heartbeat), once the quiet node fails a short probe
// (corral.node.<node>.info); should the smallest not know the quiet node
// (it joined after the node's last heartbeat, or died just after it), the
// next one does a step later (escalation), and so on. The step is longer
// than a check period plus the time an announcement takes to reach the
// other nodes, so the next node has seen the smallest's announcement
// before its own turn and does not announce again: live subscribers of
// process.node_lost get it once. The announcement's message id is the
// same whoever makes it, so the event stream's duplicate window drops a
// second one all the same. Only a node that sees a majority of the nodes
// it knows announces: a node cut off from the others is isolated and
// declares nobody lost. Loss is noticed within MissedHeartbeats intervals
// plus a check period (at most maxCheckEvery) plus the probe (at most a
// quarter second), whatever the age of the cluster or the registry's
// state: within three intervals plus 0.29 s, and an escalation (0.09 s)
// more for each smaller node that did not announce it (three intervals
// plus 0.47 s for the third in line).
//
// The announcer publishes process.node_lost {node}, then marks the node
// Lost in its registry record (markInRegistry: a compare-and-set on the
// revision it reads, unless that record was written after the node was
// last heard; retried while the registry does not answer). The marks are
// written by a goroutine of their own (markLoop), so that a registry slow
// to answer delays no check, and nodes lost together are probed together.
// Every node marks it lost on process.node_lost. The lost node's next
// heartbeat clears Lost.
//
// The watcher also answers corral.registry with what it knows (View).

// peerCache is the watcher's knowledge, shared with the corral.registry
// handler.
type peerCache struct {
	mu         sync.Mutex
	synced     bool // the registry's current values are in
	isolated   bool
	isolatedAt time.Time // when it last became isolated
	rejoined   time.Time // when it last stopped being isolated
	peers      map[string]*peer
}

// peer is another node as the watcher knows it.
type peer struct {
	info api.NodeInfo
	seen time.Time // the watcher's clock: its last heartbeat, or when its record was written
	// heard: its last heartbeat, by the watcher's clock.
	heard time.Time
	// live: seen alive while this node watched (a heartbeat), so it
	// counts among the nodes a majority is judged against. A record that
	// was old when this node started does not.
	live         bool
	procs        []api.ProcessSummary
	procsVersion uint64    // of procs
	procsLife    time.Time // the node's life procs is of (its StartedAt); zero when unknown
	fetching     bool
	markLost     bool // Lost is to be written to its registry record
	// back: when it was last seen again, in the same life, after it had
	// been declared lost (a partition healed). Its routes come back one at
	// a time, so it may look quiet again for a while: it is not declared
	// lost again within rejoinGrace.
	back time.Time
}

func (c *peerCache) get(id string) *peer {
	p := c.peers[id]
	if p == nil {
		p = &peer{}
		c.peers[id] = p
	}
	return p
}

// Isolated reports whether the node sees fewer than half of the nodes it
// knows (it counts itself).
func (a *Announcer) Isolated() bool {
	a.peers.mu.Lock()
	defer a.peers.mu.Unlock()
	return a.peers.isolated
}

// Alive lists, sorted, the nodes this node sees alive (a heartbeat within
// MissedHeartbeats of their intervals, not declared lost), itself
// included.
func (a *Announcer) Alive() []string {
	now := time.Now()
	out := []string{a.nodeID}
	a.peers.mu.Lock()
	for id, p := range a.peers.peers {
		if p.info.ID != "" && !p.info.Lost && now.Sub(p.seen) <= registry.GoneAfter(p.info.IntervalMs) {
			out = append(out, id)
		}
	}
	a.peers.mu.Unlock()
	sort.Strings(out)
	return out
}

// The pace of the announcement of a loss.
const (
	// maxCheckEvery bounds the period of the watcher's checks.
	maxCheckEvery = 40 * time.Millisecond
	// lossPropagation is how long an announcement of a loss is given to
	// reach the other nodes (a route or two, a busy connection) before
	// the next node in line announces the loss itself.
	lossPropagation = 50 * time.Millisecond
	// escalation is how much later than the smallest alive node each next
	// one announces a loss the smaller ones have not: a check period (the
	// smaller node announces at its first check past its turn) plus
	// lossPropagation, so the next node sees that announcement before its
	// own turn. It is the same for every node, whatever its interval, as
	// the order of the turns must hold across nodes.
	escalation = maxCheckEvery + lossPropagation
)

// checkEvery is how often the watcher looks for quiet nodes while one is
// near or past its time: interval/8, but never less often than every
// maxCheckEvery nor more often than every 10 ms.
func (a *Announcer) checkEvery() time.Duration {
	return min(a.restEvery(), maxCheckEvery)
}

// restEvery is how often it looks while no node is near its time
// (interval/8, at least 10 ms): an idle node does not wake 25 times a
// second for nothing.
func (a *Announcer) restEvery() time.Duration { return max(a.interval/8, 10*time.Millisecond) }

// probeTimeout bounds the probe of a quiet node.
func (a *Announcer) probeTimeout() time.Duration {
	return min(max(a.interval/4, 20*time.Millisecond), 250*time.Millisecond)
}

// watch follows the heartbeats and the announced losses, fetches the
// process lists that changed, and looks for quiet nodes, until the
// announcer stops. The registry is followed alongside once it is set up
// (followRegistry).
func (a *Announcer) watch() {
	for _, s := range []struct {
		subject string
		fn      nats.MsgHandler
	}{{bus.SubjectNodeHeartbeats, a.seeHeartbeat}, {bus.SubjectNodeLost, a.seeLoss}} {
		sub, err := a.nc.Subscribe(s.subject, s.fn)
		if err != nil {
			a.log.Error("cannot follow the other nodes", "subject", s.subject, "err", err)
			continue
		}
		defer sub.Unsubscribe()
	}
	a.wg.Go(a.fetchLoop)
	a.wg.Go(a.markLoop)
	t := time.NewTimer(a.restEvery())
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if a.checkPeers() {
				t.Reset(a.checkEvery())
			} else {
				t.Reset(a.restEvery())
			}
		case <-a.ctx.Done():
			return
		}
	}
}

// followRegistry follows the registry (the records once, the process
// lists from then on) until the announcer stops, starting again after a
// failure.
func (a *Announcer) followRegistry(kv jetstream.KeyValue) {
	for {
		err := a.followOnce(kv)
		if a.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errReread) {
			continue
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

// errReread ends a follow of the registry so that its records are read
// again: the node is back from a partition, and the others marked lost
// (markInRegistry) the nodes that died meanwhile and wrote their records
// while its routes to them were down.
var errReread = errors.New("the node is back from a partition")

// followOnce reads the records that are in the registry (keys <node>: a
// node id is one subject token), then follows the process lists (keys
// <node>.procs) until that watch fails, the node is back from a partition
// (errReread), or the announcer stops. Records are read once: the
// heartbeats say the rest.
func (a *Announcer) followOnce(kv jetstream.KeyValue) error {
	records, err := kv.Watch(a.ctx, registry.NodeKey("*"), jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	err = a.follow(records, a.seeRecord, func() bool { return true }) // until all are in
	bus.StopWatch(records)
	if err != nil {
		return err
	}
	lists, err := kv.Watch(a.ctx, registry.ProcsKey("*"))
	if err != nil {
		return err
	}
	defer bus.StopWatch(lists)
	return a.follow(lists, func(e jetstream.KeyValueEntry) { a.seeList(kv, e) }, func() bool {
		a.peers.mu.Lock()
		a.peers.synced = true // the current lists are in
		a.peers.mu.Unlock()
		return false
	})
}

// follow hands w's entries to see until the watch ends or the announcer
// stops; at the watch's mark that the current values are in, it calls
// caughtUp, and returns if that says so.
func (a *Announcer) follow(w jetstream.KeyWatcher, see func(jetstream.KeyValueEntry), caughtUp func() (done bool)) error {
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("registry watch ended")
			case e != nil:
				see(e)
			case caughtUp():
				return nil
			}
		case <-a.reread:
			return errReread
		case <-a.ctx.Done():
			return a.ctx.Err()
		}
	}
}

// seeRecord takes a node's record read from the registry as the watcher
// starts to follow it: what the node was when it last wrote it (as of the
// server's time), unless its heartbeats said more since, or the record
// says it was lost or lives another life.
func (a *Announcer) seeRecord(e jetstream.KeyValueEntry) {
	id := e.Key()
	if id == a.nodeID || strings.ContainsRune(id, '.') || e.Operation() != jetstream.KeyValuePut {
		return
	}
	var info api.NodeInfo
	if err := json.Unmarshal(e.Value(), &info); err != nil || info.ID != id {
		return
	}
	c := &a.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.get(id)
	switch {
	case p.heardWithin(time.Now()) && !info.Lost:
		return // its heartbeats say more, and later
	case p.info.ID == "" || info.Lost || !p.info.Lost || p.info.StartedAt != info.StartedAt:
		p.info = info // unless the node is lost and this is not news of a loss or of a new life
	}
	if p.info.Lost {
		return // a lost node's record says nothing of its life
	}
	if at := notLater(e.Created()); p.seen.Before(at) {
		p.seen = at
	}
}

// seeList takes a process list put in the registry, or forgets the node
// when its list is deleted: a node deletes its list, then its record,
// when it leaves with no process (Leave), and nothing else deletes a
// list. Lists are always read, not only at the start: the last one a
// node puts (when it leaves processes running, or just before it dies)
// may never be fetched from it.
func (a *Announcer) seeList(kv jetstream.KeyValue, e jetstream.KeyValueEntry) {
	id, ok := strings.CutSuffix(e.Key(), ".procs")
	if !ok || id == a.nodeID || strings.ContainsRune(id, '.') {
		return
	}
	var np api.NodeProcesses
	put := e.Operation() == jetstream.KeyValuePut
	if put && (json.Unmarshal(e.Value(), &np) != nil || np.Node != id) {
		return
	}
	if put && np.Parts > 1 { // a long list: its other parts were put before this one
		ctx, cancel := context.WithTimeout(a.ctx, max(a.interval, time.Second))
		joined, err := registry.JoinList(ctx, kv, np)
		cancel()
		if err != nil {
			// Torn: its node died between writing the other parts and
			// this one, or wrote them again since. Its first part is
			// better than an older list; a live node's next version
			// comes with its heartbeat.
			a.log.Debug("cannot read a node's whole process list", "node", id, "err", err)
			joined = registry.FirstOnly(np)
		}
		np = joined
	}
	c := &a.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	if !put {
		delete(c.peers, id) // the node left
		return
	}
	c.get(id).takeList(np)
}

// heardWithin reports whether p's heartbeats reach this node: its last
// one came within one of its intervals before now, and it is not lost.
func (p *peer) heardWithin(now time.Time) bool {
	return p.info.ID != "" && !p.info.Lost && now.Sub(p.heard) < time.Duration(p.info.IntervalMs)*time.Millisecond
}

// seeHeartbeat records another node's heartbeat, and takes the process
// list it carries (api.NodeHeartbeat), or has the list fetched when its
// version changed.
func (a *Announcer) seeHeartbeat(m *nats.Msg) {
	var b api.NodeHeartbeat
	if err := json.Unmarshal(m.Data, &b); err != nil || b.ID == "" || b.ID == a.nodeID || !api.ValidToken(b.ID) {
		return
	}
	info := b.NodeInfo
	c := &a.peers
	c.mu.Lock()
	p := c.get(info.ID)
	if p.info.Lost && !info.Lost {
		a.log.Info("node is back", "node", info.ID)
		if p.info.StartedAt.Equal(info.StartedAt) { // the same life: cut off, not restarted
			p.back = time.Now()
		}
	}
	if !p.info.StartedAt.Equal(info.StartedAt) {
		p.back = time.Time{} // a new life: no grace
	}
	now := time.Now()
	p.info, p.seen, p.heard, p.live, p.markLost = info, now, now, true, false
	if l := b.ProcessList; l != nil && l.Node == info.ID {
		p.takeList(*l) // it came with the heartbeat
	}
	fetch := p.listBehind(info) && !p.fetching
	if fetch {
		p.fetching = true
	}
	c.mu.Unlock()
	if fetch {
		select {
		case a.fetches <- info.ID:
		default: // the fetcher is behind: the next heartbeat asks again
			c.mu.Lock()
			p.fetching = false
			c.mu.Unlock()
		}
	}
}

// seeLoss marks a node lost on another node's announcement.
func (a *Announcer) seeLoss(m *nats.Msg) {
	var nl api.NodeLost
	if json.Unmarshal(m.Data, &nl) != nil || nl.Node == "" || nl.Node == a.nodeID {
		return
	}
	c := &a.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	// Unless its heartbeat came since (it is back, or was never gone
	// for this node).
	if p := c.peers[nl.Node]; p != nil && time.Since(p.seen) > registry.GoneAfter(p.info.IntervalMs)/registry.MissedHeartbeats {
		p.info.Lost = true
	}
}

// fetchLoop asks nodes for the process lists whose version changed, one
// at a time, until the announcer stops.
func (a *Announcer) fetchLoop() {
	for {
		select {
		case id := <-a.fetches:
			a.fetchProcs(id)
		case <-a.ctx.Done():
			return
		}
	}
}

func (a *Announcer) fetchProcs(id string) {
	ctx, cancel := context.WithTimeout(a.ctx, max(a.interval, 500*time.Millisecond))
	defer cancel()
	var version *uint64 // of the first part: the others of the same version
	part := func(k int) ([]byte, error) {
		req, _ := json.Marshal(api.ProcsRequest{Part: k, Version: version})
		m, err := a.nc.RequestWithContext(ctx, bus.NodeSubject(id, bus.VerbProcs), req)
		if err != nil {
			return nil, err
		}
		if e := m.Header.Get(bus.HeaderServiceError); e != "" {
			return nil, errors.New(e)
		}
		return m.Data, nil
	}
	var np api.NodeProcesses
	data, err := part(0)
	if err == nil {
		err = json.Unmarshal(data, &np)
	}
	if err == nil && np.Parts > 1 {
		v := np.Version
		version = &v
		np, err = registry.JoinParts(np, part)
	}
	c := &a.peers
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[id]
	if p == nil {
		return
	}
	p.fetching = false
	if err != nil || np.Node != id {
		a.log.Debug("cannot fetch a node's process list", "node", id, "err", err)
		return
	}
	p.takeList(np)
}

// takeList takes l, a process list of p from its heartbeat, a fetch or
// the registry, which may arrive in any order, unless p holds a newer one:
// of the same life and a later version, or of its current life (the one
// its heartbeats or record say) when l is of another. Lives are told
// apart, not ordered: a node's clock may go back across a restart. A
// list without its life (from a node of an earlier version of Corral)
// is taken.
func (p *peer) takeList(l api.NodeProcesses) {
	switch {
	case l.StartedAt.IsZero() || p.procsLife.IsZero():
	case l.StartedAt.Equal(p.procsLife):
		if l.Version < p.procsVersion {
			return
		}
	case p.procsLife.Equal(p.info.StartedAt):
		return
	}
	p.procs, p.procsVersion, p.procsLife = l.Processes, l.Version, l.StartedAt
}

// listBehind reports whether the process list p holds is older than the
// one info (its heartbeat) announces: of another life (a node restarted
// under the same id counts its versions from zero again), or of an
// earlier version.
func (p *peer) listBehind(info api.NodeInfo) bool {
	if p.procsLife.IsZero() { // no list yet, or one without its life
		return info.ProcsVersion != p.procsVersion
	}
	return !p.procsLife.Equal(info.StartedAt) || p.procsVersion < info.ProcsVersion
}

// suspect is a peer that went quiet.
type suspect struct {
	id   string
	info api.NodeInfo
	seen time.Time
}

// checkPeers declares lost the quiet nodes this node is to announce (see
// the top of the file), and writes the losses the registry still lacks.
//
// It reports whether a node is near its time (quiet for less than two
// rest periods short of GoneAfter) or past it and not past the last
// node's turn to declare it lost: until none is, the watcher checks every
// checkEvery, so a loss is seen at most a check period after its time and
// each node's turn comes when it is due. A node's time is at least two
// rest periods after the check that finds it near (half its own time for a
// node beating so fast that its time is shorter: that one may be seen up
// to a rest period late), so no time passes unseen at the rest pace. An isolated node declares nothing, and rests.
func (a *Announcer) checkPeers() (near bool) {
	c := &a.peers
	now := time.Now()
	var quiet []suspect
	c.mu.Lock()
	alive, known := 1, 1
	var aliveIDs []string
	for id, p := range c.peers {
		quietFor := now.Sub(p.seen)
		switch {
		case !p.seen.IsZero() && quietFor > registry.MaxAge:
			delete(c.peers, id) // the registry forgot it too
			continue
		case p.info.ID == "": // only its process list is known
			continue
		case p.info.Lost:
			continue
		}
		if quietFor <= registry.GoneAfter(p.info.IntervalMs) {
			// A node beating much faster than this one: half its time.
			if margin := min(2*a.restEvery(), registry.GoneAfter(p.info.IntervalMs)/2); quietFor > registry.GoneAfter(p.info.IntervalMs)-margin {
				near = true
			}
			alive++
			known++
			aliveIDs = append(aliveIDs, id)
			continue
		}
		if p.live {
			known++
		}
		if !p.back.IsZero() && now.Sub(p.back) < a.rejoinGrace() {
			continue // back from a loss a moment ago: its routes are settling
		}
		quiet = append(quiet, suspect{id: id, info: p.info, seen: p.seen})
	}
	isolated := known > 2 && 2*alive <= known
	if isolated != c.isolated {
		c.isolated = isolated
		if isolated {
			c.isolatedAt = now
			a.log.Warn("isolated: this node sees fewer than half of the nodes it knows; it declares no node lost until it sees them again",
				"sees", alive, "knows", known)
		} else {
			c.rejoined = now
			a.log.Info("no longer isolated; for a while it declares lost only the nodes it has heard from since, as its routes come back one by one",
				"sees", alive, "knows", known, "for", a.rejoinGrace())
			select {
			case a.reread <- struct{}{}: // what the others wrote meanwhile (followRegistry)
			default:
			}
		}
	}
	warm := a.listening(now) >= a.warmUp()
	rejoined := c.rejoined
	c.mu.Unlock()
	// A quiet node keeps the quick pace until the last node in line has
	// had its turn, unless this node declares nothing (isolated).
	for _, s := range quiet {
		if !isolated && now.Sub(s.seen) <= registry.GoneAfter(s.info.IntervalMs)+time.Duration(alive)*escalation+a.checkEvery() {
			near = true
		}
	}
	rank := 0 // how many alive nodes come before this one
	for _, id := range aliveIDs {
		if id < a.nodeID {
			rank++
		}
	}
	if warm && !isolated {
		// Each probed at once: nodes lost together are announced within
		// one probe's time.
		var declaring sync.WaitGroup
		for _, s := range quiet {
			if s.seen.Before(rejoined) && now.Sub(rejoined) < a.rejoinGrace() {
				continue // not heard from since this node was cut off: its route may not be back yet
			}
			// The smallest announces; should it not know the node (it
			// joined after the node's last heartbeat), the next one does
			// a step later, and so on.
			if now.Sub(s.seen) > registry.GoneAfter(s.info.IntervalMs)+time.Duration(rank)*escalation {
				declaring.Go(func() { a.declareLost(s) })
			}
		}
		declaring.Wait()
	}
	return near
}

// rejoinGrace is how long a node that was isolated declares lost none of
// the nodes it has not heard from since it saw a majority again, and how
// long a node back from a loss is not declared lost again. Routes between
// the servers come back one at a time, seconds apart (the last one 6.4 s
// after the heal, once, in the partition test): until they have, a node
// the others see alive looks quiet to it (and does not answer its probe),
// and a node really lost meanwhile is announced by the nodes that were
// not cut off.
func (a *Announcer) rejoinGrace() time.Duration { return max(20*a.interval, 10*time.Second) }

// warmUp is how long a node listens before it declares anyone lost or
// answers View without the registry: long enough to hear every live node's
// heartbeat.
func (a *Announcer) warmUp() time.Duration { return a.interval * 3 / 2 }

// declareLost announces the loss of a quiet node, unless it answers a
// probe, came back meanwhile, or its registry record, read alongside the
// probe, says another node announced the loss already (this one missed
// process.node_lost: it was cut off, or reconnecting) or that the node
// lived on since it was last heard (its heartbeats do not reach this node,
// its records do). A record that cannot be read in the probe's time is
// no reason to wait. A node back from a partition (within rejoinGrace)
// waits rejoinedWait in any case: its routes come back one at a time, one
// may come and go, and its replica of the registry may be behind.
func (a *Announcer) declareLost(s suspect) {
	// A node whose heartbeats are late may still answer: then it is
	// alive (a slow or paused node), and seen now.
	slack := time.Duration(s.info.IntervalMs) * time.Millisecond * 3 / 2 // the lost node's interval
	actx, cancel := context.WithTimeout(a.ctx, a.probeTimeout())
	records := make(chan nodeRecord, 1)
	go func() { records <- a.readRecord(actx, s.id) }() // waited for below
	_, err := a.nc.RequestWithContext(actx, bus.NodeSubject(s.id, bus.VerbInfo), nil)
	rec := <-records
	cancel()
	c := &a.peers
	c.mu.Lock()
	p := c.peers[s.id]
	switch {
	case p == nil || p.info.Lost || p.info.StartedAt != s.info.StartedAt:
		c.mu.Unlock()
		return // announced by another, or a new life began
	case err == nil || a.ctx.Err() != nil:
		if err == nil {
			p.seen = time.Now()
		}
		c.mu.Unlock()
		return
	case rec.err == nil && rec.info.StartedAt.Equal(s.info.StartedAt) && rec.info.Lost && !rec.livedOnAfter(s, slack):
		// Marked by the node that announced this silence (it wrote the
		// last heartbeat it heard), not by one that announced an earlier
		// loss of this life.
		p.info.Lost, p.markLost = true, false
		c.mu.Unlock()
		a.log.Info("node lost, as another node announced", "lost", s.id)
		return
	case rec.err == nil && rec.info.StartedAt.Equal(s.info.StartedAt) && !rec.info.Lost && rec.livedOn(s, slack):
		if at := notLater(rec.seenAt(s)); p.seen.Before(at) {
			p.seen = at
		}
		p.info.LastSeen, p.live = rec.info.LastSeen, true // the next check goes from this record
		c.mu.Unlock()
		return
	case !c.isolated && time.Since(c.rejoined) < a.rejoinGrace() && time.Since(s.seen) < rejoinedWait(s.info.IntervalMs):
		// Back from a partition, its routes still coming back (one may
		// come and go), and its replica of the registry catching up (the
		// record it reads may be old): a node it heard since may be quiet
		// only to it. It waits, for a while.
		c.mu.Unlock()
		return
	}
	p.info.Lost, p.markLost = true, true
	c.mu.Unlock()

	payload, _ := json.Marshal(api.NodeLost{Node: s.id})
	m := &nats.Msg{Subject: bus.SubjectNodeLost, Data: payload, Header: nats.Header{
		bus.HeaderNode:  []string{a.nodeID},
		bus.HeaderMsgID: []string{fmt.Sprintf("node_lost:%s:%d", s.id, s.info.StartedAt.UnixNano())},
	}}
	if err := a.announce(m); err != nil {
		a.log.Error("cannot announce node loss", "lost", s.id, "err", err)
	}
	a.log.Warn("node lost: no heartbeat and no answer", "lost", s.id, "lastSeen", s.info.LastSeen)
	select {
	case a.marking <- struct{}{}: // markLoop writes it into the registry
	default:
	}
}

// rejoinedWait is how long a node back from a partition waits, unless a
// record marked Lost says another node announced it, before it declares
// lost a node it heard since and that went quiet and does not answer:
// twice the node's time, and at least 5 s more than it (in the partition
// test a route that came back went again for 1.3 s once and 2.3 s
// another time, and the cut-off node's replica of the registry gave it a
// record older than the heartbeat it had heard). The nodes that were not
// cut off announce a loss within the usual bound; should every node have
// been cut off (an even split), the loss of one that died meanwhile is
// announced that much late.
func rejoinedWait(intervalMs int64) time.Duration {
	gone := registry.GoneAfter(intervalMs)
	return gone + max(gone, 5*time.Second)
}

// notLater is t, or now if t is later (the server's clock is ahead).
func notLater(t time.Time) time.Time {
	if now := time.Now(); t.After(now) {
		return now
	}
	return t
}

// nodeRecord is a node's record as read from the registry.
type nodeRecord struct {
	info     api.NodeInfo
	revision uint64
	created  time.Time // by the server's clock
	err      error     // errNoRecord: none; errNoRegistry: none to read
}

var (
	errNoRecord   = errors.New("no record")
	errNoRegistry = errors.New("no registry")
)

// readRecord reads node id's record.
func (a *Announcer) readRecord(ctx context.Context, id string) nodeRecord {
	if a.registry == nil {
		return nodeRecord{err: errNoRegistry}
	}
	kv := a.registryKV()
	if kv == nil {
		return nodeRecord{err: errors.New("the registry is not set up yet")}
	}
	e, err := kv.Get(ctx, registry.NodeKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return nodeRecord{err: errNoRecord}
	case err != nil:
		return nodeRecord{err: err}
	}
	r := nodeRecord{revision: e.Revision(), created: e.Created()}
	if err := json.Unmarshal(e.Value(), &r.info); err != nil || r.info.ID != id {
		return nodeRecord{err: fmt.Errorf("record of %s: not a record of it", id)}
	}
	return r
}

// livedOn reports whether the node wrote the record more than slack after
// the heartbeat of its that was last heard (s): by the node's own clock,
// which stamps both (LastSeen), else (a node of an earlier version) by
// the server's clock against the watcher's. Records and heartbeats are
// written apart, each every interval.
func (r nodeRecord) livedOn(s suspect, slack time.Duration) bool {
	if !r.info.LastSeen.IsZero() && !s.info.LastSeen.IsZero() {
		return r.info.LastSeen.After(s.info.LastSeen.Add(slack))
	}
	return r.created.After(s.seen.Add(slack))
}

// livedOnAfter reports whether the node's heartbeat last heard (s) is
// more than slack later than the one r says (a record marked Lost holds
// the heartbeat its marker heard last): the mark is of an earlier silence.
func (r nodeRecord) livedOnAfter(s suspect, slack time.Duration) bool {
	return !r.info.LastSeen.IsZero() && !s.info.LastSeen.IsZero() && s.info.LastSeen.After(r.info.LastSeen.Add(slack))
}

// seenAt is when, by the watcher's clock, the record shows the node alive:
// its last heartbeat heard moved on by what the node's clock counted
// between that heartbeat and the record, else (without LastSeen) when the
// server stored the record.
func (r nodeRecord) seenAt(s suspect) time.Time {
	if !r.info.LastSeen.IsZero() && !s.info.LastSeen.IsZero() {
		return s.seen.Add(r.info.LastSeen.Sub(s.info.LastSeen))
	}
	return r.created
}

// markLoop writes into the registry the losses this node announced
// (markInRegistry), apart from the checks, so that a registry slow to
// answer (its stream electing a leader, say, when the lost node led it)
// delays no other loss: at once, and again every interval while some are
// left to write.
func (a *Announcer) markLoop() {
	var retry <-chan time.Time
	for {
		select {
		case <-a.marking:
		case <-retry:
		case <-a.ctx.Done():
			return
		}
		retry = nil
		if a.writeMarks() {
			retry = time.After(a.interval)
		}
	}
}

// writeMarks tries once to write each loss still to be written into the
// registry, and reports whether some are left.
func (a *Announcer) writeMarks() (left bool) {
	c := &a.peers
	var marks []suspect
	c.mu.Lock()
	for id, p := range c.peers {
		if p.info.Lost && p.markLost {
			marks = append(marks, suspect{id: id, info: p.info, seen: p.seen})
		}
	}
	c.mu.Unlock()
	for _, s := range marks {
		a.markInRegistry(s)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range marks {
		if p := c.peers[s.id]; p != nil && p.info.Lost && p.markLost {
			return true
		}
	}
	return false
}

// markInRegistry writes Lost into a lost node's registry record, so that
// nodes and clients that read the registry later know it: a
// compare-and-set on the revision it reads. A record of another life, one
// marked already, or one the node wrote more than two intervals after it
// was last heard (livedOn; wider than declareLost's bound, so that a node
// declared lost is marked: a wrong mark is undone by the node's next
// record, a missed one is not) is left as it is. markLoop retries it every
// interval until it is done, the record moved on (the node came back, or
// another node wrote it), or there is no record.
func (a *Announcer) markInRegistry(s suspect) {
	ctx, cancel := context.WithTimeout(a.ctx, max(a.interval, time.Second))
	defer cancel()
	r := a.readRecord(ctx, s.id)
	switch {
	case errors.Is(r.err, errNoRecord) || errors.Is(r.err, errNoRegistry):
		a.markDone(s.id) // known from its heartbeats only, it left, or there is no registry
		return
	case r.err != nil:
		a.log.Debug("cannot mark the lost node in the registry yet", "lost", s.id, "err", r.err)
		return
	case r.info.Lost || !r.info.StartedAt.Equal(s.info.StartedAt) || r.livedOn(s, 2*time.Duration(s.info.IntervalMs)*time.Millisecond):
		a.markDone(s.id)
		return
	}
	rec := s.info
	rec.Lost = true
	data, err := json.Marshal(rec)
	if err != nil {
		a.markDone(s.id)
		return
	}
	_, err = a.registryKV().Update(ctx, registry.NodeKey(s.id), data, r.revision)
	switch {
	case err == nil, errors.Is(err, jetstream.ErrKeyExists): // marked, or the record moved on
		a.markDone(s.id)
	default:
		a.log.Debug("cannot mark the lost node in the registry yet", "lost", s.id, "err", err)
	}
}

// markDone says the loss of id needs no more writing to the registry.
func (a *Announcer) markDone(id string) {
	a.peers.mu.Lock()
	if p := a.peers.peers[id]; p != nil {
		p.markLost = false
	}
	a.peers.mu.Unlock()
}

// View is what the watcher knows of every node, this one included (with
// its processes as they are now), for corral.registry. It reports false
// until it knows enough: the registry's current values are in, or it has
// listened for every live node's heartbeat. It reports false as well
// while the node is back from a partition (no longer isolated, within
// rejoinGrace) and has a node it knew alive that it has not heard from
// since it was cut off, neither its heartbeats nor (read again as it
// rejoins) a record it wrote, nor learnt that it is lost: its routes come
// back one at a time, and until then it would call gone nodes that the
// others hear (a reconciler believing it would place their service
// instances a second time). An isolated node answers with what it sees.
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
	if !c.synced && a.listening(now) < a.warmUp() {
		return api.RegistryView{}, false
	}
	if !c.isolated && now.Sub(c.rejoined) < a.rejoinGrace() {
		for _, p := range c.peers {
			// Alive when the node was cut off: heard within twice its
			// time before the node found itself isolated (which takes
			// that long), not since.
			knewAlive := c.isolatedAt.Sub(p.seen) < 2*registry.GoneAfter(p.info.IntervalMs)
			if p.info.ID != "" && !p.info.Lost && p.seen.Before(c.isolatedAt) && knewAlive {
				return api.RegistryView{}, false
			}
		}
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
			if e.Processes == nil && (p.procsVersion == p.info.ProcsVersion || p.info.Lost) {
				// Known to be none (not unknown, which would send the
				// client to the registry).
				e.Processes = []api.ProcessSummary{}
			}
		}
		out.Nodes = append(out.Nodes, e)
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].Info.ID < out.Nodes[j].Info.ID })
	return out, true
}

package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/embedded"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/internal/await"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The turns to announce a loss, for every heartbeat interval a node may
// have: each node's turn comes after the node before it has checked and
// its announcement has had lossPropagation to arrive; and the loss is
// announced within three intervals plus half a second by the first three
// in line (the smallest alive node, or the next one or two when the
// smaller ones never heard the lost node or died just after it), at the
// latest check and with a probe that waits its full timeout.
func TestLossTurns(t *testing.T) {
	for _, interval := range []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second} {
		a := &Announcer{interval: interval}
		if escalation < a.checkEvery()+lossPropagation {
			t.Errorf("interval %v: each next node announces %v later, within a check (%v) and the propagation of an announcement (%v)",
				interval, escalation, a.checkEvery(), lossPropagation)
		}
		bound := registry.MissedHeartbeats*interval + 500*time.Millisecond
		for rank := range 3 {
			latest := registry.GoneAfter(interval.Milliseconds()) + time.Duration(rank)*escalation + a.checkEvery() + a.probeTimeout()
			if latest > bound {
				t.Errorf("interval %v: node %d in line announces up to %v after the last heartbeat, past %v", interval, rank, latest, bound)
			}
		}
	}
}

// The watcher checks at the quick pace only while a node is near its time
// or past it, and finds it near at least two rest periods before it.
func TestQuickChecksOnlyNearATime(t *testing.T) {
	const interval = 2 * time.Second
	a := &Announcer{interval: interval, nodeID: "a"}
	a.peers.peers = map[string]*peer{}
	if a.checkPeers() {
		t.Error("near with no other node")
	}
	b := a.peers.get("b")
	b.info.ID, b.info.IntervalMs = "b", interval.Milliseconds()
	gone := registry.GoneAfter(b.info.IntervalMs)
	for _, c := range []struct {
		quiet time.Duration
		near  bool
	}{{0, false}, {interval, false}, {gone - 3*a.restEvery(), false}, {gone - 2*a.restEvery() + time.Millisecond, true},
		{gone + 100*time.Millisecond, true}, {gone + time.Minute, false}} { // past every turn: the rest pace
		b.seen = time.Now().Add(-c.quiet)
		if got := a.checkPeers(); got != c.near {
			t.Errorf("b quiet for %v of %v: near %v, want %v", c.quiet, gone, got, c.near)
		}
	}
	if a.restEvery() <= a.checkEvery() || a.checkEvery() > maxCheckEvery {
		t.Errorf("rest every %v, check every %v", a.restEvery(), a.checkEvery())
	}
}

// entry is a registry entry as a watch delivers it.
type entry struct {
	key   string
	value []byte
	rev   uint64
	op    jetstream.KeyValueOp
}

func (e entry) Bucket() string                  { return registry.Bucket }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.value }
func (e entry) Revision() uint64                { return e.rev }
func (e entry) Created() time.Time              { return time.Now() }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return e.op }

// created is an entry written at a given time.
type created struct {
	entry
	at time.Time
}

func (e created) Created() time.Time { return e.at }

// A record read as the watcher starts says what a node was when it wrote
// it, and when (the server's time), unless the node's heartbeats come: they
// say more. A record marked Lost is taken all the same. A process list is
// always taken, and the deletion of a node's list is the node leaving.
func TestRecordsAndListsOfTheRegistry(t *testing.T) {
	a := &Announcer{interval: time.Second, nodeID: "a", log: slog.New(slog.DiscardHandler)}
	a.peers.peers = map[string]*peer{}
	started := time.Now().Add(-time.Hour)
	beat := func() {
		data, _ := json.Marshal(api.NodeInfo{ID: "b", StartedAt: started, IntervalMs: 1000, Running: 1})
		a.seeHeartbeat(&nats.Msg{Data: data})
	}
	record := func(info api.NodeInfo, at time.Time) created {
		info.ID, info.StartedAt, info.IntervalMs = "b", started, 1000
		data, _ := json.Marshal(info)
		return created{entry{key: registry.NodeKey("b"), value: data, rev: 1, op: jetstream.KeyValuePut}, at}
	}
	list := func(op jetstream.KeyValueOp, names ...string) entry {
		var np api.NodeProcesses
		np.Node = "b"
		for _, n := range names {
			np.Processes = append(np.Processes, api.ProcessSummary{Name: n})
		}
		data, _ := json.Marshal(np)
		return entry{key: registry.ProcsKey("b"), value: data, rev: 1, op: op}
	}
	peer := func() *peer {
		a.peers.mu.Lock()
		defer a.peers.mu.Unlock()
		if p := a.peers.peers["b"]; p != nil {
			c := *p
			return &c
		}
		return nil
	}

	// Not heard: the record says what it was, and when.
	written := time.Now().Add(-5 * time.Second)
	a.seeRecord(record(api.NodeInfo{Running: 7}, written))
	a.seeList(nil, list(jetstream.KeyValuePut, "x"))
	if p := peer(); p.info.Running != 7 || !p.seen.Equal(written) || p.live || len(p.procs) != 1 {
		t.Fatalf("a node not heard: running %d, seen %v, live %v, procs %v; want 7, %v, false, [x]", p.info.Running, p.seen, p.live, p.procs, written)
	}

	beat()
	a.seeRecord(record(api.NodeInfo{Running: 5}, time.Now()))
	a.seeList(nil, list(jetstream.KeyValuePut, "y", "z"))
	if p := peer(); p.info.Running != 1 || !p.live || len(p.procs) != 2 {
		t.Errorf("a heard node: running %d, live %v, procs %v; want 1 (the heartbeat's), true, [y z]", p.info.Running, p.live, p.procs)
	}
	a.seeRecord(record(api.NodeInfo{Lost: true}, time.Now()))
	if p := peer(); !p.info.Lost {
		t.Error("a record marked Lost was not taken")
	}
	// Read again (the watch started over): a record says nothing of a lost
	// node's life.
	before := peer().seen
	a.seeRecord(record(api.NodeInfo{Running: 2}, time.Now().Add(time.Second)))
	if p := peer(); !p.info.Lost || !p.seen.Equal(before) {
		t.Errorf("a lost node's record read again: lost %v, seen moved %v", p.info.Lost, p.seen.Sub(before))
	}

	a.seeList(nil, list(jetstream.KeyValueDelete))
	if p := peer(); p != nil {
		t.Errorf("the node's list deleted (it left): still known as %+v", p.info)
	}
}

// The answer to corral.node.<node>.procs is encoded once per version of
// the list, and a change of the list is in the next answer.
func TestProcessesJSONFollowsTheVersion(t *testing.T) {
	list, described := []api.ProcessSummary{{ID: "p1", Name: "x"}}, 0
	a := &Announcer{listLimit: 1 << 20, describe: func() (api.NodeInfo, []api.ProcessSummary) {
		described++
		return api.NodeInfo{ID: "a"}, list
	}}
	read := func() api.NodeProcesses { return processesPart(t, a, 0, nil) }
	read()
	if np := read(); described != 1 || len(np.Processes) != 1 {
		t.Fatalf("two answers of one version: described %d times, %d processes; want 1, 1", described, len(np.Processes))
	}
	list = append(list, api.ProcessSummary{ID: "p2", Name: "x"})
	a.ProcessesChanged()
	if np := read(); len(np.Processes) != 2 || np.Version != 1 {
		t.Errorf("after a change: %d processes, version %d; want 2, 1", len(np.Processes), np.Version)
	}
}

// A heartbeat carries the node's process list when its version is new
// since the last heartbeat, and the other nodes take it from there
// without asking the node; a fetch answered late with an older list does
// not replace it.
func TestHeartbeatCarriesAChangedList(t *testing.T) {
	nc := testServer(t, false)
	sub, err := nc.SubscribeSync(bus.NodeHeartbeatSubject("b"))
	if err != nil {
		t.Fatal(err)
	}
	list := []api.ProcessSummary{{ID: "p1", Name: "x", Node: "b"}}
	life := time.Now()
	b := New(nc, Config{NodeID: "b", Interval: time.Second, Logger: slog.New(slog.DiscardHandler),
		Describe: func() (api.NodeInfo, []api.ProcessSummary) {
			return api.NodeInfo{ID: "b", IntervalMs: 1000, StartedAt: life}, list
		}})
	t.Cleanup(b.Stop)
	a := &Announcer{interval: time.Second, nodeID: "a", log: slog.New(slog.DiscardHandler), fetches: make(chan string, 1)}
	a.peers.peers = map[string]*peer{}
	next := func() *nats.Msg {
		t.Helper()
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	carries := func(m *nats.Msg) bool {
		var hb api.NodeHeartbeat
		if err := json.Unmarshal(m.Data, &hb); err != nil {
			t.Fatal(err)
		}
		return hb.ProcessList != nil
	}

	b.ProcessesChanged()
	b.heartbeat()
	m := next()
	if !carries(m) {
		t.Errorf("the first heartbeat of version 1 carries no list: %s", m.Data)
	}
	a.seeHeartbeat(m)
	if p := a.peers.peers["b"]; p.procsVersion != 1 || len(p.procs) != 1 || len(a.fetches) != 0 {
		t.Errorf("after a heartbeat with its list: version %d, procs %v, fetches queued %d; want 1, [p1], 0",
			p.procsVersion, p.procs, len(a.fetches))
	}
	b.heartbeat()
	if m := next(); carries(m) {
		t.Errorf("a second heartbeat of the same version carries the list again: %s", m.Data)
	}

	// A list of maxBeatList processes is carried; a longer one, or one
	// past maxBeatBytes, is left to the fetch.
	long := strings.Repeat("s", 400)
	for _, c := range []struct {
		n       int
		service string
		carried bool
	}{{maxBeatList, "", true}, {maxBeatList + 1, "", false}, {200, long, false}} {
		list = list[:0]
		for i := range c.n {
			list = append(list, api.ProcessSummary{ID: fmt.Sprintf("q%d", i), Name: "x", Node: "b", Service: c.service})
		}
		b.ProcessesChanged()
		b.heartbeat()
		m = next()
		if carries(m) != c.carried {
			t.Errorf("a heartbeat with a list of %d processes (%d bytes in all): carried %v, want %v", c.n, len(m.Data), !c.carried, c.carried)
		}
		if len(m.Data) > maxBeatBytes+4096 {
			t.Errorf("a heartbeat of %d bytes", len(m.Data))
		}
	}
	a.seeHeartbeat(m)
	if len(a.fetches) != 1 {
		t.Errorf("a list left out of the heartbeat is not fetched")
	}

	// A fetch answered with an older list than the one held.
	old, _ := json.Marshal(api.NodeProcesses{Node: "b", Version: 0, StartedAt: life})
	if _, err := nc.Subscribe(bus.NodeSubject("b", bus.VerbProcs), func(m *nats.Msg) { _ = m.Respond(old) }); err != nil {
		t.Fatal(err)
	}
	a.nc, a.ctx = nc, t.Context()
	a.fetchProcs("b")
	if p := a.peers.peers["b"]; p.procsVersion != 1 || len(p.procs) != 1 {
		t.Errorf("after a fetch of an older list: version %d, procs %v; want 1, [p1]", p.procsVersion, p.procs)
	}
}

// Process lists of a node come from its heartbeats, fetches and the
// registry in any order: a list older than the one held is not taken, and
// a node whose list is of another life, or behind its heartbeat's
// version, is asked for it; a restarted node's versions count from zero
// again and its clock may have gone back.
func TestProcessListsOfLives(t *testing.T) {
	t0 := time.Now()
	old, cur := t0.Add(-time.Hour), t0 // two lives of b; cur.Before(old) below: a clock gone back
	list := func(life time.Time, version uint64, ids ...string) api.NodeProcesses {
		l := api.NodeProcesses{Node: "b", Version: version, StartedAt: life}
		for _, id := range ids {
			l.Processes = append(l.Processes, api.ProcessSummary{ID: id, Name: "x", Node: "b"})
		}
		return l
	}
	for _, clockBack := range []bool{false, true} {
		old, cur := old, cur
		if clockBack {
			old, cur = cur, old
		}
		p := &peer{info: api.NodeInfo{ID: "b", StartedAt: old, ProcsVersion: 12}}
		p.takeList(list(old, 12, "o1"))
		p.takeList(list(old, 11, "o0")) // a late, older answer
		if p.procsVersion != 12 || p.listBehind(p.info) {
			t.Errorf("clock back %v: after an older list of the same life: version %d, behind %v", clockBack, p.procsVersion, p.listBehind(p.info))
		}
		// b restarts with nothing: version 0 again.
		p.info = api.NodeInfo{ID: "b", StartedAt: cur}
		if !p.listBehind(p.info) {
			t.Errorf("clock back %v: a new life at version 0 is not asked for its list", clockBack)
		}
		p.takeList(list(cur, 0))
		if len(p.procs) != 0 || p.listBehind(p.info) {
			t.Errorf("clock back %v: the new life's empty list not taken: %v", clockBack, p.procs)
		}
		p.takeList(list(old, 12, "o1")) // the last life's list, late (a fetch, the registry)
		if len(p.procs) != 0 {
			t.Errorf("clock back %v: the last life's list replaced the current one: %v", clockBack, p.procs)
		}
		p.info.ProcsVersion = 1
		if !p.listBehind(p.info) {
			t.Errorf("clock back %v: a list behind the heartbeat's version is not asked for", clockBack)
		}
		p.takeList(list(cur, 1, "c1"))
		if len(p.procs) != 1 || p.procs[0].ID != "c1" {
			t.Errorf("clock back %v: list %v, want [c1]", clockBack, p.procs)
		}
	}
	// A node of an earlier version sends lists without their life.
	p := &peer{info: api.NodeInfo{ID: "b", StartedAt: old, ProcsVersion: 3}}
	p.takeList(api.NodeProcesses{Node: "b", Version: 3})
	if p.listBehind(p.info) {
		t.Error("a list without its life, of the heartbeat's version, is asked for again")
	}
}

// The node that declares a loss marks the record in the registry Lost: a
// record the node wrote before it was last heard (within one of its
// intervals), of the same life. A record written later (the node lived
// on, unheard), of another life, or none at all is left as it is, and
// the mark is not tried again.
func TestMarkInRegistry(t *testing.T) {
	_, kv := registryServer(t)
	a := &Announcer{interval: time.Second, nodeID: "a", log: slog.New(slog.DiscardHandler), registry: &registry.Config{}, sharedKV: kv,
		ctx: t.Context()}
	a.peers.peers = map[string]*peer{}
	life := time.Now().Add(-time.Hour)
	put := func(id string, startedAt time.Time) {
		data, _ := json.Marshal(api.NodeInfo{ID: id, StartedAt: startedAt, IntervalMs: 1000})
		if _, err := kv.Put(t.Context(), registry.NodeKey(id), data); err != nil {
			t.Fatal(err)
		}
	}
	lost := func(id string) bool {
		e, err := kv.Get(t.Context(), registry.NodeKey(id))
		if err != nil {
			return false
		}
		var info api.NodeInfo
		return json.Unmarshal(e.Value(), &info) == nil && info.Lost
	}
	for _, c := range []struct {
		name      string
		startedAt time.Time     // of the record; zero: no record
		seen      time.Duration // how long before the record was written the node was last heard
		want      bool
	}{
		{"written before it was last heard", life, -time.Second, true},
		{"written within an interval after", life, 500 * time.Millisecond, true},
		{"written well after: it lived on", life, 3 * time.Second, false},
		{"of another life", life.Add(time.Minute), -time.Second, false},
		{"no record", time.Time{}, 0, false},
	} {
		id := fmt.Sprintf("n%d", len(a.peers.peers))
		if !c.startedAt.IsZero() {
			put(id, c.startedAt)
		}
		p := a.peers.get(id)
		p.info = api.NodeInfo{ID: id, StartedAt: life, IntervalMs: 1000, Lost: true}
		p.markLost = true
		a.markInRegistry(suspect{id: id, info: p.info, seen: time.Now().Add(-c.seen)})
		if got := lost(id); got != c.want {
			t.Errorf("%s: marked %v, want %v", c.name, got, c.want)
		}
		if p.markLost {
			t.Errorf("%s: the mark is to be tried again", c.name)
		}
	}
}

// A node reads the records in the registry when it starts to follow it,
// and from then on follows the process lists, not the records: a record
// written later says nothing the heartbeats do not, and among many nodes,
// delivering each to every node costs much.
func TestRecordsAreReadOnceListsFollowed(t *testing.T) {
	nc, kv := registryServer(t)
	put := func(key string, v any) {
		data, _ := json.Marshal(v)
		if _, err := kv.Put(t.Context(), key, data); err != nil {
			t.Fatal(err)
		}
	}
	life := time.Now().Add(-time.Hour)
	put(registry.NodeKey("b"), api.NodeInfo{ID: "b", StartedAt: life, IntervalMs: 1000})
	put(registry.ProcsKey("b"), api.NodeProcesses{Node: "b", StartedAt: life, Processes: []api.ProcessSummary{{ID: "p1", Name: "x", Node: "b"}}})

	a := New(nc, Config{NodeID: "a", Interval: time.Second, Registry: &registry.Config{}, Logger: slog.New(slog.DiscardHandler),
		Describe: func() (api.NodeInfo, []api.ProcessSummary) {
			return api.NodeInfo{ID: "a", IntervalMs: 1000, StartedAt: time.Now()}, nil
		}})
	a.Start()
	t.Cleanup(a.Stop)
	view := func() map[string]api.RegistryEntry {
		v, ok := a.View(api.RegistryRequest{Processes: api.ProcessesAll})
		if !ok {
			return nil
		}
		out := map[string]api.RegistryEntry{}
		for _, e := range v.Nodes {
			out[e.Info.ID] = e
		}
		return out
	}
	await.Until(t, 10*time.Second, "b's record and list in a's view", func() bool {
		b, ok := view()["b"]
		return ok && len(b.Processes) == 1
	})

	put(registry.NodeKey("c"), api.NodeInfo{ID: "c", StartedAt: life, IntervalMs: 1000})
	put(registry.ProcsKey("b"), api.NodeProcesses{Node: "b", StartedAt: life, Version: 1,
		Processes: []api.ProcessSummary{{ID: "p1", Name: "x", Node: "b"}, {ID: "p2", Name: "x", Node: "b"}}})
	await.Until(t, 10*time.Second, "b's new list in a's view", func() bool {
		return len(view()["b"].Processes) == 2
	})
	if _, ok := view()["c"]; ok {
		t.Error("a record written after a followed the registry is in its view: records are read once")
	}
}

// announcements records the losses a test's watcher announces.
type announcements struct {
	mu    sync.Mutex
	nodes []string
	then  func(node string) // called with each, when set
}

func (r *announcements) announce(m *nats.Msg) error {
	var nl api.NodeLost
	_ = json.Unmarshal(m.Data, &nl)
	if r.then != nil {
		r.then(nl.Node)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes = append(r.nodes, nl.Node)
	return nil
}

// take returns the losses announced since the last take.
func (r *announcements) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.nodes
	r.nodes = nil
	return out
}

// testWatcher is the watcher of node a, beating every interval, with kv
// as its registry and no other node known yet: its announcements go to
// the record it returns.
func testWatcher(t *testing.T, nc *nats.Conn, kv jetstream.KeyValue, interval time.Duration) (*Announcer, *announcements) {
	r := &announcements{}
	a := &Announcer{interval: interval, nodeID: "a", log: slog.New(slog.DiscardHandler), registry: &registry.Config{}, sharedKV: kv,
		ctx: t.Context(), nc: nc, marking: make(chan struct{}, 1), announce: r.announce}
	a.peers.peers = map[string]*peer{}
	return a, r
}

// registryServer starts a server with JetStream and the node registry,
// and returns a connection to it and the registry's bucket.
func registryServer(t *testing.T) (*nats.Conn, jetstream.KeyValue) {
	nc := testServer(t, true)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := registry.Ensure(t.Context(), js, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return nc, kv
}

// Before it announces a loss, a node reads the record alongside its probe:
// a record another node marked Lost means the loss was announced (this
// node missed the message), and a record the node wrote well after its
// last heartbeat heard means it lives on, unheard. Otherwise the loss is
// announced, and the record marked.
func TestDeclareLostReadsTheRecord(t *testing.T) {
	nc, kv := registryServer(t)
	// The watcher beats every 2 s, the lost nodes every 1 s: the slack is
	// the lost node's.
	a, rec := testWatcher(t, nc, kv, 2*time.Second)
	life := time.Now().Add(-time.Hour)
	lastBeat := time.Now().Add(-4 * time.Second)
	marked := func(id string) bool {
		e, err := kv.Get(t.Context(), registry.NodeKey(id))
		var info api.NodeInfo
		return err == nil && json.Unmarshal(e.Value(), &info) == nil && info.Lost
	}
	for _, c := range []struct {
		name     string
		record   *api.NodeInfo // nil: none
		announce bool
		lost     bool
	}{
		{"marked Lost by another node", &api.NodeInfo{LastSeen: lastBeat, Lost: true}, false, true},
		{"marked Lost for an earlier silence", &api.NodeInfo{LastSeen: lastBeat.Add(-time.Minute), Lost: true}, true, true},
		{"written 2 s after its last heartbeat heard", &api.NodeInfo{LastSeen: lastBeat.Add(2 * time.Second)}, false, false},
		{"written with its last heartbeat", &api.NodeInfo{LastSeen: lastBeat.Add(500 * time.Millisecond)}, true, true},
		{"no record", nil, true, true},
	} {
		id := fmt.Sprintf("d%d", len(a.peers.peers))
		if c.record != nil {
			rec := *c.record
			rec.ID, rec.StartedAt, rec.IntervalMs = id, life, 1000
			data, _ := json.Marshal(rec)
			if _, err := kv.Put(t.Context(), registry.NodeKey(id), data); err != nil {
				t.Fatal(err)
			}
		}
		p := a.peers.get(id)
		p.info = api.NodeInfo{ID: id, StartedAt: life, IntervalMs: 1000, LastSeen: lastBeat}
		p.seen, p.live = lastBeat, true
		a.declareLost(suspect{id: id, info: p.info, seen: p.seen})
		a.writeMarks() // what markLoop does
		announced := rec.take()
		if got := len(announced) == 1 && announced[0] == id; got != c.announce || len(announced) > 1 {
			t.Errorf("%s: announced %v, want the loss of %s announced: %v", c.name, announced, id, c.announce)
		}
		if p.info.Lost != c.lost || p.markLost {
			t.Errorf("%s: lost %v (mark to write %v), want %v (nothing to write)", c.name, p.info.Lost, p.markLost, c.lost)
		}
		if c.announce && c.record != nil && !marked(id) {
			t.Errorf("%s: the record is not marked Lost", c.name)
		}
		if !c.lost && !p.seen.Equal(lastBeat.Add(2*time.Second)) {
			t.Errorf("%s: seen %v after its last heartbeat, want 2s (its record, by its clock)", c.name, p.seen.Sub(lastBeat))
		}
		if !c.lost {
			// Nothing since: from that record on, it is quiet, and lost.
			a.declareLost(suspect{id: id, info: p.info, seen: p.seen})
			if announced := rec.take(); len(announced) != 1 || !p.info.Lost {
				t.Errorf("%s, then nothing more: announced %v, lost %v; want it announced", c.name, announced, p.info.Lost)
			}
		}
	}
}

// A node back from a partition answers no view until it has heard from
// every node it knew alive since it was cut off (a heartbeat, or a record
// written meanwhile), or learnt that they are lost: until then it would
// call them gone. While it is isolated it answers with what it sees.
func TestAViewAfterAPartition(t *testing.T) {
	a := &Announcer{interval: time.Second, nodeID: "a", describe: func() (api.NodeInfo, []api.ProcessSummary) {
		return api.NodeInfo{ID: "a"}, nil
	}}
	a.peers.peers = map[string]*peer{}
	a.peers.synced = true
	life := time.Now().Add(-time.Hour)
	cutAt := time.Now().Add(-5 * time.Second)
	for _, id := range []string{"b", "c", "d"} {
		p := a.peers.get(id)
		p.info = api.NodeInfo{ID: id, StartedAt: life, IntervalMs: 1000}
		p.seen, p.live = cutAt, true
	}
	a.peers.peers["d"].info.Lost = true // lost meanwhile, as another node announced
	e := a.peers.get("e")               // quiet long before the cut: gone, and the view says so
	e.info = api.NodeInfo{ID: "e", StartedAt: life, IntervalMs: 1000}
	e.seen = cutAt.Add(-time.Minute)
	view := func() bool {
		v, ok := a.View(api.RegistryRequest{})
		return ok && len(v.Nodes) == 5
	}
	a.peers.isolated, a.peers.isolatedAt = true, cutAt.Add(time.Second)
	if !view() {
		t.Error("isolated: no view")
	}
	a.peers.isolated, a.peers.rejoined = false, time.Now().Add(-time.Second)
	if view() {
		t.Error("back from a partition, b and c not heard again: a view")
	}
	a.peers.peers["b"].seen = time.Now()
	if view() {
		t.Error("back from a partition, c not heard again: a view")
	}
	a.peers.peers["c"].seen = a.peers.isolatedAt.Add(time.Second) // its record, written during the partition
	if !view() {
		t.Error("back from a partition, every node alive heard from since the cut: no view")
	}
	a.peers.peers["c"].seen = cutAt
	a.peers.rejoined = time.Now().Add(-a.rejoinGrace() - time.Second)
	if !view() {
		t.Error("back from a partition longer than the grace: no view")
	}
}

// A node back from a partition reads the registry's records again: so it
// learns at once of a node that died meanwhile (the others marked it lost)
// and answers its view, rather than after rejoinGrace.
func TestRecordsAreReadAgainAfterAPartition(t *testing.T) {
	nc, kv := registryServer(t)
	const interval = 250 * time.Millisecond
	a := New(nc, Config{NodeID: "a", Interval: interval, Registry: &registry.Config{}, Logger: slog.New(slog.DiscardHandler),
		Describe: func() (api.NodeInfo, []api.ProcessSummary) {
			return api.NodeInfo{ID: "a", IntervalMs: interval.Milliseconds(), StartedAt: time.Now()}, nil
		}})
	a.Start()
	t.Cleanup(a.Stop)
	life := time.Now().Add(-time.Hour)
	info := func(id string) api.NodeInfo {
		return api.NodeInfo{ID: id, StartedAt: life, IntervalMs: interval.Milliseconds(), LastSeen: time.Now()}
	}
	beat := func(id string) {
		data, _ := json.Marshal(api.NodeHeartbeat{NodeInfo: info(id)})
		_ = nc.Publish(bus.NodeSubject(id, bus.VerbHeartbeat), data)
	}
	ready := func() bool { _, ok := a.View(api.RegistryRequest{}); return ok }
	await.Until(t, 10*time.Second, "a's view", ready)
	// b and d beat, then a is cut off from both.
	for range 3 {
		beat("b")
		beat("d")
		_ = nc.Flush()
		time.Sleep(interval)
	}
	await.Until(t, 10*time.Second, "a isolated", a.Isolated)
	// Meanwhile d died: the others marked it lost; b lives on.
	for id, lost := range map[string]bool{"b": false, "d": true} {
		rec := info(id)
		rec.Lost = lost
		data, _ := json.Marshal(rec)
		if _, err := kv.Put(t.Context(), registry.NodeKey(id), data); err != nil {
			t.Fatal(err)
		}
	}
	// The partition heals: b's heartbeats are back.
	healed := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			beat("b")
			select {
			case <-tick.C:
			case <-healed:
				return
			}
		}
	}()
	defer func() { close(healed); <-beating }()
	await.Until(t, 5*time.Second, "a no longer isolated", func() bool { return !a.Isolated() })
	await.Until(t, 5*time.Second, "a's view once it knows d is lost (well within the rejoin grace)", ready)
	v, _ := a.View(api.RegistryRequest{})
	for _, e := range v.Nodes {
		if e.Info.ID == "d" && !e.Info.Lost {
			t.Errorf("d in a's view: %+v, want it lost", e)
		}
	}
}

// unreadableRecords is a registry whose reads get no answer.
type unreadableRecords struct{ jetstream.KeyValue }

func (unreadableRecords) Get(context.Context, string) (jetstream.KeyValueEntry, error) {
	return nil, context.DeadlineExceeded
}

// A node whose record cannot be read is announced lost when it does not
// answer, unless this node is back from a partition: its routes may still
// come and go, and its replica of the registry be behind, so it waits for
// a while (rejoinedWait), whatever the record.
func TestARejoinedNodeWaitsForTheRecord(t *testing.T) {
	nc, kv := registryServer(t)
	a, rec := testWatcher(t, nc, unreadableRecords{kv}, time.Second)
	life := time.Now().Add(-time.Hour)
	for _, c := range []struct {
		name     string
		rejoined time.Duration // how long ago this node stopped being isolated; 0: never isolated
		quiet    time.Duration // how long ago the node was last heard
		announce bool
	}{
		{"never cut off", 0, 4 * time.Second, true},
		{"back from a partition a second ago", time.Second, 4 * time.Second, false},
		{"back from a partition a second ago, the node quiet for long", time.Second, rejoinedWait(1000) + time.Second, true},
		{"back from a partition longer than the grace ago", a.rejoinGrace() + time.Second, 4 * time.Second, true},
	} {
		id := fmt.Sprintf("r%d", len(a.peers.peers))
		a.peers.rejoined = time.Time{}
		if c.rejoined > 0 {
			a.peers.rejoined = time.Now().Add(-c.rejoined)
		}
		p := a.peers.get(id)
		p.info = api.NodeInfo{ID: id, StartedAt: life, IntervalMs: 1000, LastSeen: time.Now().Add(-c.quiet)}
		p.seen, p.live = p.info.LastSeen, true
		a.declareLost(suspect{id: id, info: p.info, seen: p.seen})
		if announced := rec.take(); (len(announced) == 1) != c.announce {
			t.Errorf("%s: announced %v, want the loss announced: %v", c.name, announced, c.announce)
		}
	}
	// Back from a partition, with a record that reads, but is older than
	// the heartbeat last heard (its replica is behind): it waits too.
	a.sharedKV = kv
	a.peers.rejoined = time.Now().Add(-time.Second)
	p := a.peers.get("old")
	p.info = api.NodeInfo{ID: "old", StartedAt: life, IntervalMs: 1000, LastSeen: time.Now().Add(-4 * time.Second)}
	p.seen, p.live = p.info.LastSeen, true
	old := p.info
	old.LastSeen = old.LastSeen.Add(-time.Minute)
	data, _ := json.Marshal(old)
	if _, err := kv.Put(t.Context(), registry.NodeKey("old"), data); err != nil {
		t.Fatal(err)
	}
	a.declareLost(suspect{id: "old", info: p.info, seen: p.seen})
	if announced := rec.take(); len(announced) != 0 {
		t.Errorf("back from a partition, a record older than the heartbeat: announced %v, want it to wait", announced)
	}
}

// slowRecords is a registry whose reads of one node's record, once it is
// set, wait until release is closed, whatever their context: an answer
// that takes long.
type slowRecords struct {
	jetstream.KeyValue
	slow    atomic.Pointer[string] // the node whose record is slow
	waiting chan struct{}          // cap 1: a slow read waits
	release chan struct{}
}

func (k *slowRecords) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if id := k.slow.Load(); id != nil && key == registry.NodeKey(*id) {
		select {
		case k.waiting <- struct{}{}:
		default:
		}
		<-k.release
	}
	return k.KeyValue.Get(ctx, key)
}

// Writing a loss into a registry slow to answer (its stream electing a
// leader) delays no other loss: nodes lost together are probed together,
// and the marks are written apart from the checks, once the registry
// answers.
func TestASlowRegistryDelaysNoLoss(t *testing.T) {
	nc, kv := registryServer(t)
	slow := &slowRecords{KeyValue: kv, waiting: make(chan struct{}, 1), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	a, rec := testWatcher(t, nc, slow, time.Second)
	a.ctx = ctx
	rec.then = func(node string) {
		if node == "x" {
			slow.slow.Store(&node) // from now on, x's record is slow to read
		}
	}
	a.started.Store(time.Now().Add(-time.Hour).UnixNano())
	release := sync.OnceFunc(func() { close(slow.release) })
	t.Cleanup(func() {
		release()
		cancel()
		a.wg.Wait()
	})
	life := time.Now().Add(-time.Hour)
	for _, id := range []string{"b", "c", "d", "x", "y"} {
		p := a.peers.get(id)
		p.info = api.NodeInfo{ID: id, StartedAt: life, IntervalMs: 1000, LastSeen: time.Now()}
		p.seen, p.live = time.Now(), true
		if id == "x" || id == "y" { // lost
			p.seen = time.Now().Add(-10 * time.Second)
			p.info.LastSeen = p.seen
			data, _ := json.Marshal(p.info)
			if _, err := kv.Put(t.Context(), registry.NodeKey(id), data); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Their probes get no answer (a partition, say): each waits its full
	// time.
	var mu sync.Mutex
	probed := map[string]time.Time{}
	for _, id := range []string{"x", "y"} {
		sub, err := nc.Subscribe(bus.NodeSubject(id, bus.VerbInfo), func(*nats.Msg) {
			mu.Lock()
			probed[id] = time.Now()
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	checked := make(chan struct{})
	go func() { a.checkPeers(); close(checked) }()
	select {
	case <-checked:
	case <-time.After(10 * time.Second):
		t.Fatal("the check waits for the registry")
	}
	// The marks are written from now on (the check signalled them): x's
	// record is slow to read by then.
	a.wg.Go(a.markLoop)
	if announced := rec.take(); len(announced) != 2 || !slices.Contains(announced, "x") || !slices.Contains(announced, "y") {
		t.Errorf("announced %v, want x and y", announced)
	}
	mu.Lock()
	if apart := probed["x"].Sub(probed["y"]).Abs(); len(probed) != 2 || apart >= a.probeTimeout() {
		t.Errorf("probes at %v: one after the other (%v apart), want them together", probed, apart)
	}
	mu.Unlock()
	select {
	case <-slow.waiting: // the mark of x, in the background
	case <-time.After(10 * time.Second):
		t.Fatal("the loss of x is not written into the registry")
	}
	release()
	marked := func(id string) bool {
		e, err := kv.Get(t.Context(), registry.NodeKey(id))
		var info api.NodeInfo
		return err == nil && json.Unmarshal(e.Value(), &info) == nil && info.Lost
	}
	await.Until(t, 10*time.Second, "both losses written into the registry", func() bool { return marked("x") && marked("y") })
}

// testServer starts a server, with JetStream or not, and returns a
// connection to it.
func testServer(t *testing.T, withJetStream bool) *nats.Conn {
	cfg := embedded.Config{Listen: "127.0.0.1:-1", Logger: slog.New(slog.DiscardHandler)}
	if withJetStream {
		cfg.JetStream, cfg.StoreDir = true, t.TempDir()
	}
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// The parts of a list longer than a message are read one request at a
// time: a node whose list changed between two of them still answers the
// version asked for, while it is one of its last two.
func TestThePartsOfAListAreThoseOfTheVersionAskedFor(t *testing.T) {
	var list []api.ProcessSummary
	for i := range 60 {
		list = append(list, api.ProcessSummary{ID: fmt.Sprintf("proc_%016d", i), Name: "x"})
	}
	a := &Announcer{listLimit: 2 << 10, describe: func() (api.NodeInfo, []api.ProcessSummary) {
		return api.NodeInfo{ID: "a"}, list
	}}
	part := func(k int, version *uint64) api.NodeProcesses { return processesPart(t, a, k, version) }
	first := part(0, nil)
	if first.Parts < 3 {
		t.Fatalf("%d parts, want 3 or more", first.Parts)
	}
	for range 2 { // the list changes twice while it is read
		list = list[1:]
		a.ProcessesChanged()
		if np := part(0, nil); np.Version == first.Version {
			t.Fatalf("the first part after a change is still of version %d", np.Version)
		}
		if np := part(1, &first.Version); np.Version != first.Version && first.Version+1 == a.procsVersion.Load() {
			t.Errorf("part 1 of version %d, one change later: version %d", first.Version, np.Version)
		}
	}
	if np := part(1, &first.Version); np.Version == first.Version {
		t.Errorf("part 1 of version %d, two changes later: still served", first.Version)
	}
	if _, err := a.ProcessesJSON(first.Parts+5, nil); !errors.Is(err, ErrNoSuchPart) {
		t.Errorf("a part past the last: %v", err)
	}
}

// processesPart is a's answer to corral.node.<node>.procs for part k of
// version (nil: the current one), decoded.
func processesPart(t *testing.T, a *Announcer, k int, version *uint64) api.NodeProcesses {
	t.Helper()
	data, err := a.ProcessesJSON(k, version)
	if err != nil {
		t.Fatal(err)
	}
	var np api.NodeProcesses
	if err := json.Unmarshal(data, &np); err != nil {
		t.Fatal(err)
	}
	return np
}

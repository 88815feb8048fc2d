package presence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"
)

// Announcer is a node's part in discovery: it tells the cluster the node
// is alive and notices when another node is not. It runs three goroutines:
//   - the heartbeat: every interval, the node's NodeInfo (and, after a
//     change, its process list: api.NodeHeartbeat) on
//     corral.node.<node>.heartbeat (core NATS, so it never waits for
//     JetStream);
//   - with a registry, the writer: every interval the same NodeInfo at
//     <node> in CORRAL_NODES, and the node's unfinished processes at
//     <node>.procs when they changed;
//   - with a registry, the watcher (peers.go): what the node knows of the
//     others, from the registry and their heartbeats, served on
//     corral.registry, and the announcement of the loss of those that go
//     quiet.
//
// The control service owns it: its Serve calls Start, its Close calls Stop
// and then Leave.
type Announcer struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	nodeID   string
	interval time.Duration
	registry *registry.Config
	describe func() (api.NodeInfo, []api.ProcessSummary)
	announce func(*nats.Msg) error // publishes process.node_lost
	log      *slog.Logger

	host         atomic.Pointer[api.HostStats] // the last sample, for Info
	changed      chan struct{}                 // cap 1: the node's processes changed (for the writer)
	beatSoon     chan struct{}                 // cap 1: the same, for the heartbeat
	procsVersion atomic.Uint64                 // counts the changes of the node's processes
	procsReply   atomic.Pointer[encodedProcs]  // ProcessesJSON's last list, and the one before (prev)
	beatVersion  uint64                        // the ProcsVersion of the last heartbeat sent (heartbeatLoop's)
	peers        peerCache
	fetches      chan string        // nodes whose process list is to be fetched
	started      atomic.Int64       // when Start ran (unix ns; 0 before): the node listens from then on
	sharedKV     jetstream.KeyValue // the registry, for the watcher, once set up (mu)
	marking      chan struct{}      // cap 1: a loss is to be written into the registry (for markLoop)
	reread       chan struct{}      // cap 1: the node is back from a partition: read the records again (followRegistry)

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	stopped bool // no goroutine starts any more

	// The writer's own state (start and leave use it while the writer
	// does not run).
	kv         jetstream.KeyValue // nil until the registry is set up
	ensured    bool               // the bucket is known to exist
	nextTry    time.Time          // when to try to set the registry up again
	backoff    time.Duration
	warned     bool      // a registry failure was logged
	lastProcs  []byte    // the process list last put (its parts, one after the other)
	putParts   int       // how many parts it was put in (registry.SplitList)
	listLimit  int       // tests: the most a part holds (0: listRoom's)
	procsAt    time.Time // when it was put
	putLife    time.Time // the StartedAt and Version of the list last put
	putVersion uint64
}

// Config configures an Announcer. NodeID, Interval and Describe are
// required.
type Config struct {
	NodeID string
	// Interval is how often the node publishes its heartbeat on
	// corral.node.<node>.heartbeat (and refreshes its registry record). A
	// node that misses registry.MissedHeartbeats of them is gone.
	Interval time.Duration
	// Registry, when set, keeps the node's record and process list in the
	// node registry, has the node follow the others' heartbeats and
	// process lists (their records read once) to announce their loss
	// (process.node_lost), and makes View answer. Without JetStream the
	// announcer retries with a backoff and meanwhile only heartbeats. nil:
	// no registry.
	Registry *registry.Config
	// Describe returns the node as it is now (Host is filled in by the
	// announcer) and its unfinished processes. It is called from the
	// announcer's goroutines and must not block.
	Describe func() (api.NodeInfo, []api.ProcessSummary)
	// PublishLifecycle publishes process.node_lost, which the event
	// history keeps: the node's relay (relay.PublishLifecycle), which
	// stores it even while the stream elects a leader. Default: a plain
	// publish on the connection.
	PublishLifecycle func(*nats.Msg) error
	Logger           *slog.Logger
}

// New returns an Announcer for the node on nc. Start starts it.
func New(nc *nats.Conn, cfg Config) *Announcer {
	js, _ := jetstream.New(nc) // without options, New cannot fail
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PublishLifecycle == nil {
		cfg.PublishLifecycle = nc.PublishMsg
	}
	return &Announcer{
		nc: nc, js: js, nodeID: cfg.NodeID, interval: cfg.Interval, registry: cfg.Registry,
		describe: cfg.Describe, announce: cfg.PublishLifecycle, log: cfg.Logger,
		changed: make(chan struct{}, 1), peers: peerCache{peers: map[string]*peer{}}, fetches: make(chan string, 64), beatSoon: make(chan struct{}, 1),
		marking: make(chan struct{}, 1), reread: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel,
	}
}

// listening is how long the node has followed the others (0 before
// Start).
func (a *Announcer) listening(now time.Time) time.Duration {
	at := a.started.Load()
	if at == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, at))
}

// Host is the host's CPU and memory as last sampled (nil before the first
// heartbeat).
func (a *Announcer) Host() *api.HostStats { return a.host.Load() }

// snapshot is the node as Describe says, with the host's last sample,
// the version of its process list, and whether it is isolated.
func (a *Announcer) snapshot() (api.NodeInfo, []api.ProcessSummary) {
	version := a.procsVersion.Load() // before the list: a change in between shows in the next version
	info, procs := a.describe()
	info.Host = a.host.Load()
	info.ProcsVersion = version
	info.Isolated = a.Isolated()
	return info, procs
}

// listOf is the node's process list as a snapshot took it.
func listOf(info api.NodeInfo, procs []api.ProcessSummary) api.NodeProcesses {
	return api.NodeProcesses{Node: info.ID, Processes: procs, Version: info.ProcsVersion, StartedAt: info.StartedAt}
}

// encodedProcs is the encoded process list of one version, in parts
// (registry.SplitList), and the version before.
type encodedProcs struct {
	version uint64
	parts   [][]byte
	prev    *encodedProcs // its own prev is nil
}

// ErrNoSuchPart says that the process list has fewer parts than asked.
var ErrNoSuchPart = errors.New("no such part of the process list")

// ProcessesJSON is part k of the node's unfinished processes and their
// version, encoded, for corral.node.<node>.procs: the whole list when it
// fits a message (api.NodeProcesses.Parts). A version (not nil) asks for
// that version's part, while it is one of the last two. A list its
// heartbeat does not carry (api.NodeHeartbeat) every other node asks for
// at once: it is described and encoded once per version, for the first
// to ask.
func (a *Announcer) ProcessesJSON(k int, version *uint64) ([]byte, error) {
	c := a.procsReply.Load()
	switch {
	case c != nil && version != nil && c.version == *version:
	case c != nil && version != nil && c.prev != nil && c.prev.version == *version:
		c = c.prev
	case c == nil || c.version != a.procsVersion.Load():
		np := listOf(a.snapshot())
		parts, err := registry.SplitList(np, a.listRoom())
		if err != nil {
			return nil, err
		}
		next := &encodedProcs{version: np.Version, parts: parts}
		if c != nil {
			next.prev = &encodedProcs{version: c.version, parts: c.parts}
		}
		a.procsReply.Store(next)
		c = next
	}
	if k < 0 || k >= len(c.parts) {
		return nil, fmt.Errorf("part %d of %d: %w", k, len(c.parts), ErrNoSuchPart)
	}
	return c.parts[k], nil
}

// registryKV is the registry bucket once set up, else nil.
func (a *Announcer) registryKV() jetstream.KeyValue {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sharedKV
}

// procsRefresh is how often the node puts its process list even when it
// did not change, so that it never reaches registry.MaxAge.
const procsRefresh = time.Hour

// Bounds of setting the registry up: Serve waits for the first attempt,
// so it is short (a JetStream cluster still electing its leader may not
// answer at all); the writer's own attempts may take longer.
const (
	firstSetUpTimeout = time.Second
	setUpTimeout      = 5 * time.Second
)

// Start announces the node once before it returns (so that, when the
// registry is up, the node is in it once Serve returned), then starts the
// goroutines, until stop.
func (a *Announcer) Start() {
	a.started.Store(time.Now().UnixNano())
	a.heartbeat()
	a.goOwned(a.watch)
	if a.registry == nil {
		a.goOwned(a.heartbeatLoop)
		return
	}
	a.writeRecord(firstSetUpTimeout)
	a.goOwned(a.heartbeatLoop)
	a.goOwned(a.writerLoop)
}

// goOwned runs fn in a goroutine stop waits for, unless stop was called.
func (a *Announcer) goOwned(fn func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.stopped {
		a.wg.Go(fn)
	}
}

// Stop ends the goroutines and waits for them.
func (a *Announcer) Stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
}

// ProcessesChanged says a process started or ended: the registry gets
// the node's process list soon, without waiting for the next interval.
func (a *Announcer) ProcessesChanged() {
	a.procsVersion.Add(1)
	for _, ch := range []chan struct{}{a.changed, a.beatSoon} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// heartbeatLoop publishes a heartbeat every interval, and soon after the
// node's processes change (at most one every quarter interval), so that
// the others learn of a new process before the node could die with it.
func (a *Announcer) heartbeatLoop() {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	var soon *time.Timer
	var soonC <-chan time.Time
	last := time.Now()
	for {
		select {
		case <-t.C:
		case <-a.beatSoon:
			if soonC != nil {
				continue
			}
			wait := a.interval/4 - time.Since(last)
			if wait > 0 {
				soon = time.NewTimer(wait)
				soonC = soon.C
				continue
			}
		case <-soonC:
			soonC = nil
		case <-a.ctx.Done():
			if soon != nil {
				soon.Stop()
			}
			return
		}
		a.heartbeat()
		last = time.Now()
	}
}

// A heartbeat carries a process list (api.NodeHeartbeat) of at most
// maxBeatList processes, and only while it stays within maxBeatBytes and
// the server's max_payload: a heartbeat too big to send would leave the
// node silent, and lost.
const (
	maxBeatList  = 256
	maxBeatBytes = 64 << 10
)

// heartbeat samples the host and publishes the node's heartbeat.
func (a *Announcer) heartbeat() {
	a.host.Store(sampleHost())
	info, procs := a.snapshot()
	b := api.NodeHeartbeat{NodeInfo: info}
	if info.ProcsVersion != a.beatVersion && len(procs) <= maxBeatList {
		list := listOf(info, procs)
		b.ProcessList = &list
	}
	data, err := json.Marshal(b)
	if err == nil && b.ProcessList != nil && (len(data) > maxBeatBytes || int64(len(data)) > a.nc.MaxPayload()) {
		b.ProcessList = nil // the others ask for it
		data, err = json.Marshal(b)
	}
	if err != nil {
		a.log.Error("cannot encode heartbeat", "err", err)
		return
	}
	m := &nats.Msg{Subject: bus.NodeHeartbeatSubject(info.ID), Header: nats.Header{bus.HeaderNode: []string{info.ID}}, Data: data}
	if err := a.nc.PublishMsg(m); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		a.log.Debug("cannot publish heartbeat", "err", err)
		return
	}
	a.beatVersion = info.ProcsVersion
}

// writerLoop puts the node's record every interval. Between those, a
// change of the node's processes is put at once if the list was last put
// an interval ago or more, otherwise when that interval is over: at most
// one put of the list per interval, and none late by more than one.
func (a *Announcer) writerLoop() {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	var due *time.Timer // a put of the process list is due
	var dueC <-chan time.Time
	defer func() {
		if due != nil {
			due.Stop()
		}
	}()
	for {
		select {
		case <-t.C:
			a.writeRecord(setUpTimeout)
		case <-a.changed:
			if dueC != nil {
				continue
			}
			if wait := a.interval - time.Since(a.procsAt); wait > 0 {
				due = time.NewTimer(wait)
				dueC = due.C
				continue
			}
			a.putProcs()
		case <-dueC:
			dueC = nil
			a.putProcs()
		case <-a.ctx.Done():
			return
		}
	}
}

// writeRecord puts the node's record, and its process list if it changed.
func (a *Announcer) writeRecord(setUpTimeout time.Duration) {
	if !a.nc.IsConnected() || !a.setUp(setUpTimeout) {
		return
	}
	info, procs := a.snapshot()
	data, err := json.Marshal(info)
	if err != nil {
		a.log.Error("cannot encode node record", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, max(a.interval, time.Second))
	defer cancel()
	if _, err := a.kv.Put(ctx, registry.NodeKey(info.ID), data); err != nil {
		a.putFailed(err)
		return
	}
	a.putList(ctx, listOf(info, procs))
}

// putProcs puts the node's process list, if it changed.
func (a *Announcer) putProcs() {
	if !a.ensured || !a.nc.IsConnected() {
		return
	}
	info, procs := a.snapshot()
	ctx, cancel := context.WithTimeout(a.ctx, max(a.interval, time.Second))
	defer cancel()
	a.putList(ctx, listOf(info, procs))
}

func (a *Announcer) putList(ctx context.Context, np api.NodeProcesses) {
	if a.lastProcs != nil && np.Version == a.putVersion && np.StartedAt.Equal(a.putLife) && time.Since(a.procsAt) < procsRefresh {
		// Put already: every change of the list counts a version (among
		// 1,000 processes, encoding it at every record was a tenth of an
		// idle node's work).
		return
	}
	parts, err := registry.SplitList(np, a.listRoom())
	if err != nil {
		a.log.Error("cannot encode process list", "err", err)
		return
	}
	list := parts[0]
	if len(parts) > 1 {
		list = bytes.Join(parts, nil)
	}
	if bytes.Equal(list, a.lastProcs) && time.Since(a.procsAt) < procsRefresh {
		return
	}
	if err := a.writeList(ctx, np.Node, parts); err != nil {
		a.putFailed(err)
		return
	}
	a.lastProcs, a.procsAt, a.putVersion, a.putLife = list, time.Now(), np.Version, np.StartedAt
	if a.warned {
		a.warned = false
		a.log.Info("node registry is back", "bucket", registry.Bucket)
	}
}

// listRoom is the most a part of the process list may hold
// (bus.MessageRoom, or listLimit).
func (a *Announcer) listRoom() int {
	if a.listLimit > 0 {
		return a.listLimit
	}
	return bus.MessageRoom(a.nc)
}

// writeList puts the parts of node's process list (registry.SplitList):
// the others first, then the first, which readers start from; then it
// deletes the parts a longer list left.
func (a *Announcer) writeList(ctx context.Context, node string, parts [][]byte) error {
	for k := len(parts) - 1; k >= 1; k-- {
		if _, err := a.kv.Put(ctx, registry.PartKey(node, k), parts[k]); err != nil {
			return err
		}
	}
	if _, err := a.kv.Put(ctx, registry.ProcsKey(node), parts[0]); err != nil {
		return err
	}
	a.deleteParts(ctx, node, len(parts))
	a.putParts = len(parts)
	return nil
}

// deleteParts deletes the parts from the from-th on that the list last put
// had. They are of no use to a reader (the first part says how many there
// are): a failure is only logged.
func (a *Announcer) deleteParts(ctx context.Context, node string, from int) {
	for k := max(from, 1); k < a.putParts; k++ {
		if err := a.kv.Delete(ctx, registry.PartKey(node, k)); err != nil {
			a.log.Debug("cannot delete a part of the process list", "part", k, "err", err)
		}
	}
}

// setUp makes sure the registry bucket exists and, the first time, starts
// the watcher. It reports whether the registry can be used now. Failures
// are retried with a backoff of one interval doubling to a minute, with
// jitter, so that the nodes of a cluster that start together do not retry
// together.
func (a *Announcer) setUp(timeout time.Duration) bool {
	if a.ensured {
		return true
	}
	if time.Now().Before(a.nextTry) {
		return false
	}
	ctx, cancel := context.WithTimeout(a.ctx, timeout)
	defer cancel()
	kv, err := registry.Ensure(ctx, a.js, *a.registry)
	if err != nil {
		a.backoff = min(max(2*a.backoff, a.interval), time.Minute)
		a.nextTry = time.Now().Add(a.backoff + rand.N(a.backoff/2+1))
		a.log.Debug("cannot set up the node registry", "err", err, "retryIn", a.backoff)
		if !a.warned && a.ctx.Err() == nil {
			a.warned = true
			if errors.Is(err, bus.ErrNoJetStream) {
				a.log.Info("no JetStream: no node registry, so gone nodes are not shown and node loss is not announced", "err", err)
			} else {
				a.log.Warn("cannot set up the node registry; retrying", "err", err)
			}
		}
		return false
	}
	a.ensured, a.backoff = true, 0
	if a.kv == nil {
		a.kv = kv
		a.mu.Lock()
		a.sharedKV = kv
		a.mu.Unlock()
		a.goOwned(func() { a.followRegistry(kv) })
	}
	return true
}

// putFailed logs a failed put (once until one succeeds again) and has the
// bucket ensured again, in case the server lost it.
func (a *Announcer) putFailed(err error) {
	if a.ctx.Err() != nil {
		return
	}
	a.log.Debug("cannot update the node registry", "err", err)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrNoResponders) {
		a.ensured = false
		a.lastProcs = nil
	}
	if !a.warned {
		a.warned = true
		a.log.Warn("cannot update the node registry", "bucket", registry.Bucket, "err", err)
	}
}

// Leave is the node's last word, once the goroutines have stopped: a node
// without unfinished processes leaves the registry (it is not lost: it
// stopped), one that leaves processes running (detach) puts their list
// and its last record, so that they are shown as unknown once it is gone.
func (a *Announcer) Leave(ctx context.Context) error {
	if a.kv == nil || !a.nc.IsConnected() {
		return nil
	}
	info, procs := a.snapshot()
	if len(procs) == 0 {
		// The list first: the other nodes take its deletion as the node
		// leaving (they do not follow the records).
		if err := a.kv.Delete(ctx, registry.ProcsKey(info.ID)); err != nil {
			return err
		}
		a.deleteParts(ctx, info.ID, 1)
		return a.kv.Delete(ctx, registry.NodeKey(info.ID))
	}
	record, err := json.Marshal(info)
	if err != nil {
		return err
	}
	parts, err := registry.SplitList(listOf(info, procs), a.listRoom())
	if err != nil {
		return err
	}
	if err := a.writeList(ctx, info.ID, parts); err != nil {
		return err
	}
	_, err = a.kv.Put(ctx, registry.NodeKey(info.ID), record)
	return err
}

// sampleHost measures the host: CPU use since the previous sample and
// memory in use. It returns nil when neither can be read.
func sampleHost() *api.HostStats {
	var h api.HostStats
	ok := false
	if pct, err := cpu.Percent(0, false); err == nil && len(pct) == 1 {
		h.CPUPercent, ok = pct[0], true
	}
	if vm, err := mem.VirtualMemory(); err == nil {
		h.MemUsedBytes, h.MemTotalBytes, ok = vm.Used, vm.Total, true
	}
	if !ok {
		return nil
	}
	return &h
}

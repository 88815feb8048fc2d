package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"
)

// announcer is a node's part in discovery, in three goroutines:
//   - the heartbeat: every interval, the node's NodeInfo on
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
// The Service owns it: Serve starts it, Close stops it and waits.
type announcer struct {
	s        *Service
	nc       *nats.Conn
	js       jetstream.JetStream
	interval time.Duration
	registry *RegistryConfig
	log      *slog.Logger

	host    atomic.Pointer[api.HostStats] // the last sample, for Info
	changed chan struct{}                 // cap 1: the node's processes changed
	peers   peerCache

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	stopped bool // no goroutine starts any more

	// The writer's own state (start and leave use it while the writer
	// does not run).
	kv        jetstream.KeyValue // nil until the registry is set up
	ensured   bool               // the bucket is known to exist
	nextTry   time.Time          // when to try to set the registry up again
	backoff   time.Duration
	warned    bool      // a registry failure was logged
	lastProcs []byte    // the process list last put
	procsAt   time.Time // when it was put
}

func newAnnouncer(s *Service) *announcer {
	js, _ := jetstream.New(s.nc) // without options, New cannot fail
	ctx, cancel := context.WithCancel(context.Background())
	return &announcer{
		s: s, nc: s.nc, js: js, interval: s.cfg.HeartbeatInterval, registry: s.cfg.Registry, log: s.log,
		changed: make(chan struct{}, 1), peers: peerCache{peers: map[string]*peer{}},
		ctx: ctx, cancel: cancel,
	}
}

// Bounds of setting the registry up: Serve waits for the first attempt,
// so it is short (a JetStream cluster still electing its leader may not
// answer at all); the writer's own attempts may take longer.
const (
	firstSetUpTimeout = time.Second
	setUpTimeout      = 5 * time.Second
)

// start announces the node once before it returns (so that, when the
// registry is up, the node is in it once Serve returned), then starts the
// goroutines, until stop.
func (a *announcer) start() {
	a.heartbeat()
	if a.registry == nil {
		a.goOwned(a.heartbeatLoop)
		return
	}
	a.writeRecord(firstSetUpTimeout)
	a.goOwned(a.heartbeatLoop)
	a.goOwned(a.writerLoop)
}

// goOwned runs fn in a goroutine stop waits for, unless stop was called.
func (a *announcer) goOwned(fn func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.stopped {
		a.wg.Go(fn)
	}
}

// stop ends the goroutines and waits for them.
func (a *announcer) stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
}

// processesChanged says a process started or ended: the registry gets
// the node's process list soon, without waiting for the next interval.
func (a *announcer) processesChanged() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *announcer) heartbeatLoop() {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.heartbeat()
		case <-a.ctx.Done():
			return
		}
	}
}

// heartbeat samples the host and publishes the node's NodeInfo.
func (a *announcer) heartbeat() {
	a.host.Store(sampleHost())
	info, _ := a.s.snapshot()
	data, err := json.Marshal(info)
	if err != nil {
		a.log.Error("cannot encode heartbeat", "err", err)
		return
	}
	m := &nats.Msg{Subject: NodeHeartbeatSubject(info.ID), Header: nats.Header{HeaderNode: []string{info.ID}}, Data: data}
	if err := a.nc.PublishMsg(m); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		a.log.Debug("cannot publish heartbeat", "err", err)
	}
}

// writerLoop puts the node's record every interval. Between those, a
// change of the node's processes is put at once if the list was last put
// an interval ago or more, otherwise when that interval is over: at most
// one put of the list per interval, and none late by more than one.
func (a *announcer) writerLoop() {
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
func (a *announcer) writeRecord(setUpTimeout time.Duration) {
	if !a.nc.IsConnected() || !a.setUp(setUpTimeout) {
		return
	}
	info, procs := a.s.snapshot()
	data, err := json.Marshal(info)
	if err != nil {
		a.log.Error("cannot encode node record", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, max(a.interval, time.Second))
	defer cancel()
	if _, err := a.kv.Put(ctx, registryNodeKey(info.ID), data); err != nil {
		a.putFailed(err)
		return
	}
	a.putList(ctx, info.ID, procs)
}

// putProcs puts the node's process list, if it changed.
func (a *announcer) putProcs() {
	if !a.ensured || !a.nc.IsConnected() {
		return
	}
	info, procs := a.s.snapshot()
	ctx, cancel := context.WithTimeout(a.ctx, max(a.interval, time.Second))
	defer cancel()
	a.putList(ctx, info.ID, procs)
}

func (a *announcer) putList(ctx context.Context, nodeID string, procs []api.ProcessSummary) {
	list, err := json.Marshal(api.NodeProcesses{Node: nodeID, Processes: procs})
	if err != nil {
		a.log.Error("cannot encode process list", "err", err)
		return
	}
	if bytes.Equal(list, a.lastProcs) && time.Since(a.procsAt) < procsRefresh {
		return
	}
	if _, err := a.kv.Put(ctx, registryProcsKey(nodeID), list); err != nil {
		a.putFailed(err)
		return
	}
	a.lastProcs, a.procsAt = list, time.Now()
	if a.warned {
		a.warned = false
		a.log.Info("node registry is back", "bucket", RegistryBucket)
	}
}

// setUp makes sure the registry bucket exists and, the first time, starts
// the watcher. It reports whether the registry can be used now. Failures
// are retried with a backoff of one interval doubling to a minute, with
// jitter, so that the nodes of a cluster that start together do not retry
// together.
func (a *announcer) setUp(timeout time.Duration) bool {
	if a.ensured {
		return true
	}
	if time.Now().Before(a.nextTry) {
		return false
	}
	ctx, cancel := context.WithTimeout(a.ctx, timeout)
	defer cancel()
	kv, err := EnsureRegistry(ctx, a.js, *a.registry)
	if err != nil {
		a.backoff = min(max(2*a.backoff, a.interval), time.Minute)
		a.nextTry = time.Now().Add(a.backoff + rand.N(a.backoff/2+1))
		a.log.Debug("cannot set up the node registry", "err", err, "retryIn", a.backoff)
		if !a.warned && a.ctx.Err() == nil {
			a.warned = true
			if errors.Is(err, ErrNoJetStream) {
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
		a.goOwned(func() { a.watchPeers(kv) })
	}
	return true
}

// putFailed logs a failed put (once until one succeeds again) and has the
// bucket ensured again, in case the server lost it.
func (a *announcer) putFailed(err error) {
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
		a.log.Warn("cannot update the node registry", "bucket", RegistryBucket, "err", err)
	}
}

// leave is the node's last word, once the goroutines have stopped: a node
// without unfinished processes leaves the registry (it is not lost: it
// stopped), one that leaves processes running (detach) puts their list
// and its last record, so that they are shown as unknown once it is gone.
func (a *announcer) leave(ctx context.Context) error {
	if a.kv == nil || !a.nc.IsConnected() {
		return nil
	}
	info, procs := a.s.snapshot()
	if len(procs) == 0 {
		err := a.kv.Delete(ctx, registryNodeKey(info.ID))
		return errors.Join(err, a.kv.Delete(ctx, registryProcsKey(info.ID)))
	}
	record, err := json.Marshal(info)
	if err != nil {
		return err
	}
	list, err := json.Marshal(api.NodeProcesses{Node: info.ID, Processes: procs})
	if err != nil {
		return err
	}
	if _, err := a.kv.Put(ctx, registryProcsKey(info.ID), list); err != nil {
		return err
	}
	_, err = a.kv.Put(ctx, registryNodeKey(info.ID), record)
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

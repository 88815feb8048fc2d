package desired

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/node"
)

// Definer is what the Manager needs of a node's supervisor to load the
// applied definitions (node.Supervisor).
type Definer interface {
	Apply(d node.Definition) (shadowed bool, err error)
	Unapply(name string) bool
}

// Cluster is what the reconciler asks of the nodes (control.Control).
type Cluster interface {
	Nodes(ctx context.Context) ([]api.NodeInfo, error)
	List(ctx context.Context, req api.ListRequest) (control.ListResult, error)
	Spawn(ctx context.Context, nodeID, name string, req api.SpawnRequest) (api.ManagedProcess, error)
	Stop(ctx context.Context, id, signal string) (api.ManagedProcess, error)
}

var _ Cluster = (*control.Control)(nil)

// Config configures a node's Manager.
type Config struct {
	NodeID string
	Labels map[string]string
	// Interval is the node's heartbeat interval: the reconciler runs at
	// least this often, and the lease lasts MissedHeartbeats of them.
	Interval time.Duration
	// Definer, when set (remote_definitions = true), loads the applied
	// definitions whose selector matches Labels; Changed is called after
	// each change.
	Definer Definer
	Changed func()
	// Control reaches the other nodes (placement, stops, listings): a
	// control.Control.
	Control Cluster
	// Ready is called once the buckets are set up: the node may answer
	// corral.desired.* from then on.
	Ready func()
	// Alive lists the nodes this node sees alive, itself included, and
	// Isolated says whether it sees fewer than half of those it knows
	// (package bus/presence). An isolated node does not reconcile, and
	// the smallest alive one acts for a lost reconciler.
	Alive    func() []string
	Isolated func() bool
	Logger   *slog.Logger
}

// Manager is one node's part in the desired state: see the package doc.
type Manager struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	kv       jetstream.KeyValue // nil until set up
	leases   jetstream.KeyValue
	services serviceView          // followDesired and rereadServices merge into it
	lost     map[string]time.Time // nodes declared lost, when
	// passCancel ends the reconciliation in progress, if any.
	passCancel context.CancelFunc

	// beforeRereadMerge, when set (by tests), runs between the reread's
	// read of the bucket and its merge (rereadServices).
	beforeRereadMerge func()
	// poked, when set (by tests), runs at every Poke.
	poked func()

	trigger chan struct{} // cap 1: reconcile soon
	lostCh  chan string   // nodes declared lost
	elect   *elector
	rec     *reconciler

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Manager; Start starts it.
func New(nc *nats.Conn, cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = registry.DefaultHeartbeatInterval
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{nc: nc, js: js, cfg: cfg, log: cfg.Logger, trigger: make(chan struct{}, 1),
		lostCh: make(chan string, 16), ctx: ctx, cancel: cancel}
	m.elect = &elector{nodeID: cfg.NodeID, log: cfg.Logger}
	m.rec = &reconciler{m: m}
	return m
}

// Start sets the buckets up (retrying while JetStream is not there) and
// runs the Manager's goroutines until Stop.
func (m *Manager) Start() {
	m.wg.Go(m.run)
}

// Stop stops the goroutines and gives the lease up, so that another node
// takes over at once.
func (m *Manager) Stop() {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	leases := m.leases
	m.mu.Unlock()
	if leases != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m.elect.resign(ctx, leases)
		cancel()
	}
}

// Leader reports whether this node reconciles now: it holds the lease,
// renewed within the last half of its life (a holder that cannot renew
// stops acting well before another node may take the lease over).
func (m *Manager) Leader() bool {
	return m.elect.holds(m.leaseTTL()/2) && (m.cfg.Isolated == nil || !m.cfg.Isolated())
}

// Poke asks for a reconciliation soon (a service's process ended).
func (m *Manager) Poke() {
	if m.poked != nil {
		m.poked()
	}
	select {
	case m.trigger <- struct{}{}:
	default:
	}
}

// The lease lasts LeaseTTL unless renewed; its holder renews it every
// LeaseTTL/5 and acts only while its last renewal is younger than half of
// it. The others look at it every LeaseTTL/2. While the registry does not
// answer, a node tries again as soon as each attempt ends (elector.pace),
// so that a holder whose renewal failed takes its lease back as soon as
// the registry answers. A lost holder's lease (process.node_lost) is
// taken over at once by the smallest node alive, which acts for the lost
// holder meanwhile, for at most half the lease; past that, by any node
// (takesOver). So LeaseTTL only bounds how long a holder that stopped
// without a loss announced (a partition's minority side) keeps the others
// waiting.
const LeaseTTL = 10 * time.Second

func (m *Manager) leaseTTL() time.Duration { return LeaseTTL }

// run sets up, then follows node losses, the applied definitions and the
// lease, and reconciles while it holds the lease.
func (m *Manager) run() {
	kv, leases, ok := m.setUp()
	if !ok {
		return
	}
	if m.cfg.Ready != nil {
		m.cfg.Ready()
	}
	sub, err := m.nc.Subscribe(bus.SubjectNodeLost, func(msg *nats.Msg) {
		var nl api.NodeLost
		if json.Unmarshal(msg.Data, &nl) == nil && nl.Node != "" {
			select {
			case m.lostCh <- nl.Node:
			default:
			}
		}
	})
	if err != nil {
		m.log.Error("cannot follow node losses; the reconciler's lease is taken over only when it expires", "err", err)
	} else {
		defer sub.Unsubscribe()
	}
	ends, err := m.nc.Subscribe(bus.SubjectStopped, func(*nats.Msg) { m.Poke() })
	if err == nil {
		defer ends.Unsubscribe()
	}
	crashes, err := m.nc.Subscribe(bus.SubjectCrashed, func(*nats.Msg) { m.Poke() })
	if err == nil {
		defer crashes.Unsubscribe()
	}
	if m.cfg.Definer != nil {
		m.wg.Go(func() { m.followDefinitions(kv) })
	}
	m.wg.Go(func() { m.followDesired(kv) })
	m.wg.Go(func() { m.rereadLoop(kv) })
	m.wg.Go(func() { m.campaignLoop(leases) })

	// Reconcile on every trigger, and every interval in case one was
	// missed (a spawn refused for room, a node that came back).
	m.loop(max(m.cfg.Interval, time.Second), m.trigger, func() {
		if !m.Leader() {
			return
		}
		ctx, cancel := context.WithCancel(m.ctx)
		m.mu.Lock()
		m.passCancel = cancel
		m.mu.Unlock()
		m.rec.pass(ctx)
		m.mu.Lock()
		m.passCancel = nil
		m.mu.Unlock()
		cancel()
	})
}

// loop calls fn every interval, and at each trigger (nil: none), until
// the Manager stops.
func (m *Manager) loop(every time.Duration, trigger <-chan struct{}, fn func()) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		case <-trigger:
		}
		fn()
	}
}

// servicesReread is how often the reconciler reads the services again
// from the bucket besides following its changes: a watch that stalled (its
// consumer lost across a stream leader's change, once in the services
// test) must not leave the reconciler with an old desired count.
const servicesReread = 3 * time.Second

// rereadLoop reads the services again every servicesReread while this
// node reconciles, and asks for a pass when that changed them. It runs on
// its own: a read waits for JetStream, which may not answer for a second
// or more after a node loss, and a pass must not wait with it (the lost
// node's instances are to move at once; a pass about to act asks the
// bucket itself, Manager.behind).
func (m *Manager) rereadLoop(kv jetstream.KeyValue) {
	m.loop(servicesReread, nil, func() {
		if !m.Leader() {
			return
		}
		if changed, err := m.rereadServicesWithin(m.ctx, kv); err == nil && changed {
			m.Poke()
		}
	})
}

// rereadServices merges what the bucket holds now into the services
// followDesired keeps (by revision: see serviceView); on failure they stay
// as they are.
func (m *Manager) rereadServices(kv jetstream.KeyValue) {
	_, _ = m.rereadServicesWithin(m.ctx, kv)
}

// rereadServicesWithin is rereadServices, given up when ctx ends; it
// reports whether the services changed.
func (m *Manager) rereadServicesWithin(ctx context.Context, kv jetstream.KeyValue) (changed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, max(m.cfg.Interval, time.Second))
	defer cancel()
	records, at, err := readServices(ctx, kv)
	if err != nil {
		m.log.Debug("cannot read the services again", "err", err)
		return false, err
	}
	if m.beforeRereadMerge != nil {
		m.beforeRereadMerge()
	}
	m.mu.Lock()
	changed = m.services.applySnapshot(records, at)
	m.mu.Unlock()
	return changed, nil
}

// freshWait bounds how long a pass waits to learn the bucket's last
// revision before it acts (behind). A server answers in a few
// milliseconds; one that does not answer within this is electing a leader
// (right after a node loss, in the partition test), and the pass then
// acts on its view: the wait delays the placement of a lost node's
// instances by at most this.
const freshWait = 200 * time.Millisecond

// behind makes sure, before a pass first acts, that its view of the
// services is not behind the bucket: a watch that lags (its consumer lost
// across a stream leader's change) would have the pass place the
// instances of a service deleted a moment ago, or stop those of one just
// applied, until the next reread. It asks the bucket's last revision, and
// when the bucket holds one that the view the pass read (wanted, as of
// view) had not taken in (a change of services.>, or of anything else in
// the bucket: the view cannot tell), reads the services again, and
// reports true when they are not what the pass read: the pass is to be
// made again on the view read. When the bucket's revision cannot be learnt
// within freshWait, or the read fails (JetStream electing a leader, as
// right after a node loss, when acting matters most), the pass acts on
// the view it has; so it does when the read finds the services as the
// pass read them (a definition changed), so that writes elsewhere in the
// bucket never hold a pass back.
func (m *Manager) behind(ctx context.Context, wanted []api.ServiceSpec, view bucketState) bool {
	kv, err := m.bucket()
	if err != nil {
		return false
	}
	wait, cancel := context.WithTimeout(ctx, freshWait)
	at := bucketNow(wait, kv)
	cancel()
	if at.rev == 0 || at.rev <= view.rev && (view.created.IsZero() || view.sameBucket(at)) {
		return false
	}
	m.log.Debug("reconcile: the services' view is behind the bucket; reading them again", "view", view.rev, "bucket", at.rev)
	if _, err := m.rereadServicesWithin(ctx, kv); err != nil {
		return false
	}
	now, _ := m.wanted()
	return !reflect.DeepEqual(now, wanted)
}

// campaignLoop renews or seeks the lease at its pace (elector.pace), and
// at once when a node is declared lost (its lease, if it held it, is
// taken over). It runs on its own, so a slow reconciliation never delays
// a renewal.
func (m *Manager) campaignLoop(leases jetstream.KeyValue) {
	every := m.leaseTTL() / 10
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := time.Now() // when the last campaign began
	m.campaign(leases)
	for {
		select {
		case <-m.ctx.Done():
			return
		case lost := <-m.lostCh:
			last = time.Now()
			// Losses announced together are handled together: each
			// campaign may wait for the registry, and the holder's loss
			// must not wait behind the others'.
			losses := []string{lost}
			for more := true; more; {
				select {
				case l := <-m.lostCh:
					losses = append(losses, l)
				default:
					more = false
				}
			}
			m.nodesLost(leases, losses)
		case <-tick.C:
			// Half a tick of slack: a pace of one tick must not miss a
			// tick that comes a moment early. While the holder last seen
			// is lost, every tick: its lease is to be taken over.
			if time.Since(last)+every/2 >= m.elect.pace(m.leaseTTL()) || m.elect.isActing() || m.takesOverHolder() {
				last = time.Now()
				m.campaign(leases)
			}
		}
	}
}

// nodesLost is nodes declared lost: the smallest node alive acts for the
// one that held the lease, a pass is made at once, and the lease is sought
// (taken over if it was a lost node's).
func (m *Manager) nodesLost(leases jetstream.KeyValue, lost []string) {
	for _, n := range lost {
		m.markLost(n)
	}
	if m.smallestAlive() {
		for _, n := range lost {
			m.elect.act(n)
		}
	}
	// After act: the pass made at once is the acting node's, where it was
	// skipped for want of the lease until the campaign below returned
	// (which waits for the registry, electing a leader after a loss).
	m.restartPass()
	m.campaign(leases)
	m.Poke()
}

// campaign renews or tries to take the lease (a lost node's at once).
func (m *Manager) campaign(leases jetstream.KeyValue) {
	ctx, cancel := context.WithTimeout(m.ctx, m.elect.attempt(m.leaseTTL()))
	defer cancel()
	if m.elect.campaign(ctx, leases, m.leaseTTL(), m.takesOver) {
		m.Poke() // a new leader looks at once
	}
}

// restartPass cuts a reconciliation in progress short (it may be waiting
// for the node just lost to answer) and has another run at once.
func (m *Manager) restartPass() {
	m.mu.Lock()
	if m.passCancel != nil {
		m.passCancel()
	}
	m.mu.Unlock()
	m.Poke()
}

// markLost remembers a node declared lost, for a lease's time.
func (m *Manager) markLost(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lost == nil {
		m.lost = map[string]time.Time{}
	}
	now := time.Now()
	for n, at := range m.lost {
		if now.Sub(at) > m.leaseTTL() {
			delete(m.lost, n)
		}
	}
	m.lost[id] = now
}

// takesOver reports whether this node takes the lease of holder over:
// holder is lost, and this node is the one that acts for it (the smallest
// alive, nodesLost), or the loss is older than the most an acting node
// acts (half the lease: elector.holds). Another node that took the lease
// over at once would reconcile beside the acting node, and both would
// place the lost node's instances; past that time, the lease is anyone's,
// for the smallest node may have no reconciler (not set up yet), have
// missed the announcement, or be cut off from the registry.
func (m *Manager) takesOver(holder string) bool {
	m.mu.Lock()
	at, lost := m.lost[holder]
	m.mu.Unlock()
	since := time.Since(at)
	if !lost || since > m.leaseTTL() { // not lost, or no longer
		return false
	}
	return m.cfg.Alive == nil || m.smallestAlive() || since >= m.leaseTTL()/2
}

// takesOverHolder reports whether this node takes over the lease of its
// holder as this node last saw it (takesOver): it then campaigns at every
// tick, not every half lease.
func (m *Manager) takesOverHolder() bool {
	h := m.elect.lastHolder()
	return h != "" && h != m.cfg.NodeID && m.takesOver(h)
}

// smallestAlive reports whether this node is the smallest it sees alive.
func (m *Manager) smallestAlive() bool {
	if m.cfg.Alive == nil {
		return false
	}
	for _, id := range m.cfg.Alive() {
		if id < m.cfg.NodeID {
			return false
		}
	}
	return true
}

// setUp creates or opens the buckets, retrying with a backoff until it
// works or the Manager stops.
func (m *Manager) setUp() (kv, leases jetstream.KeyValue, ok bool) {
	backoff, warned, start := m.cfg.Interval, false, time.Now()
	for {
		ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
		kv, leases, err := ensure(ctx, m.js)
		cancel()
		if err == nil {
			m.mu.Lock()
			m.kv, m.leases = kv, leases
			m.mu.Unlock()
			if warned {
				m.log.Info("desired state is available", "bucket", Bucket)
			}
			return kv, leases, true
		}
		// The node registry is made by the nodes' presence, which starts
		// with this Manager: at a cluster's first start it is missing for a
		// moment, which is nothing to warn of.
		early := errors.Is(err, registry.ErrNoRegistry) && time.Since(start) < registryWait
		if !warned && !early && m.ctx.Err() == nil {
			warned = true
			if errors.Is(err, bus.ErrNoJetStream) {
				m.log.Info("no JetStream: no services or applied definitions (corralctl apply)", "err", err)
			} else {
				m.log.Warn("cannot set up the desired state; retrying", "err", err)
			}
		}
		t := time.NewTimer(backoff + rand.N(backoff/2+1))
		select {
		case <-m.ctx.Done():
			t.Stop()
			return nil, nil, false
		case <-t.C:
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// registryWait is how long setUp waits for the node registry before it
// warns that it cannot set up.
const registryWait = 10 * time.Second

// bucket is the desired-state bucket, or an error saying it is not there.
func (m *Manager) bucket() (jetstream.KeyValue, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kv == nil {
		return nil, api.Errorf(api.ErrNoCapacity, "node %s has no desired state yet: JetStream is not available to it", m.cfg.NodeID)
	}
	return m.kv, nil
}

// followDesired keeps the services in memory, so that a reconciliation
// needs no JetStream read (JetStream may be electing a leader right after
// a node loss, when one is needed most), and pokes the reconciler on every
// change. Each (re)watch starts from the current values, merged as one
// snapshot once they are all in (by revision: see serviceView).
func (m *Manager) followDesired(kv jetstream.KeyValue) {
	for m.ctx.Err() == nil {
		at := bucketNow(m.ctx, kv)
		w, err := kv.Watch(m.ctx, servicePrefix+">")
		if err != nil {
			m.log.Debug("cannot watch the services; retrying", "err", err)
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(m.cfg.Interval):
			}
			continue
		}
		var current []serviceRecord // the current values, until all are in
		synced, remade := false, false
		m.drainAll(w, func(e jetstream.KeyValueEntry) {
			if remade {
				return
			}
			if !synced && e != nil {
				current = append(current, serviceRecordOf(e))
				return
			}
			if e == nil && !at.sameBucket(bucketNow(m.ctx, kv)) {
				remade = true // the values may be of either bucket: watch again
				bus.StopWatch(w)
				return
			}
			var changed bool
			m.mu.Lock()
			if e == nil {
				synced, changed = true, m.services.applySnapshot(current, at)
			} else {
				changed = m.services.apply(serviceRecordOf(e))
			}
			m.mu.Unlock()
			if changed {
				m.Poke()
			}
		})
		bus.StopWatch(w)
	}
}

// wanted returns the services, sorted, once they have been read.
func (m *Manager) wanted() ([]api.ServiceSpec, bool) {
	specs, _, ok := m.wantedAsOf()
	return specs, ok
}

// wantedAsOf is wanted, and where the view it was taken from stands: the
// bucket's revision it is current as of, and the bucket's creation
// (serviceView).
func (m *Manager) wantedAsOf() ([]api.ServiceSpec, bucketState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	at := bucketState{rev: m.services.seen, created: m.services.bucket}
	if m.services.specs == nil {
		return nil, at, false
	}
	out := make([]api.ServiceSpec, 0, len(m.services.specs))
	for _, s := range m.services.specs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b api.ServiceSpec) int { return strings.Compare(a.Name, b.Name) })
	return out, at, true
}

// watch calls fn with every entry of filter, deletes included, from the
// current values on, re-watching after a failure, until the Manager stops.
func (m *Manager) watch(kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry)) {
	for m.ctx.Err() == nil {
		w, err := kv.Watch(m.ctx, filter)
		if err != nil {
			m.log.Debug("cannot watch the desired state; retrying", "filter", filter, "err", err)
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(m.cfg.Interval):
			}
			continue
		}
		m.drain(w, fn)
		bus.StopWatch(w)
	}
}

// drain hands fn the watcher's entries until it closes or the Manager
// stops.
func (m *Manager) drain(w jetstream.KeyWatcher, fn func(jetstream.KeyValueEntry)) {
	m.drainAll(w, func(e jetstream.KeyValueEntry) {
		if e != nil {
			fn(e)
		}
	})
}

// drainAll is drain with the nil entry that ends the current values.
func (m *Manager) drainAll(w jetstream.KeyWatcher, fn func(jetstream.KeyValueEntry)) {
	for {
		select {
		case <-m.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			fn(e)
		}
	}
}

package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/bus/desired"
	"github.com/corral-run/corral/bus/presence"
	"github.com/corral-run/corral/bus/registry"
	"github.com/corral-run/corral/bus/relay"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/node"
)

// Supervisor is what the control service needs of a node's supervisor.
type Supervisor interface {
	Spawn(ctx context.Context, name string, opts node.SpawnOptions) (api.ManagedProcess, error)
	Get(id string) (api.ManagedProcess, bool)
	GetAll() []api.ManagedProcess
	Summary() (total int, unfinished []api.ProcessSummary)
	Stop(ctx context.Context, id string, sig syscall.Signal) (api.ManagedProcess, error)
	StopAll(ctx context.Context, sig syscall.Signal, name string) ([]api.ManagedProcess, error)
	Restart(ctx context.Context, id string) (api.ManagedProcess, error)
	Send(id string, msg json.RawMessage) error
	DefineRemote(d node.Definition) error
	Apply(d node.Definition) (shadowed bool, err error)
	Unapply(name string) bool
	Shadowed() []string
	Definitions() []node.Definition
	Tail(ctx context.Context, id string, opts node.TailOptions) (node.LogSnapshot, error)
	FollowLogs(ctx context.Context, id string, sink node.LogSink, opts node.TailOptions) (node.LogSnapshot, error)
	UnfollowLogs(id string, sink node.LogSink)
}

var _ Supervisor = (*node.Supervisor)(nil)

// Config configures a node's control service.
type Config struct {
	NodeID string
	Labels map[string]string
	// RemoteDefinitions lets define requests add and replace definitions
	// (never one the node was configured with: 409). Off, define answers
	// 403.
	RemoteDefinitions bool
	// RequestTimeout bounds the work of one request (stop waits for the
	// exit). Default 30 s.
	RequestTimeout time.Duration
	// Relay configures how reports are published (durable events, the
	// bound of what waits for NATS). Its NodeID and Logger default to the
	// service's.
	Relay relay.Config
	// FlushTimeout bounds how long Close waits for the relay to hand on
	// what is in flight. Default 5 s.
	FlushTimeout time.Duration
	// HeartbeatInterval is how often the node publishes its NodeInfo on
	// corral.node.<node>.heartbeat (and refreshes its registry record).
	// A node that misses MissedHeartbeats of them is gone. Default
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// Registry, when set, keeps the node's record and process list in the
	// node registry (the JetStream KV bucket CORRAL_NODES), has the node
	// follow the others' heartbeats and process lists (their records read
	// once) to announce their loss (process.node_lost), and answer
	// corral.registry with what it knows of them. Without JetStream the
	// node retries with a backoff and meanwhile only heartbeats. nil: no
	// registry.
	Registry *registry.Config
	// Follow bounds what following processes' output costs
	// (corral.proc.<id>.follow, follow.go).
	Follow FollowLimits
	// Reload reloads the node's configuration (corral.reload,
	// corral.node.<id>.reload); nil: the node cannot, and says so.
	Reload func() (api.ReloadReply, error)
	Logger *slog.Logger
}

// Service is one node on NATS: it relays the supervisor's reports (it is
// the node.Reporter, and hands them to its Relay), answers the control
// plane (micro service "corral"), and announces the node (its presence
// Announcer).
//
// Create it with New, give it to node.New as the Reporter, then call
// Serve with the supervisor. Close stops answering and waits for requests
// in flight.
type Service struct {
	relay     *relay.Relay
	nc        *nats.Conn
	cfg       Config
	log       *slog.Logger
	startedAt time.Time

	mu       sync.Mutex
	sup      Supervisor
	svc      micro.Service
	procSubs map[string]*nats.Subscription
	procs    *procQueues        // the requests of procSubs, by process; nil until the first
	spawnFor map[string]bool    // names with a corral.spawn.<name> endpoint
	follows  map[string]*follow // followed processes, by id (follow.go)
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // requests handled off the subscription goroutine

	presence *presence.Announcer // heartbeats, registry record, node-loss watch
	control  *control.Control    // to hand a spawn to another node
	desired  *desired.Manager    // services and applied definitions; nil without a registry
}

// New returns a Service for the node cfg.NodeID on nc.
func New(nc *nats.Conn, cfg Config) *Service {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = registry.DefaultHeartbeatInterval
	}
	cfg.Follow.setDefaults()
	if cfg.Relay.NodeID == "" {
		cfg.Relay.NodeID = cfg.NodeID
	}
	if cfg.Relay.Logger == nil {
		cfg.Relay.Logger = cfg.Logger
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		relay: relay.New(nc, cfg.Relay), nc: nc, cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID),
		startedAt: time.Now(), procSubs: make(map[string]*nats.Subscription), spawnFor: make(map[string]bool),
		follows: make(map[string]*follow), ctx: ctx, cancel: cancel,
	}
	s.control = control.New(nc, control.WithTimeout(5*time.Second),
		control.WithLocalRegistry(func(req api.RegistryRequest) (api.RegistryView, bool) { return s.presence.View(req) }))
	s.presence = presence.New(nc, presence.Config{
		NodeID: cfg.NodeID, Interval: cfg.HeartbeatInterval, Registry: cfg.Registry,
		Describe: s.snapshot, PublishLifecycle: s.relay.PublishLifecycle, Logger: s.log,
	})
	return s
}

// Relay is the service's relay: what publishes the reports (Release,
// EnsureStream, Durable, Dropped).
func (s *Service) Relay() *relay.Relay { return s.relay }

// Publish implements node.Reporter: it relays the report and, for a new
// process, starts answering corral.proc.<id>.*; the end of a followed
// process ends its output on corral.logs.<id>.
func (s *Service) Publish(r node.Report) error {
	switch r.Kind {
	case node.KindSpawned, node.KindReconnected:
		if err := s.watchProcess(r.ProcessID); err != nil {
			s.log.Error("cannot serve process control subjects", "process", r.ProcessID, "err", err)
		}
		s.presence.ProcessesChanged()
	case node.KindStopped, node.KindCrashed:
		s.followEnded(r)
		s.presence.ProcessesChanged()
	}
	return s.relay.Publish(r)
}

// Serve registers the micro service "corral" and its endpoints, then
// starts announcing the node: a heartbeat now and every
// HeartbeatInterval, and its registry record (see Config.Registry).
func (s *Service) Serve(sup Supervisor) error {
	meta := map[string]string{"node": s.cfg.NodeID}
	for k, v := range s.cfg.Labels {
		meta["label."+k] = v
	}
	svc, err := micro.AddService(s.nc, micro.Config{
		Name: bus.ServiceName, Version: bus.Version, Metadata: meta,
		Description: "Corral node " + s.cfg.NodeID,
	})
	if err != nil {
		return fmt.Errorf("cannot register control service: %w", err)
	}
	s.mu.Lock()
	s.sup, s.svc = sup, svc
	s.mu.Unlock()

	g := svc.AddGroup(bus.NodeGroup(s.cfg.NodeID), micro.WithGroupQueueGroupDisabled())
	endpoints := []struct {
		verb string
		h    func(micro.Request)
	}{
		{bus.VerbSpawn, s.handleSpawn}, {bus.VerbList, s.handleList}, {bus.VerbDefine, s.handleDefine},
		{bus.VerbDefinitions, s.handleDefinitions}, {bus.VerbStopAll, s.handleStopAll}, {bus.VerbInfo, s.handleInfo},
		{bus.VerbReload, s.handleReload}, {bus.VerbProcs, s.handleProcs},
	}
	for _, e := range endpoints {
		if err := g.AddEndpoint(e.verb, micro.HandlerFunc(e.h)); err != nil {
			return fmt.Errorf("cannot add endpoint %s: %w", e.verb, err)
		}
	}
	for _, e := range []struct {
		name, subject string
		h             func(micro.Request)
	}{{"list-all", bus.SubjectList, s.handleList}, {"reload-all", bus.SubjectReload, s.handleReload}} {
		if err := svc.AddEndpoint(e.name, micro.HandlerFunc(e.h),
			micro.WithEndpointSubject(e.subject), micro.WithEndpointQueueGroupDisabled()); err != nil {
			return fmt.Errorf("cannot add endpoint %s: %w", e.subject, err)
		}
	}
	// Every node knows the others from their heartbeats, registry or not.
	if err := svc.AddEndpoint("registry", micro.HandlerFunc(s.handleRegistry),
		micro.WithEndpointSubject(bus.SubjectRegistry), micro.WithEndpointQueueGroup("registry")); err != nil {
		return fmt.Errorf("cannot add endpoint %s: %w", bus.SubjectRegistry, err)
	}
	for _, d := range sup.Definitions() {
		if err := s.serveSpawn(d.Name); err != nil {
			return err
		}
	}
	if err := s.serveDesired(svc, sup); err != nil {
		return err
	}
	// Subscribing only queues the SUBs on the connection: flush, so that a
	// client on another connection told the node is up finds its endpoints.
	// A connection still waiting to connect sends them when it does.
	if s.nc.IsConnected() {
		if err := s.nc.Flush(); err != nil {
			s.log.Warn("cannot flush control subscriptions", "err", err)
		}
	}
	s.presence.Start()
	return nil
}

// serveSpawn joins the corral.spawn.<name> queue group.
func (s *Service) serveSpawn(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spawnFor[name] || s.svc == nil {
		return nil
	}
	err := s.svc.AddEndpoint("spawn-"+name, micro.HandlerFunc(func(r micro.Request) { s.spawn(r, name) }),
		micro.WithEndpointSubject(bus.SpawnSubject(name)), micro.WithEndpointQueueGroup("spawn"))
	if err != nil {
		return fmt.Errorf("cannot add endpoint %s: %w", bus.SpawnSubject(name), err)
	}
	s.spawnFor[name] = true
	return nil
}

// watchProcess subscribes to corral.proc.<id>.* so that only the owning
// node answers, and nobody at all once the node is gone.
func (s *Service) watchProcess(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.procSubs[id] != nil {
		return nil
	}
	if s.procs == nil {
		s.procs = newProcQueues(s.handleProc, s.log)
		go s.procs.run() // until Close
	}
	// Each process has its subscription and queue (procqueue.go): a flood
	// of requests for one waits, bounded, behind its own, never another's.
	sub, err := s.nc.ChanSubscribe(bus.ProcSubjects(id), s.procs.in)
	if err != nil {
		return err
	}
	s.procSubs[id] = sub
	return nil
}

// The most requests for one process that may wait for it: beyond them
// the new ones are dropped (their senders time out).
const (
	procPendingMsgs  = 1024
	procPendingBytes = 16 << 20
)

// Forget stops answering for a process whose record is gone.
func (s *Service) Forget(id string) {
	s.mu.Lock()
	sub := s.procSubs[id]
	delete(s.procSubs, id)
	s.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// Watch starts answering for a process the node lists without reporting
// it: one that had ended before the node started (get, logs).
func (s *Service) Watch(id string) {
	if err := s.watchProcess(id); err != nil {
		s.log.Error("cannot serve process control subjects", "process", id, "err", err)
	}
}

// leaveTimeout bounds the node's last word to the registry on Close: a
// JetStream cluster that lost its quorum (the other nodes are stopping
// too) would otherwise hold the shutdown up.
const leaveTimeout = 2 * time.Second

// Close stops announcing the node, stops the control service, waits for
// requests in flight, then closes the relay, waiting up to FlushTimeout
// for what it has in flight.
//
// A node that has no unfinished process left (its children were stopped)
// leaves the registry: it is not shown as gone and its loss is not
// announced. One that leaves processes running (detached) keeps its
// record, so it is shown as gone, its processes as unknown, once it
// missed its heartbeats.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	svc := s.svc
	subs := s.procSubs
	s.procSubs = map[string]*nats.Subscription{}
	procs := s.procs
	s.procs = nil // a second Close finds nothing to stop
	s.mu.Unlock()
	var errs []error
	if s.desired != nil {
		s.desired.Stop()
	}
	s.presence.Stop()
	leaveCtx, cancelLeave := context.WithTimeout(context.Background(), min(s.cfg.FlushTimeout, leaveTimeout))
	if err := s.presence.Leave(leaveCtx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		// Not a failure of the shutdown: the record ages and the node is
		// shown gone, as if it had crashed.
		s.log.Warn("cannot update the node registry on the way out", "err", err)
	}
	cancelLeave()
	for _, sub := range subs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	if svc != nil {
		if err := svc.Stop(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	if procs != nil {
		procs.close()
	}
	s.cancel()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FlushTimeout)
	defer cancel()
	errs = append(errs, s.relay.Close(ctx))
	return errors.Join(errs...)
}

func (s *Service) supervisor() Supervisor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sup
}

// async runs a slow request (one that waits for exits) off the
// subscription's goroutine, so one stop does not hold up the others. fn
// answers through the replier it is given: a micro request is answered
// as a plain message to its reply subject, since micro's handler has
// returned by then and must not see the answer (it reads its error for
// its statistics as it returns). Once Close has begun (a drained or
// in-flight request can still arrive) async answers r with an error
// instead: no goroutine outlives Close.
func (s *Service) async(r replier, what string, fn func(ctx context.Context, r replier)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		respondError(r, fmt.Errorf("%s: node %s is shutting down", what, s.cfg.NodeID))
		return
	}
	if mr, ok := r.(micro.Request); ok {
		r = detached{nc: s.nc, reply: mr.Reply()}
	}
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
		defer cancel()
		fn(ctx, r)
	})
}

// detached answers a request by its reply subject, as micro would.
type detached struct {
	nc    *nats.Conn
	reply string
}

func (d detached) Respond(data []byte, _ ...micro.RespondOpt) error {
	return d.nc.Publish(d.reply, data)
}

func (d detached) RespondJSON(v any, _ ...micro.RespondOpt) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return d.nc.Publish(d.reply, b)
}

func (d detached) Error(code, description string, data []byte, _ ...micro.RespondOpt) error {
	m := nats.NewMsg(d.reply)
	m.Header.Set(micro.ErrorHeader, description)
	m.Header.Set(micro.ErrorCodeHeader, code)
	m.Data = data
	return d.nc.PublishMsg(m)
}

// --- node-addressed handlers ---

func (s *Service) handleSpawn(r micro.Request) { s.spawn(r, "") }

func (s *Service) spawn(r micro.Request, name string) {
	queued := name != "" // corral.spawn.<name>, a queue group; else corral.node.<node>.spawn
	var req api.SpawnRequest
	if err := decodeRequest("cannot spawn", r.Data(), &req); err != nil {
		respondError(r, err)
		return
	}
	if name == "" {
		name = req.Name
	}
	if name == "" {
		respondError(r, api.Errorf(api.ErrInvalid, "cannot spawn: no process name given"))
		return
	}
	mp, err := s.supervisor().Spawn(s.ctx, name, node.SpawnOptions{Metadata: req.Metadata, Env: req.Env, Cwd: req.Cwd,
		Service: req.Service, Instance: req.Instance})
	if queued && (errors.Is(err, api.ErrNoCapacity) || errors.Is(err, api.ErrNotFound)) {
		// The queue group picked a full node, or one whose definition was
		// removed by a reload (its endpoint stays until it restarts):
		// another one that defines the name takes it, if one has room.
		s.async(r, fmt.Sprintf("cannot spawn %q", name), func(ctx context.Context, r replier) { s.forwardSpawn(ctx, r, name, req, err) })
		return
	}
	respond(r, mp, err)
}

// forwardSpawn hands a spawn this node has no room for to the other nodes
// that define name, the least busy first, and answers with the first
// that takes it; full is this node's refusal.
func (s *Service) forwardSpawn(ctx context.Context, r replier, name string, req api.SpawnRequest, full error) {
	nodes, err := s.control.Nodes(ctx)
	if err != nil {
		respondError(r, full)
		return
	}
	var candidates []api.NodeInfo
	for _, n := range nodes {
		if n.ID != s.cfg.NodeID && !n.Gone && slices.Contains(n.Definitions, name) {
			candidates = append(candidates, n)
		}
	}
	sort.SliceStable(candidates, func(i, j int) bool { return candidates[i].Running < candidates[j].Running })
	var tried []string
	for _, n := range candidates {
		mp, err := s.control.Spawn(ctx, n.ID, name, req)
		if err == nil {
			_ = r.RespondJSON(mp)
			return
		}
		tried = append(tried, n.ID)
		if !errors.Is(err, api.ErrNoCapacity) && !errors.Is(err, control.ErrUnreachable) {
			respondError(r, err) // the spawn itself is wrong, wherever it runs
			return
		}
	}
	if len(tried) == 0 {
		respondError(r, full)
		return
	}
	respondError(r, api.Errorf(api.ErrNoCapacity, "%v; no other node that defines it has room (tried %s)", full, strings.Join(tried, ", ")))
}

func (s *Service) handleList(r micro.Request) {
	var req api.ListRequest
	if err := decodeRequest("cannot list processes", r.Data(), &req); err != nil {
		respondError(r, err)
		return
	}
	all := s.supervisor().GetAll()
	out := make([]api.ManagedProcess, 0, len(all))
	for _, p := range all {
		switch {
		case !req.All && p.Status.Finished():
		case req.Name != "" && p.Name != req.Name:
		case req.After != "" && p.ID <= req.After:
		default:
			out = append(out, p)
		}
	}
	s.respondList(r, "cannot list processes", out, false)
}

// respondList answers with procs, as many as a reply holds
// (encodeListReply). what starts the error's sentence.
func (s *Service) respondList(r replier, what string, procs []api.ManagedProcess, stopped bool) {
	data, err := encodeListReply(s.cfg.NodeID, procs, bus.MessageRoom(s.nc), stopped)
	if err != nil {
		respondError(r, fmt.Errorf("%s: %w", what, err))
		return
	}
	if err := r.Respond(data); err != nil {
		s.log.Error("cannot answer a list", "err", err)
	}
}

func (s *Service) handleDefine(r micro.Request) {
	var info api.DefinitionInfo
	if err := decodeRequest("cannot define", r.Data(), &info); err != nil {
		respondError(r, err)
		return
	}
	if !s.cfg.RemoteDefinitions {
		respondError(r, api.Errorf(api.ErrNotPermitted, "cannot define %q: node %s takes no definitions over the control plane ([node] remote_definitions = true allows them)", info.Name, s.cfg.NodeID))
		return
	}
	d, err := node.DefinitionFromInfo(info)
	if err != nil {
		respondError(r, fmt.Errorf("cannot define %q: %w", info.Name, err))
		return
	}
	if err := s.supervisor().DefineRemote(d); err != nil {
		respondError(r, err) // the supervisor's errors say what could not be done
		return
	}
	if err := s.serveSpawn(d.Name); err != nil {
		respondError(r, fmt.Errorf("cannot define %q: %w", d.Name, err))
		return
	}
	_ = r.RespondJSON(d.Info().Redacted())
}

func (s *Service) handleDefinitions(r micro.Request) {
	defs := s.supervisor().Definitions()
	out := api.DefinitionsReply{Node: s.cfg.NodeID, Definitions: make([]api.DefinitionInfo, 0, len(defs)), Shadowed: s.supervisor().Shadowed()}
	for _, d := range defs {
		out.Definitions = append(out.Definitions, d.Info().Redacted())
	}
	_ = r.RespondJSON(out)
}

func (s *Service) handleStopAll(r micro.Request) {
	var req api.StopAllRequest
	if err := decodeRequest("cannot stop processes", r.Data(), &req); err != nil {
		respondError(r, err)
		return
	}
	sig, err := parseSignal(req.Signal)
	if err != nil {
		respondError(r, fmt.Errorf("cannot stop processes: %w", err))
		return
	}
	s.async(r, "cannot stop processes", func(ctx context.Context, r replier) {
		ps, err := s.supervisor().StopAll(ctx, sig, req.Name)
		if err != nil {
			respondError(r, err)
			return
		}
		s.respondList(r, "cannot stop processes", ps, true)
	})
}

func (s *Service) handleInfo(r micro.Request) { _ = r.RespondJSON(s.Info()) }

func (s *Service) handleProcs(r micro.Request) {
	var req api.ProcsRequest
	if err := decodeRequest("cannot list the node's processes", r.Data(), &req); err != nil {
		respondError(r, err)
		return
	}
	if req.Part < 0 {
		respondError(r, api.Errorf(api.ErrInvalid, "cannot list the node's processes: part %d (expected 0 or more)", req.Part))
		return
	}
	data, err := s.presence.ProcessesJSON(req.Part, req.Version)
	if errors.Is(err, presence.ErrNoSuchPart) {
		err = api.Errorf(api.ErrNotFound, "%w", err)
	}
	if err != nil {
		respondError(r, fmt.Errorf("cannot list the node's processes: %w", err))
		return
	}
	if err := r.Respond(data); err != nil { // a part the connection cannot carry (max_payload went down)
		respondError(r, fmt.Errorf("cannot list the node's processes: %d bytes: %w", len(data), err))
	}
}

// Isolated reports whether the node sees fewer than half of the nodes it
// knows (a network partition cut it off).
func (s *Service) Isolated() bool { return s.presence.Isolated() }

// RegistryView is what the node knows of every node (corral.registry).
func (s *Service) RegistryView(req api.RegistryRequest) (api.RegistryView, bool) {
	return s.presence.View(req)
}

func (s *Service) handleRegistry(r micro.Request) {
	var req api.RegistryRequest
	if err := decodeRequest("cannot describe the node registry", r.Data(), &req); err != nil {
		respondError(r, err)
		return
	}
	view, ok := s.presence.View(req)
	if !ok {
		respondError(r, fmt.Errorf("cannot describe the node registry: node %s has not heard from every node yet (it has just started, or is back from a partition)", s.cfg.NodeID)) // 500: DESIGN's codes
		return
	}
	_ = r.RespondJSON(view)
}

// Info describes this node, as its heartbeat does: with whether it is
// isolated (it sees fewer than half of the nodes it knows).
func (s *Service) Info() api.NodeInfo {
	info, _ := s.snapshot()
	info.Isolated = s.presence.Isolated()
	return info
}

// snapshot describes this node, and lists its unfinished processes for
// the registry.
func (s *Service) snapshot() (api.NodeInfo, []api.ProcessSummary) {
	sup := s.supervisor()
	info := api.NodeInfo{ID: s.cfg.NodeID, Version: bus.Version, Labels: s.cfg.Labels, StartedAt: s.startedAt,
		IntervalMs: s.cfg.HeartbeatInterval.Milliseconds(), Definitions: []string{}, Host: s.presence.Host(),
		Durable: s.relay.Durable(), Dropped: s.relay.Dropped(), LastSeen: time.Now()}
	procs := []api.ProcessSummary{}
	if sup == nil {
		return info, procs
	}
	info.Processes, procs = sup.Summary()
	info.Running = len(procs)
	for _, d := range sup.Definitions() {
		info.Definitions = append(info.Definitions, d.Name)
	}
	return info, procs
}

// --- process-addressed handlers (plain subscription, micro error headers) ---

func (s *Service) handleProc(id string, m *nats.Msg) {
	verb := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	r := msgRequest{m}
	sup := s.supervisor()
	if sup == nil {
		respondError(r, fmt.Errorf("cannot %s %q: node %s is starting", verb, id, s.cfg.NodeID))
		return
	}
	switch verb {
	case bus.VerbGet:
		mp, ok := sup.Get(id)
		if !ok {
			respondError(r, api.Errorf(api.ErrNotFound, "cannot get %q: no such process", id))
			return
		}
		_ = r.RespondJSON(mp)
	case bus.VerbStop:
		var req api.StopRequest
		what := fmt.Sprintf("cannot stop %q", id)
		if err := decodeRequest(what, m.Data, &req); err != nil {
			respondError(r, err)
			return
		}
		sig, err := parseSignal(req.Signal)
		if err != nil {
			respondError(r, fmt.Errorf("%s: %w", what, err))
			return
		}
		s.async(r, what, func(ctx context.Context, r replier) {
			mp, err := sup.Stop(ctx, id, sig)
			respond(r, mp, err)
		})
	case bus.VerbRestart:
		s.async(r, fmt.Sprintf("cannot restart %q", id), func(ctx context.Context, r replier) {
			mp, err := sup.Restart(ctx, id)
			respond(r, mp, err)
		})
	case bus.VerbSend:
		respond(r, api.OK{OK: true}, sup.Send(id, m.Data))
	case bus.VerbLogs:
		s.handleLogs(sup, id, r, m.Data)
	case bus.VerbFollow:
		s.handleFollow(sup, id, m)
	default:
		respondError(r, api.Errorf(api.ErrInvalid, "cannot answer %s: unknown verb %q (expected get, stop, restart, send, logs or follow)", m.Subject, verb))
	}
}

// --- replies ---

// replier is what micro.Request and msgRequest share.
type replier interface {
	Respond(data []byte, opts ...micro.RespondOpt) error
	RespondJSON(v any, opts ...micro.RespondOpt) error
	Error(code, description string, data []byte, opts ...micro.RespondOpt) error
}

// msgRequest answers a plain NATS message the way micro does.
type msgRequest struct{ m *nats.Msg }

func (r msgRequest) Respond(data []byte, _ ...micro.RespondOpt) error { return r.m.Respond(data) }

func (r msgRequest) RespondJSON(v any, _ ...micro.RespondOpt) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.m.Respond(b)
}

func (r msgRequest) Error(code, description string, data []byte, _ ...micro.RespondOpt) error {
	reply := nats.NewMsg(r.m.Reply)
	reply.Header.Set(micro.ErrorHeader, description)
	reply.Header.Set(micro.ErrorCodeHeader, code)
	reply.Data = data
	return r.m.RespondMsg(reply)
}

func respond(r replier, v any, err error) {
	if err != nil {
		respondError(r, err)
		return
	}
	_ = r.RespondJSON(v)
}

// respondError answers with the micro error headers: the code of err's
// kind (api.Code; a timeout is 500) and err's text. Every error the
// service answers is a sentence that starts with what could not be done
// (`cannot stop "proc_x": …`): the supervisor's errors are written so, and
// the service's own are too. Clients show it as it is.
func respondError(r replier, err error) {
	_ = r.Error(strconv.Itoa(api.Code(err)), err.Error(), nil)
}

// decodeRequest reads a JSON request body; an empty body is an empty
// request. Unknown fields are refused so typos are not silently ignored.
// what says what could not be done, and starts the error's sentence.
//
// The body must be exactly one JSON object: not null, not an array, and
// nothing after it.
func decodeRequest(what string, data []byte, v any) error {
	body := bytes.TrimSpace(data)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '{' {
		return api.Errorf(api.ErrInvalid, "%s: bad request body: expected a JSON object, got %s", what, wire.ValueKind(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.ErrInvalid, "%s: bad request body: %v", what, err)
	}
	if dec.InputOffset() != int64(len(body)) {
		return api.Errorf(api.ErrInvalid, "%s: bad request body: more after the JSON object (at byte %d)", what, dec.InputOffset())
	}
	return nil
}

func parseSignal(name string) (syscall.Signal, error) {
	if name == "" {
		return 0, nil
	}
	return api.ParseSignal(name)
}

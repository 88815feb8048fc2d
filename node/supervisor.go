package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/schema"
)

// Config configures a Supervisor. Zero fields take the defaults noted.
type Config struct {
	// NodeID names this node in reports and records.
	NodeID string
	// SocketDir holds the per-process Unix sockets. The node creates it
	// (0700; 0711 once a definition runs its children as another user) and
	// refuses one it did not create (socketdir.go).
	SocketDir string
	// Transport is "unix" (default) or "tcp" (127.0.0.1, a port per process).
	Transport string
	// LogDir receives each child's stdout and stderr as <id>.log, rotated
	// to <id>.log.1 and so on (logs.go), through the FIFO <id>.fifo. Empty
	// discards them.
	LogDir string
	// LogMaxBytes is the size at which a log file is rotated (default 10
	// MiB, at least 1 KiB); LogMaxFiles how many files a process's log
	// keeps, the current one included (default 3). Definitions may set
	// their own.
	LogMaxBytes int64
	LogMaxFiles int
	// StateDir holds a record per process, running or ended until it is
	// pruned, so that the next node can re-adopt the running ones and list
	// the ended ones (Recover). Empty keeps no state.
	StateDir string
	// MaxLineBytes bounds one line from a child (default 1 MiB).
	MaxLineBytes int
	// EventWindow is how many events with an id one connection of a child
	// may have waiting for their answer (Report.Done: with durable events,
	// until the stream stored them) before the node reads no more of that
	// connection until one is answered: back-pressure on that child alone,
	// which the heartbeat watchdog does not hold against it. Until then
	// its heartbeats are read and counted as they come. Default
	// DefaultEventWindow.
	EventWindow int
	// HandshakeTimeout is how long a new connection may take to send its
	// first valid line before it is closed (default 5 s).
	HandshakeTimeout time.Duration
	// StatsInterval is the default stats sampling interval of definitions
	// that set none (default 5 s).
	StatsInterval time.Duration
	// Retention is how long finished processes stay listed (default 1 h);
	// RetentionMax caps how many are kept (default 1000, oldest go first).
	Retention    time.Duration
	RetentionMax int
	// MaxProcesses caps the processes running at once (default
	// DefaultMaxProcesses): beyond it a spawn is an api.ErrNoCapacity
	// error.
	MaxProcesses int
	// Reporter receives every report. Required. If it also has a method
	// Forget(id string), that is called when a record is pruned; if it has
	// a method Watch(id string), that is called for a process Recover
	// lists without a report (one that had ended before the node
	// started), so that requests about it (get, logs) are answered.
	Reporter Reporter
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Supervisor runs and watches the child processes of one node.
// All methods are safe for concurrent use.
type Supervisor struct {
	cfg     Config
	log     *slog.Logger
	rep     Reporter
	environ []string // what children inherit of the node's environment (childEnviron)
	mark    string   // EnvNodeMark's value for this node's children (orphans.go)

	mu    sync.RWMutex
	defs  map[string]*definition
	procs map[string]*process
	live  map[int]*process // by pid: the processes not yet finished (who may connect)
	held  map[string]hold  // the held instances (instances.go)
	// applied are the definitions applied from the cluster's desired
	// state (remote.go), in effect unless the configuration has the name.
	applied map[string]*definition
	// ensureRetry is a pending retry of EnsureInstances after a failure.
	ensureRetry *time.Timer
	closed      bool
	detaching   bool // closed by Detach: pending restarts are the next node's
	// spawnMu is held by a spawn from its capacity check until its
	// process is registered (capacity.go), and by Recover for its whole
	// run. No callback is called under it (callQueue).
	spawnMu sync.Mutex

	smu        sync.Mutex            // guards shared and sockClosed
	shared     map[int]*sharedSocket // the listening unix sockets, by uid of the children they serve
	sockClosed bool

	retained retention // the processes that ended for good, for prune
	sampler  *sampler
	children *reaper            // reaps the children the node started
	store    *store             // nil without a StateDir
	cancel   context.CancelFunc // stops the sampler
	wg       sync.WaitGroup     // the sampler, the accept loops, every connection and log pipe goroutine
	reapers  sync.WaitGroup     // one per process, waiting for its exit
	lines    lineCounters       // answers to the children's lines (metrics.go)
}

// definition is a Definition with defaults applied and schemas compiled.
type definition struct {
	Definition
	schemas map[string]*schema.Schema // nil value: any object
	cred    *syscall.Credential       // User and Group resolved; nil: the node's own
	remote  bool                      // defined over the control plane (DefineRemote)
}

// New returns a Supervisor. Call Close to stop it.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Reporter == nil {
		return nil, errors.New("cannot create supervisor: no reporter")
	}
	switch cfg.Transport {
	case "":
		cfg.Transport = "unix"
	case "unix", "tcp":
	default:
		return nil, fmt.Errorf("cannot create supervisor: transport %q is not unix or tcp", cfg.Transport)
	}
	if cfg.Transport == "unix" && cfg.SocketDir == "" {
		return nil, errors.New("cannot create supervisor: no socket directory")
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = wire.DefaultMaxLineBytes
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = DefaultStatsInterval
	}
	if cfg.StatsInterval < MinStatsInterval {
		return nil, fmt.Errorf("cannot create supervisor: stats interval must be at least %s", MinStatsInterval)
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = DefaultLogMaxBytes
	}
	if cfg.LogMaxBytes < MinLogMaxBytes {
		return nil, fmt.Errorf("cannot create supervisor: log max bytes must be at least %d", MinLogMaxBytes)
	}
	if cfg.LogMaxFiles <= 0 {
		cfg.LogMaxFiles = DefaultLogMaxFiles
	}
	if cfg.RetentionMax <= 0 {
		cfg.RetentionMax = DefaultRetentionMax
	}
	if cfg.EventWindow <= 0 {
		cfg.EventWindow = DefaultEventWindow
	}
	if cfg.MaxProcesses <= 0 {
		cfg.MaxProcesses = DefaultMaxProcesses()
	}
	if cfg.Transport == "unix" {
		if err := ownSocketDir(cfg.SocketDir); err != nil {
			return nil, fmt.Errorf("cannot create supervisor: %w", err)
		}
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o750); err != nil {
			return nil, fmt.Errorf("cannot create log directory: %w", err)
		}
	}
	s := &Supervisor{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.NodeID),
		rep:     cfg.Reporter,
		defs:    make(map[string]*definition),
		environ: childEnviron(),
		mark:    nodeMark(cfg.NodeID, cfg.StateDir),
		procs:   make(map[string]*process),
		held:    make(map[string]hold),
		applied: make(map[string]*definition),
		live:    make(map[int]*process),
		shared:  make(map[int]*sharedSocket),
	}
	if cfg.StateDir != "" {
		st, err := openStore(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	if cfg.Transport == "unix" {
		if _, err := s.sharedFor(os.Geteuid(), os.Getegid()); err != nil {
			if s.store != nil {
				s.store.close()
			}
			return nil, fmt.Errorf("cannot create supervisor: %w", err)
		}
	}
	s.sampler = newSampler(s)
	s.children = newReaper()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.sampler.run(ctx) })
	return s, nil
}

// Defaults for Config.
const (
	DefaultRetention        = time.Hour
	DefaultRetentionMax     = 1000
	DefaultEventWindow      = 1024
	DefaultHandshakeTimeout = 5 * time.Second
)

// NodeID returns the node's id.
func (s *Supervisor) NodeID() string { return s.cfg.NodeID }

// Define adds or replaces a definition. Running processes keep the
// definition they were spawned with.
func (s *Supervisor) Define(d Definition) error {
	cd, err := s.compile(d)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.defs[d.Name] = cd
	return nil
}

// CheckDefinition says what Define would refuse in d, without defining it.
func (s *Supervisor) CheckDefinition(d Definition) error {
	_, err := s.compile(d)
	return err
}

// compile validates d, applies defaults and compiles its event schemas.
func (s *Supervisor) compile(d Definition) (*definition, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("cannot define %q: %w", d.Name, err)
	}
	cd := &definition{Definition: d.withDefaults()}
	cred, err := d.credential()
	if err != nil {
		return nil, fmt.Errorf("cannot define %q: %w", d.Name, err)
	}
	cd.cred = cred
	if cd.StatsInterval == 0 {
		cd.StatsInterval = s.cfg.StatsInterval
	}
	if cd.schemas, err = d.compileSchemas(); err != nil {
		return nil, err
	}
	return cd, nil
}

// compileSchemas compiles d's event schemas (nil: any object).
func (d Definition) compileSchemas() (map[string]*schema.Schema, error) {
	out := make(map[string]*schema.Schema, len(d.Events))
	for _, ev := range sortedNames(d.Events) {
		raw := d.Events[ev]
		if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
			out[ev] = nil
			continue
		}
		sch, err := schema.Compile(d.Name+"."+ev, raw)
		if err != nil {
			reason := err.Error()
			if ce, ok := errors.AsType[*schema.CompileError](err); ok {
				reason = ce.Reason
			}
			return nil, api.Errorf(ErrInvalid, "cannot define %q: schema of event %q: %s", d.Name, ev, reason)
		}
		out[ev] = sch
	}
	return out, nil
}

// Check says what any node would refuse in d: what Define checks, but
// the user and group, which only the node that runs it can look up.
func (d Definition) Check() error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("cannot define %q: %w", d.Name, err)
	}
	_, err := d.compileSchemas()
	return err
}

// Definitions returns every definition, sorted by name.
func (s *Supervisor) Definitions() []Definition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Definition, 0, len(s.defs))
	for _, name := range sortedNames(s.defs) {
		out = append(out, s.defs[name].Definition)
	}
	return out
}

// Spawn starts a new process of the named definition.
func (s *Supervisor) Spawn(ctx context.Context, name string, opts SpawnOptions) (api.ManagedProcess, error) {
	s.mu.RLock()
	def, closed := s.defs[name], s.closed
	s.mu.RUnlock()
	switch {
	case closed:
		return api.ManagedProcess{}, fmt.Errorf("cannot spawn %q: %w", name, ErrClosed)
	case def == nil:
		return api.ManagedProcess{}, api.Errorf(ErrNotFound, "cannot spawn %q: definition not found", name)
	}
	if err := ValidMetadata(opts.Metadata); err != nil {
		return api.ManagedProcess{}, fmt.Errorf("cannot spawn %q: %w", name, err)
	}
	if err := def.checkSpawn(opts); err != nil {
		return api.ManagedProcess{}, err
	}
	if err := validInstanceOptions(opts); err != nil {
		return api.ManagedProcess{}, fmt.Errorf("cannot spawn %q: %w", name, err)
	}
	s.spawnMu.Lock()
	defer s.spawnMu.Unlock()
	if err := s.checkInstanceFree(opts); err != nil {
		return api.ManagedProcess{}, err
	}
	if err := s.checkCapacity(def); err != nil {
		return api.ManagedProcess{}, err
	}
	if err := ctx.Err(); err != nil {
		return api.ManagedProcess{}, fmt.Errorf("cannot spawn %q: %w", name, err)
	}
	p, err := s.start(def, opts, lineage{})
	if err != nil {
		return api.ManagedProcess{}, err
	}
	return p.snapshot(), nil
}

// Get returns the process with the given id.
func (s *Supervisor) Get(id string) (api.ManagedProcess, bool) {
	p := s.lookup(id)
	if p == nil {
		return api.ManagedProcess{}, false
	}
	return p.snapshot(), true
}

// GetAll returns every known process, oldest first.
func (s *Supervisor) GetAll() []api.ManagedProcess {
	return s.filter(func(*process) bool { return true })
}

// Summary counts the processes the node lists (GetAll) and describes
// those that have not finished, oldest first: what the node's heartbeat
// says of them, without a whole ManagedProcess for each.
func (s *Supervisor) Summary() (total int, unfinished []api.ProcessSummary) {
	s.mu.RLock()
	ps := make([]*process, 0, len(s.procs))
	for _, p := range s.procs {
		ps = append(ps, p)
	}
	s.mu.RUnlock()
	unfinished = make([]api.ProcessSummary, 0, len(ps))
	for _, p := range ps {
		p.mu.Lock()
		if status := p.st.status(); !status.Finished() {
			unfinished = append(unfinished, api.ProcessSummary{ID: p.id, Name: p.def.Name, Node: s.cfg.NodeID, Status: status,
				PID: p.pid, StartedAt: p.startedAt, Instance: p.opts.Instance, Service: p.opts.Service})
		}
		p.mu.Unlock()
	}
	slices.SortFunc(unfinished, func(a, b api.ProcessSummary) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return len(ps), unfinished
}

// GetByName returns the processes of one definition, oldest first.
func (s *Supervisor) GetByName(name string) []api.ManagedProcess {
	return s.filter(func(p *process) bool { return p.def.Name == name })
}

func (s *Supervisor) filter(keep func(*process) bool) []api.ManagedProcess {
	s.mu.RLock()
	ps := make([]*process, 0, len(s.procs))
	for _, p := range s.procs {
		if keep(p) {
			ps = append(ps, p)
		}
	}
	s.mu.RUnlock()
	out := make([]api.ManagedProcess, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.snapshot())
	}
	slices.SortFunc(out, func(a, b api.ManagedProcess) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Supervisor) lookup(id string) *process {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.procs[id]
}

// Stop signals the process group (sig 0 means the definition's stop
// signal), escalates to SIGKILL after the stop timeout and returns once the
// process has exited, or when ctx ends.
func (s *Supervisor) Stop(ctx context.Context, id string, sig syscall.Signal) (api.ManagedProcess, error) {
	p := s.lookup(id)
	if p == nil {
		return api.ManagedProcess{}, api.Errorf(ErrNotFound, "cannot stop %q: no such process", id)
	}
	s.holdOnStop(p)
	if err := p.stop(ctx, sig); err != nil {
		return p.snapshot(), fmt.Errorf("cannot stop %q: %w", id, err)
	}
	return p.snapshot(), nil
}

// StopAll stops every running process (of one definition when name is not
// empty) in parallel and returns the processes it stopped.
func (s *Supervisor) StopAll(ctx context.Context, sig syscall.Signal, name string) ([]api.ManagedProcess, error) {
	s.mu.RLock()
	var ps []*process
	for _, p := range s.procs {
		if (name == "" || p.def.Name == name) && !p.finished() {
			ps = append(ps, p)
		}
	}
	s.mu.RUnlock()
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		s.holdOnStop(p)
		wg.Go(func() {
			if err := p.stop(ctx, sig); err != nil && !errors.Is(err, ErrNotRunning) {
				errs[i] = fmt.Errorf("cannot stop %q: %w", p.id, err)
			}
		})
	}
	wg.Wait()
	out := make([]api.ManagedProcess, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.snapshot())
	}
	return out, errors.Join(errs...)
}

// Restart stops the process if it runs and spawns a new one of the same
// definition with the same metadata and overrides. The new process has a new
// id; process.restarted is reported.
func (s *Supervisor) Restart(ctx context.Context, id string) (api.ManagedProcess, error) {
	p := s.lookup(id)
	if p == nil {
		return api.ManagedProcess{}, api.Errorf(ErrNotFound, "cannot restart %q: no such process", id)
	}
	if err := p.stop(ctx, 0); err != nil && !errors.Is(err, ErrNotRunning) {
		return api.ManagedProcess{}, fmt.Errorf("cannot restart %q: %w", id, err)
	}
	s.mu.RLock()
	def := s.defs[p.def.Name]
	s.mu.RUnlock()
	if def == nil {
		def = p.def
	}
	attempt := p.snapshot().Restarts + 1
	s.spawnMu.Lock()
	err := s.checkInstanceFree(p.opts)
	var np *process
	if err == nil {
		s.release(p)
		np, err = s.start(def, p.opts, lineage{restarts: attempt})
	}
	s.spawnMu.Unlock()
	if err != nil {
		return api.ManagedProcess{}, fmt.Errorf("cannot restart %q: %w", id, err)
	}
	s.reportRestart(p, np, attempt)
	return np.snapshot(), nil
}

// Send writes one JSON value, as a line, to the process's newest connection.
func (s *Supervisor) Send(id string, msg json.RawMessage) error {
	p := s.lookup(id)
	if p == nil {
		return api.Errorf(ErrNotFound, "cannot send to %q: no such process", id)
	}
	// One line: a value written over several lines would reach the child
	// as several broken ones.
	var line bytes.Buffer
	line.Grow(len(msg))
	if err := json.Compact(&line, msg); err != nil {
		return api.Errorf(ErrInvalid, "cannot send to %q: the message is not valid JSON", id)
	}
	c := p.latestConn()
	if c == nil {
		return fmt.Errorf("cannot send to %q: %w", id, ErrNotConnected)
	}
	if waiting, ok := c.out.send(line.Bytes()); !ok {
		return api.Errorf(api.ErrNoCapacity, "cannot send to %q: %d bytes already wait for the child to read them (the limit is %d): it is not reading", id, waiting, outboxLimit)
	}
	return nil
}

// Close stops every child (as StopAll with each definition's stop signal)
// and waits for all the supervisor's goroutines. Spawn fails afterwards.
func (s *Supervisor) Close(ctx context.Context) error {
	procs := s.shut()
	for _, p := range procs {
		_ = p.on(event{kind: evClosing}) // pending restarts are dropped
	}
	s.cancel()
	_, err := s.StopAll(ctx, 0, "")
	s.closeShared()
	if werr := s.waitGoroutines(ctx); werr != nil {
		err = errors.Join(err, werr)
	}
	s.children.close()
	if s.store != nil {
		s.store.close()
	}
	return err
}

// Detach leaves every child running, with its record on disk, for the next
// node to re-adopt (a node upgrade): it closes the sockets and connections
// (the children reconnect to the next node) and stops every timer, without
// signalling anyone. Spawn fails afterwards.
func (s *Supervisor) Detach(ctx context.Context) error {
	s.mu.Lock()
	s.detaching = true
	s.mu.Unlock()
	procs := s.shut()
	s.cancel()
	for _, p := range procs {
		_ = p.on(event{kind: evDetach})
	}
	s.log.Info("detached from children; they keep running", "processes", len(procs))
	s.closeShared()    // the links stay, for the next node to make again (relisten)
	s.children.close() // the reapers of its own children return
	err := s.waitGoroutines(ctx)
	if s.store != nil {
		s.store.close()
	}
	return err
}

// shut marks the supervisor closed, drops a pending instance retry and
// returns every process.
func (s *Supervisor) shut() []*process {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ensureRetry != nil {
		s.ensureRetry.Stop()
		s.ensureRetry = nil
	}
	procs := make([]*process, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	return procs
}

// waitGoroutines waits for the supervisor's goroutines and the reapers,
// which end with their children, or once the node let go of them.
func (s *Supervisor) waitGoroutines(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.reapers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot close supervisor: %w", ctx.Err())
	}
}

// persist writes p's record. A failure is logged and returned: a spawn
// fails with it; a process already running runs on (its last record
// stands).
//
// The record of a process prune has forgotten must not stand, or the next
// node would list it again; yet a persist may race prune (finish, a
// respawn, a heartbeat's persistConnected are on other goroutines), and
// save creates the file again when prune has removed it. So prune marks p
// pruned under p.mu before it removes the record, and persist reads the
// mark under p.mu after its write: a write is done once save returns (the
// open, create or rename that makes the path name the new record is
// behind it; a write into a file opened before prune removed it lands in
// an unlinked file). Either persist sees the mark and removes the record
// itself, after its write; or it does not, and then its write came before
// the mark, so before prune's removal. Either way a removal follows every
// write, and no lock is held across the disk. (A node killed between the
// write and the removal leaves the record, as one killed before prune's
// removal does: the next node prunes it again.)
func (s *Supervisor) persist(p *process) error {
	if s.store == nil {
		return nil
	}
	err := s.store.save(p.record())
	if err != nil {
		s.log.Error("cannot persist process record", "process", p.id, "name", p.def.Name, "err", err)
	}
	if p.isPruned() {
		s.unpersist(p.id)
	}
	return err
}

func (p *process) isPruned() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pruned
}

// reserveRecord has the record file of process id made on a goroutine of
// its own, while the spawn goes on (store.reserve); persistNew fills it,
// or discardRecord removes it. Nil without a store.
func (s *Supervisor) reserveRecord(id string) <-chan *os.File {
	if s.store == nil {
		return nil
	}
	ch := make(chan *os.File, 1)
	go func() {
		f, _ := s.store.reserve(id) // on failure, persistNew creates it, and says why it cannot
		ch <- f
	}()
	return ch
}

// discardRecord removes a reserved record file whose process did not
// start.
func (s *Supervisor) discardRecord(reserved <-chan *os.File) {
	if reserved == nil {
		return
	}
	if f := <-reserved; f != nil {
		s.store.discard(f)
	}
}

// persistNew writes the first record of p, just started, into the file
// reserved for it (store.fill), or, if it could not be reserved, a new
// one (store.create). Unlike persist it cannot race prune: p is not
// registered yet, and prune forgets only the processes it finds
// registered.
func (s *Supervisor) persistNew(p *process, reserved <-chan *os.File) error {
	if s.store == nil {
		return nil
	}
	var err error
	if f := <-reserved; f != nil {
		err = s.store.fill(f, p.record())
	} else {
		err = s.store.create(p.record())
	}
	if err != nil {
		s.log.Error("cannot persist process record", "process", p.id, "name", p.def.Name, "err", err)
		return err
	}
	return nil
}

func (s *Supervisor) unpersist(id string) {
	if s.store == nil {
		return
	}
	if err := s.store.remove(id); err != nil {
		s.log.Error("cannot remove process record", "process", id, "err", err)
	}
}

// report hands r to the reporter and logs a failure.
func (s *Supervisor) report(r Report) {
	if err := s.rep.Publish(r); err != nil {
		s.log.Error("cannot publish report", "process", r.ProcessID, "name", r.Name, "kind", r.Kind, "err", err)
	}
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// IDLength is the length of a process id: "proc_" and 16 random characters.
const IDLength = 5 + 16

func newProcessID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, IDLength)
	out = append(out, "proc_"...)
	for _, c := range b {
		out = append(out, idAlphabet[int(c)%len(idAlphabet)])
	}
	return string(out)
}

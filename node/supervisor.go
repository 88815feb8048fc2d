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
	// SocketDir holds the per-process Unix sockets (created 0700).
	SocketDir string
	// Transport is "unix" (default) or "tcp" (127.0.0.1, a port per process).
	Transport string
	// LogDir receives each child's stdout and stderr as <name>-<id>.log.
	// Empty discards them.
	LogDir string
	// StateDir holds a record per running process, so that the next node
	// can re-adopt them (Recover). Empty keeps no state.
	StateDir string
	// MaxLineBytes bounds one line from a child (default 1 MiB).
	MaxLineBytes int
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
	// Forget(id string), that is called when a record is pruned.
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

	mu     sync.RWMutex
	defs   map[string]*definition
	procs  map[string]*process
	closed bool
	// spawnMu is held by a spawn from its capacity check until its
	// process is registered (capacity.go).
	spawnMu sync.Mutex

	sampler *sampler
	store   *store             // nil without a StateDir
	cancel  context.CancelFunc // stops the sampler
	wg      sync.WaitGroup     // the sampler and every connection goroutine
	reapers sync.WaitGroup     // one per process, waiting for its exit
	lines   lineCounters       // answers to the children's lines (metrics.go)
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
	if cfg.RetentionMax <= 0 {
		cfg.RetentionMax = DefaultRetentionMax
	}
	if cfg.MaxProcesses <= 0 {
		cfg.MaxProcesses = DefaultMaxProcesses()
	}
	if cfg.Transport == "unix" {
		if err := os.MkdirAll(cfg.SocketDir, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create socket directory: %w", err)
		}
		if err := os.Chmod(cfg.SocketDir, 0o700); err != nil {
			return nil, fmt.Errorf("cannot secure socket directory: %w", err)
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
		procs:   make(map[string]*process),
	}
	if cfg.StateDir != "" {
		st, err := openStore(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	s.sampler = newSampler(s)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.sampler.run(ctx) })
	return s, nil
}

// Defaults for Config.
const (
	DefaultRetention    = time.Hour
	DefaultRetentionMax = 1000
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

// DefineRemote adds or replaces a definition sent over the control plane.
// It may not replace one the node was configured with (Define): that is
// an ErrConflict error.
func (s *Supervisor) DefineRemote(d Definition) error {
	cd, err := s.compile(d)
	if err != nil {
		return err
	}
	cd.remote = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if cur := s.defs[d.Name]; cur != nil && !cur.remote {
		return api.Errorf(ErrConflict, "cannot define %q: the node's configuration defines it, and a remote definition may not replace it", d.Name)
	}
	s.defs[d.Name] = cd
	return nil
}

// compile validates d, applies defaults and compiles its event schemas.
func (s *Supervisor) compile(d Definition) (*definition, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("cannot define %q: %w", d.Name, err)
	}
	cd := &definition{Definition: d.withDefaults(), schemas: make(map[string]*schema.Schema, len(d.Events))}
	cred, err := d.credential()
	if err != nil {
		return nil, fmt.Errorf("cannot define %q: %w", d.Name, err)
	}
	cd.cred = cred
	if cd.StatsInterval == 0 {
		cd.StatsInterval = s.cfg.StatsInterval
	}
	for _, ev := range sortedNames(d.Events) {
		raw := d.Events[ev]
		if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
			cd.schemas[ev] = nil
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
		cd.schemas[ev] = sch
	}
	return cd, nil
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
	s.spawnMu.Lock()
	defer s.spawnMu.Unlock()
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
	np, err := s.start(def, p.opts, lineage{restarts: attempt})
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
	s.mu.Lock()
	s.closed = true
	procs := make([]*process, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	for _, p := range procs {
		_ = p.on(event{kind: evClosing}) // pending restarts are dropped
	}
	s.cancel()
	_, err := s.StopAll(ctx, 0, "")
	if werr := s.waitGoroutines(ctx, true); werr != nil {
		err = errors.Join(err, werr)
	}
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
	s.closed = true
	procs := make([]*process, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	s.cancel()
	for _, p := range procs {
		_ = p.on(event{kind: evDetach})
	}
	s.log.Info("detached from children; they keep running", "processes", len(procs))
	err := s.waitGoroutines(ctx, false)
	if s.store != nil {
		s.store.close()
	}
	return err
}

// waitGoroutines waits for the supervisor's goroutines (and the reapers,
// which only end with their children).
func (s *Supervisor) waitGoroutines(ctx context.Context, reapers bool) error {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		if reapers {
			s.reapers.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot close supervisor: %w", ctx.Err())
	}
}

// persist writes p's record (a failure is logged: the process runs on, it
// just could not be re-adopted after a node crash).
func (s *Supervisor) persist(p *process) {
	if s.store == nil {
		return
	}
	if err := s.store.save(p.record()); err != nil {
		s.log.Error("cannot persist process record", "process", p.id, "name", p.def.Name, "err", err)
	}
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

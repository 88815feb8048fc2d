package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/node/procstat"
)

// process is the record of one managed child. Fields above mu never change
// after start; fields below it are guarded by it. mu is never held across
// I/O or callbacks.
type process struct {
	sup        *Supervisor
	def        *definition
	id         string
	opts       SpawnOptions
	metadata   json.RawMessage
	listener   net.Listener
	socketPath string
	tcpPort    int
	logPath    string
	cmd        *exec.Cmd // nil for a re-adopted process, which is not our child
	pidfd      *os.File  // readable once the process exits (nil: no pidfd on this OS)
	pid        int
	startTicks uint64 // the child's start time in /proc, to tell a recycled pid
	startedAt  time.Time
	done       chan struct{} // closed once the exit is fully handled
	// ref is `{"processId":"<id>","name":"<name>"}`, the payload of
	// heartbeats and connects; eventPrefix is the same without the closing
	// brace, the start of every custom event payload. Both are read-only.
	ref         []byte
	eventPrefix []byte

	mu     sync.Mutex
	status api.Status
	// restarts counts every restart of this lineage (what ps shows);
	// failures counts consecutive crashes, the auto-restart budget.
	restarts      int
	failures      int
	lastHeartbeat time.Time
	// Heartbeat watchdog: armed at the first connected message.
	hbTimer *time.Timer
	stale   bool
	// watchdogReason is set when the watchdog kills the process (heartbeat
	// or a limit name); such an exit is a crash whatever its code.
	watchdogReason string
	runtimeTimer   *time.Timer
	// Stats sampled by the node.
	lastStats  *wire.Stats
	cpuOver    int       // consecutive samples over max_cpu_percent
	nextSample time.Time // when the sampler is due to look at it
	// restartTimer is a pending auto-restart of this (finished) process.
	restartTimer  *time.Timer
	exitCode      *int
	errText       string
	endedAt       time.Time
	stopRequested bool
	killTimer     *time.Timer
	conns         map[*conn]struct{}
	latest        *conn
	// saidGoodbye: the child sent "disconnecting" (tells a clean exit of a
	// re-adopted process, whose exit code the node cannot learn).
	saidGoodbye bool
	// detached: the node left this process running for the next node to
	// re-adopt; its exit is then none of this node's business.
	detached bool
}

// lineage is what a restarted process inherits from the one it replaces.
type lineage struct {
	restarts int // restarts so far, this one included
	failures int // consecutive crashes so far
}

// start creates the socket, starts the child and its goroutines, and
// reports process.spawned.
func (s *Supervisor) start(def *definition, opts SpawnOptions, lin lineage) (*process, error) {
	p := &process{
		sup: s, def: def, id: newProcessID(), opts: opts, metadata: opts.Metadata,
		done: make(chan struct{}), status: api.StatusStarting, restarts: lin.restarts, failures: lin.failures,
		conns: make(map[*conn]struct{}),
	}
	if len(p.metadata) == 0 {
		p.metadata = json.RawMessage("{}")
	}
	p.ref, _ = json.Marshal(api.ProcessRef{ProcessID: p.id, Name: def.Name})
	p.eventPrefix = p.ref[:len(p.ref)-1]

	if err := p.listen(); err != nil {
		return nil, fmt.Errorf("cannot spawn %q: %w", def.Name, err)
	}
	cmd, logFile, err := p.command()
	if err != nil {
		p.listener.Close()
		return nil, fmt.Errorf("cannot spawn %q: %w", def.Name, err)
	}
	err = cmd.Start()
	if logFile != nil {
		logFile.Close() // the child has its own copy
	}
	if err != nil {
		p.listener.Close()
		return nil, fmt.Errorf("cannot spawn %q: %w", def.Name, err)
	}
	p.cmd, p.pid, p.startedAt = cmd, cmd.Process.Pid, time.Now()
	p.startTicks, _ = procstat.StartTime(p.pid)
	// Waiting on a pidfd through the poller first means no thread sits in
	// waitid per child; Wait then reaps at once. Without one, Wait blocks.
	p.pidfd, _ = openPidfd(p.pid)
	p.status = api.StatusRunning
	p.nextSample = nextTick(p.startedAt, p.def.StatsInterval)
	if lim := def.Limits.MaxRuntime; lim > 0 {
		p.runtimeTimer = time.AfterFunc(lim, p.runtimeExceeded)
	}

	s.mu.Lock()
	if s.closed { // Close ran while we started: take it down again
		s.mu.Unlock()
		if p.runtimeTimer != nil {
			p.runtimeTimer.Stop()
		}
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if p.pidfd != nil {
			p.pidfd.Close()
		}
		p.listener.Close()
		return nil, fmt.Errorf("cannot spawn %q: %w", def.Name, ErrClosed)
	}
	s.procs[p.id] = p
	s.mu.Unlock()
	s.sampler.poke()
	s.persist(p)
	s.log.Info("process spawned", "process", p.id, "name", def.Name, "pid", p.pid)
	// Reported before the accept loop runs, so process.spawned always comes
	// before anything the child says.
	s.report(Report{Kind: KindSpawned, ProcessID: p.id, Name: def.Name,
		Payload: api.Spawned{ProcessID: p.id, Name: def.Name, PID: p.pid, Node: s.cfg.NodeID}})
	p.run()
	return p, nil
}

// run starts the process's accept loop and its reaper.
func (p *process) run() {
	p.sup.wg.Add(1)
	go p.acceptLoop()
	p.sup.reapers.Add(1)
	go p.wait()
}

// record is p's persisted form.
func (p *process) record() record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return record{
		ID: p.id, Definition: p.def.Info(), PID: p.pid, StartTicks: p.startTicks, StartedAt: p.startedAt,
		SocketPath: p.socketPath, TCPPort: p.tcpPort, LogPath: p.logPath, Metadata: p.metadata,
		Env: p.opts.Env, Cwd: p.opts.Cwd, Restarts: p.restarts, Failures: p.failures,
		Connected: !p.lastHeartbeat.IsZero(),
	}
}

func (p *process) listen() error {
	s := p.sup
	if s.cfg.Transport == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("cannot listen on loopback: %w", err)
		}
		p.listener, p.tcpPort = l, l.Addr().(*net.TCPAddr).Port
		return nil
	}
	path := filepath.Join(s.cfg.SocketDir, p.id+".sock")
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("cannot secure %s: %w", path, err)
	}
	p.listener, p.socketPath = l, path
	return nil
}

// command builds the child's exec.Cmd: own process group, environment of
// the node, then the definition, then the spawn, then DONKEYLABS_*.
func (p *process) command() (*exec.Cmd, *os.File, error) {
	def := p.def
	cmd := exec.Command(def.Command, def.Args...)
	cmd.Dir = def.Cwd
	if p.opts.Cwd != "" {
		cmd.Dir = p.opts.Cwd
	}
	env := os.Environ()
	for _, k := range sortedNames(def.Env) {
		env = append(env, k+"="+def.Env[k])
	}
	for _, k := range sortedNames(p.opts.Env) {
		env = append(env, k+"="+p.opts.Env[k])
	}
	env = append(env, wire.EnvProcessID+"="+p.id, wire.EnvMetadata+"="+string(p.metadata))
	if p.socketPath != "" {
		env = append(env, wire.EnvSocketPath+"="+p.socketPath)
	} else {
		env = append(env, wire.EnvTCPPort+"="+strconv.Itoa(p.tcpPort))
	}
	cmd.Env = env
	// Own process group so stop reaches the whole tree; no Pdeathsig, so
	// children survive a node restart.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if p.sup.cfg.LogDir == "" {
		return cmd, nil, nil
	}
	p.logPath = filepath.Join(p.sup.cfg.LogDir, def.Name+"-"+p.id+".log")
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open log file: %w", err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	return cmd, f, nil
}

// wait reaps the child and turns its exit into a final status and report.
func (p *process) wait() {
	defer p.sup.reapers.Done()
	code, errText := p.reap()
	p.mu.Lock()
	if p.detached {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	// Leave no orphans: whatever is left of the group goes too.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)

	p.mu.Lock()
	for _, t := range []*time.Timer{p.killTimer, p.hbTimer, p.runtimeTimer} {
		if t != nil {
			t.Stop()
		}
	}
	status := api.StatusCrashed
	switch {
	case p.watchdogReason != "":
		errText = "killed by the watchdog (" + p.watchdogReason + ")"
	case p.stopRequested || (code != nil && *code == 0):
		status = api.StatusStopped
	case p.cmd == nil && p.saidGoodbye:
		status = api.StatusStopped // re-adopted: said goodbye, then left
	}
	p.status, p.exitCode, p.endedAt = status, code, time.Now()
	if status == api.StatusCrashed {
		p.errText = errText
	}
	stopRequested := p.stopRequested
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()

	s := p.sup
	p.listener.Close() // also unlinks the socket file
	for _, c := range conns {
		c.close()
	}
	s.unpersist(p.id)
	// The restart is armed before the exit is reported, so whoever reacts
	// to process.crashed already sees it pending.
	var afterReport func()
	if !stopRequested {
		afterReport = p.scheduleRestart(status)
	}
	name := p.def.Name
	if status == api.StatusStopped {
		s.log.Info("process stopped", "process", p.id, "name", name, "pid", p.pid, "exitCode", derefOr(code, -1))
		s.report(Report{Kind: KindStopped, ProcessID: p.id, Name: name, Payload: api.Stopped{ProcessID: p.id, Name: name, ExitCode: code}})
	} else {
		s.log.Warn("process crashed", "process", p.id, "name", name, "pid", p.pid, "err", errText)
		s.report(Report{Kind: KindCrashed, ProcessID: p.id, Name: name, Payload: api.Crashed{ProcessID: p.id, Name: name, ExitCode: code, Error: errText}})
		if p.def.OnCrash != nil {
			p.def.OnCrash(p.snapshot(), derefOr(code, -1))
		}
	}
	if afterReport != nil {
		afterReport()
	}
	s.sampler.forget(p.pid)
	close(p.done)
	s.prune()
}

// reap waits for the process to exit. A child of ours tells its exit code
// or signal; a re-adopted process is watched through its pidfd and its
// code stays unknown (nil).
func (p *process) reap() (code *int, errText string) {
	if p.pidfd != nil {
		waitPidfd(p.pidfd)
	}
	if p.cmd == nil {
		return nil, "exited while re-adopted (exit code unknown)"
	}
	_ = p.cmd.Wait()
	state := p.cmd.ProcessState
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return nil, "killed by signal " + api.SignalName(ws.Signal())
	}
	c := state.ExitCode()
	if c != 0 {
		errText = fmt.Sprintf("exited with code %d", c)
	}
	return &c, errText
}

func derefOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// stop asks the process group to end and waits for the exit. Stopping a
// finished process that waits for an auto-restart cancels the restart.
func (p *process) stop(ctx context.Context, sig syscall.Signal) error {
	p.mu.Lock()
	if p.status.Finished() {
		st, pending := p.status, p.restartTimer != nil && p.restartTimer.Stop()
		p.restartTimer = nil
		p.mu.Unlock()
		if pending {
			p.sup.log.Info("pending restart cancelled", "process", p.id, "name", p.def.Name)
			return nil
		}
		return fmt.Errorf("%w (status %s)", ErrNotRunning, st)
	}
	if sig == 0 {
		sig = p.def.StopSignal
	}
	if !p.stopRequested {
		p.stopRequested = true
		p.status = api.StatusStopping
		p.killTimer = time.AfterFunc(p.def.StopTimeout, p.kill)
	}
	p.mu.Unlock()
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cannot signal process group %d: %w", p.pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kill is the stop timeout firing: SIGKILL to the group, unless the process
// is already gone.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.mu.Lock()
	detached := p.detached
	p.mu.Unlock()
	if detached { // the next node supervises it now
		return
	}
	p.sup.log.Warn("stop timeout passed, killing process group", "process", p.id, "name", p.def.Name, "pid", p.pid)
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}

func (p *process) finished() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status.Finished()
}

func (p *process) snapshot() api.ManagedProcess {
	p.mu.Lock()
	defer p.mu.Unlock()
	mp := api.ManagedProcess{
		ID: p.id, Name: p.def.Name, Node: p.sup.cfg.NodeID, Status: p.status, PID: p.pid,
		StartedAt: p.startedAt, Metadata: p.metadata, Restarts: p.restarts, ExitCode: p.exitCode,
		Error: p.errText, Connected: len(p.conns) > 0, SocketPath: p.socketPath, TCPPort: p.tcpPort,
		Stale: p.stale, Stats: p.lastStats, RestartPending: p.restartTimer != nil,
	}
	if !p.lastHeartbeat.IsZero() {
		t := p.lastHeartbeat
		mp.LastHeartbeat = &t
	}
	if !p.endedAt.IsZero() {
		t := p.endedAt
		mp.EndedAt = &t
	}
	return mp
}

func (p *process) latestConn() *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latest
}

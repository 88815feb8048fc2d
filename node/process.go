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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/node/procstat"
)

// process is the record of one managed child. Fields above mu never change
// after start; fields below it are guarded by it. mu is never held across
// I/O or callbacks. Its state changes only in lifecycle.go.
type process struct {
	sup        *Supervisor
	def        *definition
	id         string
	opts       SpawnOptions
	metadata   json.RawMessage
	listener   net.Listener // its own tcp port; nil on unix (the node's shared socket) and for a lost process
	socketPath string
	tcpPort    int
	logLimits  logLimits         // log_max_bytes and log_max_files
	logs       *logPipe          // its output; nil when the node keeps no logs, or lost it
	legacyLog  bool              // spawned by a node before FIFOs: it writes <name>-<id>.log itself
	child      bool              // the node started it (else re-adopted: not its child)
	exited     <-chan exitStatus // a child's exit, from the reaper
	pidfd      *os.File          // a re-adopted process's: readable once it exits
	pid        int
	startTicks uint64 // the child's start time in /proc, to tell a recycled pid
	startedAt  time.Time
	done       chan struct{} // closed once the exit is fully handled
	// ref is `{"processId":"<id>","name":"<name>"}`, the payload of
	// heartbeats and connects; eventPrefix is the same without the closing
	// brace, the start of every custom event payload. Both are read-only.
	ref         []byte
	eventPrefix []byte
	// lin: restarts counts every restart of this lineage (what ps shows);
	// failures counts consecutive crashes, the auto-restart budget.
	lin lineage

	// over says whether st's status is finished (stopped or crashed): set
	// with st by every transition, so that counting the running processes
	// of a definition (capacity, at every spawn) takes no process's lock.
	over atomic.Bool

	mu sync.Mutex
	st state // where it is in its life (lifecycle.go)
	// Timers, armed and stopped only by apply (lifecycle.go).
	runtimeTimer *time.Timer // max_runtime
	hbTimer      *time.Timer // the heartbeat watchdog, from the first connection
	killTimer    *time.Timer // SIGKILL after the stop timeout
	restartTimer *time.Timer // a pending auto-restart (backoff)
	restartAt    time.Time   // when it is due, and the lineage it is for:
	restartNext  lineage     // both written with the record (state.go)
	// Stats sampled by the node.
	lastStats  *wire.Stats
	cpuOver    int       // consecutive samples over max_cpu_percent
	nextSample time.Time // when the sampler is due to look at it
	conns      map[*conn]struct{}
	ready      bool       // run has started it: connections are admitted
	early      []net.Conn // connections that came before run, in order
	connSeq    uint64     // connections admitted so far (conn.seq)
	latest     *conn      // the newest established connection: where Send writes
	held       bool       // its instance is held (instances.go)
	// pruned: prune has forgotten it, so its record must not be on disk
	// again (persist). Set once, never cleared.
	pruned bool
}

// lineage is what a restarted process inherits from the one it replaces.
type lineage struct {
	restarts int    // restarts so far, this one included
	failures int    // consecutive crashes so far
	replaces string // the id of the process this one was started in place of (auto-restart)
}

// newProcess builds the record common to a spawned and a re-adopted
// process, running. It is registered by its caller once its child is
// known to run.
func (s *Supervisor) newProcess(def *definition, id string, opts SpawnOptions, lin lineage) *process {
	p := &process{
		sup: s, def: def, id: id, opts: opts, metadata: opts.Metadata, lin: lin,
		done: make(chan struct{}), conns: make(map[*conn]struct{}), st: state{phase: running},
	}
	if len(p.metadata) == 0 {
		p.metadata = json.RawMessage("{}")
	}
	p.logLimits = s.limitsFor(def)
	p.ref, _ = json.Marshal(api.ProcessRef{ProcessID: p.id, Name: def.Name})
	p.eventPrefix = p.ref[:len(p.ref)-1]
	return p
}

// start creates the socket, starts the child and its goroutines, and
// reports process.spawned. Its record file is made meanwhile
// (reserveRecord).
func (s *Supervisor) start(def *definition, opts SpawnOptions, lin lineage) (*process, error) {
	p := s.newProcess(def, newProcessID(), opts, lin)
	p.child = true
	reserved := s.reserveRecord(p.id)
	if err := p.listen(); err != nil {
		s.discardRecord(reserved)
		return nil, fmt.Errorf("cannot spawn %q: %w", def.Name, err)
	}
	path, argv, attr, err := p.command()
	if err != nil {
		s.discardRecord(reserved)
		p.unlisten()
		return nil, fmt.Errorf("cannot spawn %q: %w", def.Name, err)
	}
	if s.cfg.LogDir != "" {
		lp, out, err := s.makeFIFO(p)
		if err != nil {
			s.discardRecord(reserved)
			p.unlisten()
			return nil, fmt.Errorf("cannot spawn %q: %w", def.Name, err)
		}
		p.logs = lp
		attr.Files[1], attr.Files[2] = uintptr(out), uintptr(out)
		defer syscall.Close(out) // the child has its own copy
	}
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		s.discardRecord(reserved)
		p.unlisten()
		if p.logs != nil {
			p.logs.closeUnstarted() // no FIFO, no log file: it never started
		}
		return nil, fmt.Errorf("cannot spawn %q: cannot start %s: %w", def.Name, def.Command, err)
	}
	p.exited = s.children.watch(pid)
	p.pid, p.startedAt = pid, time.Now()
	s.mu.Lock()
	s.live[p.pid] = p // it may connect from now: its connections wait for run
	s.mu.Unlock()
	p.startTicks, _ = procstat.StartTime(p.pid)
	due := nextTick(p.startedAt, p.def.StatsInterval) // p.nextSample is the sampler's once p is listed
	p.nextSample = due
	// Its record is on disk before anyone hears of it: a child the next
	// node could not find must not run.
	if err := s.persistNew(p, reserved); err != nil {
		p.abandonStart()
		s.log.Error("spawn undone: its record could not be written", "process", p.id, "name", def.Name, "pid", p.pid)
		return nil, api.Errorf(api.ErrInternal, "cannot spawn %q: %w", def.Name, err)
	}

	s.mu.Lock()
	if s.closed { // Close ran while we started: take it down again
		s.mu.Unlock()
		p.abandonStart()
		s.unpersist(p.id)
		return nil, fmt.Errorf("cannot spawn %q: %w", def.Name, ErrClosed)
	}
	// Started under s.mu, so that a Close that follows finds it running
	// with its runtime limit armed.
	p.transition(event{kind: evStarted, at: p.startedAt})
	s.procs[p.id] = p
	s.mu.Unlock()
	s.sampler.dueBy(due)
	s.log.Info("process spawned", "process", p.id, "name", def.Name, "pid", p.pid)
	// Reported before the accept loop runs, so process.spawned always comes
	// before anything the child says.
	s.report(Report{Kind: KindSpawned, ProcessID: p.id, Name: def.Name,
		Payload: api.Spawned{ProcessID: p.id, Name: def.Name, PID: p.pid, Node: s.cfg.NodeID}})
	p.run()
	return p, nil
}

// forgetPID drops p from the processes that may connect: its pid is
// free for another process now.
func (s *Supervisor) forgetPID(p *process) {
	s.mu.Lock()
	if s.live[p.pid] == p {
		delete(s.live, p.pid)
	}
	s.mu.Unlock()
}

// abandonStart takes down a child start cannot go on with, and what was
// made for it: the child is killed and reaped, its socket and FIFO
// removed. Nothing is reported: nobody heard of it.
func (p *process) abandonStart() {
	p.sup.forgetPID(p)
	p.killStarted()
	p.unlisten()
	if p.logs != nil {
		p.logs.closeUnstarted()
	}
	p.mu.Lock()
	early := p.early
	p.early = nil
	p.mu.Unlock()
	for _, nc := range early {
		nc.Close()
	}
}

// killStarted takes down a child that start cannot go on with: SIGKILL to
// its group, and the child reaped before it returns.
func (p *process) killStarted() {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	if p.sup.children.forget(p.pid) {
		var ws syscall.WaitStatus
		_, _ = wait4(p.pid, &ws, 0)
	}
}

// socketPath is where process id's socket is: derived from its id, never
// read from a record.
func (s *Supervisor) socketPath(id string) string { return s.socketDirPath(id + ".sock") }

func (s *Supervisor) socketDirPath(name string) string { return filepath.Join(s.cfg.SocketDir, name) }

// run starts the process's accept loop (tcp), its log pipe and its
// reaper, and takes the connections that came before (conn.go take).
func (p *process) run() {
	s := p.sup
	p.mu.Lock()
	p.ready = true
	early := p.early
	p.early = nil
	p.mu.Unlock()
	for _, nc := range early {
		s.admit(p, nc)
	}
	if p.listener != nil {
		p.sup.wg.Add(1)
		go p.acceptLoop()
	}
	if lp := p.logs; lp != nil {
		p.sup.wg.Go(lp.run)
	}
	p.sup.reapers.Add(1)
	go p.wait()
}

// record is p's persisted form: running, or ended once it has.
func (p *process) record() record {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := record{
		ID: p.id, Definition: p.def.Info(), PID: p.pid, StartTicks: p.startTicks, StartedAt: p.startedAt,
		TCPPort: p.tcpPort, Metadata: p.metadata,
		LogMaxBytes: p.logLimits.maxBytes, LogMaxFiles: p.logLimits.maxFiles,
		Env: p.opts.Env, Cwd: p.opts.Cwd, Instance: p.opts.Instance, Service: p.opts.Service,
		Restarts: p.lin.restarts, Failures: p.lin.failures,
		Connected: !p.st.lastHeartbeat.IsZero(), LegacyLog: p.legacyLog,
	}
	if p.st.phase == backoff || p.st.phase == exited {
		r.Status, r.ExitCode, r.Error, r.EndedAt = p.st.ended, p.st.exitCode, p.st.errText, p.st.endedAt
	}
	if p.st.phase == backoff {
		r.Restart = &recordedRestart{At: p.restartAt, Restarts: p.restartNext.restarts, Failures: p.restartNext.failures}
	}
	r.Replaces = p.lin.replaces
	return r
}

// listen makes the socket the child connects to: a port of its own on
// tcp; on unix, <socket_dir>/<id>.sock (link).
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
	return p.link()
}

// link makes <socket_dir>/<id>.sock, a hard link to the node's listening
// socket for the child's user (conn.go): connecting to it reaches that
// socket, with its owner and mode. A hard link adds a name to an inode
// that exists, where a symbolic link is a new inode: allocating one can
// cost a hundred times a link on a file system that freed many lately
// (ext4 steps over recently freed inodes). The link names the socket of
// this node's life: relisten makes it again for the next node's.
func (p *process) link() error {
	s := p.sup
	uid, gid := os.Geteuid(), os.Getegid()
	if c := p.def.cred; c != nil {
		uid, gid = int(c.Uid), int(c.Gid)
	}
	target, err := s.sharedFor(uid, gid)
	if err != nil {
		return err
	}
	path := s.socketPath(p.id)
	_ = os.Remove(path)
	err = os.Link(s.socketDirPath(target), path)
	if errors.Is(err, syscall.EMLINK) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		// The socket has as many names as the file system allows (65,000
		// on ext4), linking another user's file is refused to a node
		// without CAP_FOWNER, or the file system has no hard links: a
		// symbolic link does as well, for an inode.
		if serr := os.Symlink(target, path); serr != nil {
			err = fmt.Errorf("%w (and a symbolic link: %w)", err, serr)
		} else {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("cannot make %s: %w", path, err)
	}
	p.socketPath = path
	return nil
}

// unlisten closes the process's own port, or removes its link.
func (p *process) unlisten() {
	if p.listener != nil {
		p.listener.Close()
	}
	if p.socketPath != "" {
		_ = os.Remove(p.socketPath)
	}
}

// command builds what ForkExec needs to start the child: the path of the
// command (looked up in the node's PATH when it has no slash, as os/exec
// does), its argv, and its attributes: own process group, the
// definition's user and group, stdin, stdout and stderr from and to
// /dev/null (start points stdout and stderr at the log FIFO), and the
// environment: the node's without CORRAL_* and NATS_* (none with
// inherit_env = false), then the definition's, then the spawn's, then
// DONKEYLABS_*, EnvProcessName and EnvNodeMark, the last value of a name
// winning.
func (p *process) command() (path string, argv []string, attr *syscall.ProcAttr, err error) {
	def := p.def
	path = def.Command
	if !strings.Contains(path, "/") {
		if path, err = exec.LookPath(path); err != nil {
			return "", nil, nil, err
		}
	}
	dir := def.Cwd
	if p.opts.Cwd != "" {
		dir = p.opts.Cwd
	}
	var env []string
	if !def.EmptyEnv {
		env = append(env, p.sup.environ...)
	}
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
	env = append(env, EnvProcessName+"="+def.Name) // orphans.go: how the next node finds it without a record
	if p.opts.Instance != "" {                     // and keeps it the instance it is
		env = append(env, EnvInstance+"="+p.opts.Instance)
		if p.opts.Service != "" {
			env = append(env, EnvService+"="+p.opts.Service)
		}
	}
	if p.lin.replaces != "" { // an auto-restart: the next node must not restart what it replaces again
		env = append(env, EnvReplaces+"="+p.lin.replaces)
	}
	if p.sup.mark != "" {
		env = append(env, EnvNodeMark+"="+p.sup.mark)
	}
	null, err := devNull()
	if err != nil {
		return "", nil, nil, err
	}
	attr = &syscall.ProcAttr{
		Dir: dir, Env: dedupEnv(env), Files: []uintptr{null, null, null},
		// Own process group so stop reaches the whole tree; no Pdeathsig,
		// so children survive a node restart.
		Sys: &syscall.SysProcAttr{Setpgid: true, Credential: def.cred},
	}
	return path, append([]string{def.Command}, def.Args...), attr, nil
}

// devNull is /dev/null, opened once for every child's stdin (and its
// output when the node keeps no logs). It stays open for the life of the
// node process.
var devNull = sync.OnceValues(func() (uintptr, error) {
	fd, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("cannot open %s: %w", os.DevNull, err)
	}
	return uintptr(fd), nil
})

// dedupEnv keeps the last value given to each name, as os/exec does.
func dedupEnv(env []string) []string {
	seen := make(map[string]bool, len(env))
	out := make([]string, 0, len(env))
	for i := len(env) - 1; i >= 0; i-- {
		k, _, _ := strings.Cut(env[i], "=")
		if !seen[k] {
			seen[k] = true
			out = append(out, env[i])
		}
	}
	slices.Reverse(out)
	return out
}

// wait reaps the child and reports its end (unless the node let it go).
func (p *process) wait() {
	defer p.sup.reapers.Done()
	code, errText, ok := p.reap()
	if !ok {
		return // the node let go of it (Detach): its end is the next node's
	}
	p.sup.forgetPID(p)
	if p.logs != nil {
		p.logs.stop() // its last lines are in the log before its end is reported
	}
	_ = p.on(event{kind: evExited, at: time.Now(), code: code, errText: errText})
}

// reap waits for the process to exit. A child of ours tells its exit code
// or signal; a re-adopted process is watched through its pidfd and its
// code stays unknown (nil). ok is false when the node stopped watching
// before the process exited.
func (p *process) reap() (code *int, errText string, ok bool) {
	if p.pidfd != nil {
		if !waitPidfd(p.pidfd) {
			return nil, "", false
		}
		return nil, "exited while re-adopted (exit code unknown)", true
	}
	var ex exitStatus
	select {
	case ex = <-p.exited:
	case <-p.sup.children.stopped():
		return nil, "", false
	}
	if !ex.known {
		return nil, "exited, and its status was taken by another waiter (exit code unknown)", true
	}
	if ex.ws.Signaled() {
		return nil, "killed by signal " + api.SignalName(ex.ws.Signal()), true
	}
	c := ex.ws.ExitStatus()
	if c != 0 {
		errText = fmt.Sprintf("exited with code %d", c)
	}
	return &c, errText, true
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
	if sig == 0 {
		sig = p.def.StopSignal
	}
	st, eff := p.transition(event{kind: evStop, sig: sig})
	if eff.cancelled {
		p.sup.log.Info("pending restart cancelled", "process", p.id, "name", p.def.Name)
		return nil
	}
	if st.phase == exited {
		return fmt.Errorf("%w (status %s)", ErrNotRunning, st.status())
	}
	if err := p.perform(st, eff); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// perform carries out what a transition left to do once p.mu is released
// (the effects, in the order lifecycle.go lists them). It returns the
// error of signalling the group.
func (p *process) perform(st state, eff effects) error {
	s, name := p.sup, p.def.Name
	if eff.sigkill {
		s.log.Warn("stop timeout passed, killing process group", "process", p.id, "name", name, "pid", p.pid)
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	if since := eff.stale; since > 0 {
		s.log.Warn("process is stale: no heartbeat", "process", p.id, "name", name, "since", since.Round(time.Millisecond))
		s.report(Report{Kind: KindStale, ProcessID: p.id, Name: name,
			Payload: api.Stale{ProcessID: p.id, Name: name, TimeSince: since.Milliseconds()}})
		s.report(Report{Kind: KindWatchdogStale, ProcessID: p.id, Name: name,
			Payload: api.WatchdogStale{ProcessID: p.id, Name: name, Reason: api.ReasonHeartbeat, TimeoutMs: p.def.HeartbeatTimeout.Milliseconds()}})
		if p.def.OnUnhealthy != nil {
			p.def.OnUnhealthy(p.snapshot())
		}
	}
	if eff.exceeded {
		s.log.Warn("process exceeded a limit", "process", p.id, "name", name, "reason", eff.reason, "limit", eff.limit, "value", eff.value)
		s.report(Report{Kind: KindLimitsExceeded, ProcessID: p.id, Name: name,
			Payload: api.LimitsExceeded{ProcessID: p.id, Name: name, Reason: eff.reason, Limit: eff.limit, Value: eff.value}})
	}
	if eff.killed {
		s.log.Warn("watchdog is killing process", "process", p.id, "name", name, "reason", eff.reason)
		s.report(Report{Kind: KindWatchdogKilled, ProcessID: p.id, Name: name,
			Payload: api.WatchdogKilled{ProcessID: p.id, Name: name, Reason: eff.reason, Value: eff.value}})
	}
	var err error
	if eff.signal != 0 {
		if e := syscall.Kill(-p.pid, eff.signal); e != nil && !errors.Is(e, syscall.ESRCH) {
			err = fmt.Errorf("cannot signal process group %d: %w", p.pid, e)
		}
	}
	if eff.detach {
		if p.listener != nil {
			p.listener.Close() // a unix socket's link stays, for the next node to make again (relisten)
		}
		for _, c := range eff.conns {
			c.close()
		}
		if p.pidfd != nil {
			p.pidfd.Close() // its reaper returns: the exit is the next node's
		}
		if p.logs != nil {
			p.logs.stop() // the FIFO stays: the next node reads on
		}
	}
	if eff.unpromise {
		_ = s.persist(p)
	}
	if eff.end {
		p.finish(st, eff)
	}
	if eff.respawn {
		p.respawn(eff.next)
	}
	return err
}

// finish reports how a process ended, for the reaper (wait) and for a
// process found dead at recovery (lost) alike: it closes the socket and the
// connections, forgets the record on disk, reports process.stopped or
// process.crashed (the restart, if any, is already pending), then the
// restart decision, and lets go of the process.
func (p *process) finish(st state, eff effects) {
	s, name, code := p.sup, p.def.Name, st.exitCode
	if eff.killGroup {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL) // leave no orphans: whatever is left of the group goes too
	}
	p.unlisten()
	s.forgetPID(p)
	for _, c := range eff.conns {
		c.close()
	}
	if s.cfg.LogDir != "" {
		_ = os.Remove(s.fifoPath(p.id)) // read to the end by now (wait); the log files stay
	}
	_ = s.persist(p) // ended: it stays listed, and its logs readable, after a node restart
	if st.ended == api.StatusStopped {
		s.log.Info("process stopped", "process", p.id, "name", name, "pid", p.pid, "exitCode", derefOr(code, -1))
		s.report(Report{Kind: KindStopped, ProcessID: p.id, Name: name, Payload: api.Stopped{ProcessID: p.id, Name: name, ExitCode: code}})
	} else {
		s.log.Warn("process crashed", "process", p.id, "name", name, "pid", p.pid, "err", st.errText)
		s.report(Report{Kind: KindCrashed, ProcessID: p.id, Name: name, Payload: api.Crashed{ProcessID: p.id, Name: name, ExitCode: code, Error: st.errText}})
		if p.def.OnCrash != nil {
			mp, exitCode := p.snapshot(), derefOr(code, -1)
			eff.later.call(func() { p.def.OnCrash(mp, exitCode) })
		}
	}
	switch {
	case eff.armRestart:
		s.log.Info("restarting after backoff", "process", p.id, "name", name, "delay", eff.delay.Round(time.Millisecond), "attempt", eff.next.restarts)
	case eff.restartLimit:
		s.hold(p)
		s.log.Error("restart limit reached, giving up", "process", p.id, "name", name, "restarts", eff.failures)
		s.report(Report{Kind: KindRestartLimit, ProcessID: p.id, Name: name,
			Payload: api.RestartLimit{ProcessID: p.id, Name: name, Restarts: eff.failures}})
	}
	s.sampler.forget(p.pid)
	close(p.done)
	s.prune()
}

// finished reports whether the process has ended (stopped or crashed),
// as of its last transition. It takes no lock.
func (p *process) finished() bool { return p.over.Load() }

func (p *process) snapshot() api.ManagedProcess {
	p.mu.Lock()
	defer p.mu.Unlock()
	mp := api.ManagedProcess{
		ID: p.id, Name: p.def.Name, Node: p.sup.cfg.NodeID, PID: p.pid,
		StartedAt: p.startedAt, Metadata: p.metadata, Restarts: p.lin.restarts,
		Connected: len(p.conns) > 0, SocketPath: p.socketPath, TCPPort: p.tcpPort, Stats: p.lastStats,
		Instance: p.opts.Instance, Service: p.opts.Service, Held: p.held,
	}
	p.st.view(&mp)
	return mp
}

func (p *process) latestConn() *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latest
}

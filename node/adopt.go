package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/node/procstat"
)

// RecoverResult says what Recover found.
type RecoverResult struct {
	Adopted []string // ids re-adopted, still running
	Lost    []string // ids recorded as running whose process is gone
	Ended   []string // ids of processes that had ended, listed again from their records
	// Orphans are ids of running children of this node that had no
	// readable record (found by their mark, orphans.go): re-adopted when
	// their definition is known (they are in Adopted too), else killed and
	// reported crashed.
	Orphans []string
	Corrupt int // state files that could not be read (moved aside)
}

// Recover re-adopts the children a previous node on this host left behind:
// every recorded process whose pid still exists with the recorded start
// time (so a recycled pid is never adopted) gets its socket back at the same
// path, process.reconnected, and the same supervision as before (exit,
// heartbeat, limits, stop, auto-restart). A recorded process that is gone
// is reported crashed (exit code unknown) and auto-restart applies.
// Processes that had ended are listed again as they ended (ps --all, get,
// logs), until retention prunes them. Then it looks for children of this
// node that have no record (orphans.go). Stale socket files, FIFOs and
// log files no process owns are removed. The OnCrash callbacks of the
// processes found dead are called once Recover has let go of the lock
// spawns take, in the order it found them, before it returns: they may
// spawn. The auto-restart of such a process waits for that lock too, so
// its replacement may start (and OnRestart run) before its OnCrash. Call
// it once, after the definitions are in place and before serving.
func (s *Supervisor) Recover() RecoverResult {
	var res RecoverResult
	if s.store == nil {
		return res
	}
	recs, errs := s.store.load()
	for _, err := range errs {
		if errors.As(err, new(emptyRecord)) {
			s.log.Warn("empty process record", "err", err)
			continue
		}
		res.Corrupt++
		s.log.Error("cannot read process record", "err", err)
	}
	// Restarts (the records' pending ones, lost processes' with no delay)
	// wait until Recover is done: a replacement started meanwhile could
	// be taken for an orphan or have its socket removed as stale. So do
	// the callbacks of the processes found dead (later), which may spawn.
	var later callQueue
	s.spawnMu.Lock()
	var found []marked // this node's children, record or not (orphans.go)
	if s.mark != "" {
		found = s.findMarked()
	}
	recorded := make(map[string]bool, len(recs))
	replaced := make(map[string]bool) // ids a record or a child says were restarted already
	for _, r := range recs {
		recorded[r.ID] = true
		if r.Replaces != "" {
			replaced[r.Replaces] = true
		}
	}
	for _, m := range found {
		// Only a child without a record is taken at its environment's
		// word: a child can rewrite its own environment, and must not
		// cancel another process's restart by it.
		if m.replaces != "" && !recorded[m.id] {
			replaced[m.replaces] = true
		}
	}
	for _, r := range recs {
		if r.ended() {
			s.loadEnded(r, replaced[r.ID])
			res.Ended = append(res.Ended, r.ID)
			continue
		}
		p, err := s.adopt(r, &later)
		switch {
		case err != nil:
			s.log.Error("cannot re-adopt process", "process", r.ID, "name", r.Definition.Name, "pid", r.PID, "err", err)
			res.Lost = append(res.Lost, r.ID)
		case !p.finished():
			res.Adopted = append(res.Adopted, r.ID)
		default:
			res.Lost = append(res.Lost, r.ID)
		}
	}
	s.adoptOrphans(found, recorded, &res, &later)
	s.removeStale()
	s.prune()
	s.spawnMu.Unlock()
	later.run()
	return res
}

// callQueue holds the callbacks that come due on a goroutine holding
// spawnMu: Recover, for the processes it finds dead. Called there, a
// callback that spawns would wait for spawnMu forever, on the goroutine
// that holds it. The holder runs them, in order, once it has let go. A
// nil queue calls each at once.
type callQueue struct{ calls []func() }

// call calls f now when q is nil, else queues it.
func (q *callQueue) call(f func()) {
	if q == nil {
		f()
		return
	}
	q.calls = append(q.calls, f)
}

// run calls what was queued, in order, and empties the queue.
func (q *callQueue) run() {
	calls := q.calls
	q.calls = nil
	for _, f := range calls {
		f()
	}
}

// adopt rebuilds one running process from its record. A process it cannot
// take back (its socket cannot be made again, say) is killed and reported
// crashed, with the reason: it must not run unsupervised. The callbacks of
// a process found dead go to later (Recover).
func (s *Supervisor) adopt(r record, later *callQueue) (*process, error) {
	def, err := s.definitionFor(r.Definition)
	if err != nil {
		p := s.newProcess(s.bareDefinition(r.Definition), r.ID, SpawnOptions{Metadata: r.Metadata}, lineage{})
		p.pid, p.startTicks, p.startedAt, p.tcpPort = r.PID, r.StartTicks, r.StartedAt, r.TCPPort
		s.giveUp(p, fmt.Sprintf("cannot re-adopt it: %v; the node killed its process group", err), later)
		return p, err
	}
	p := s.newProcess(def, r.ID, SpawnOptions{Metadata: r.Metadata, Env: r.Env, Cwd: r.Cwd, Instance: r.Instance, Service: r.Service},
		lineage{restarts: r.Restarts, failures: r.Failures, replaces: r.Replaces})
	p.tcpPort = r.TCPPort
	p.pid, p.startTicks, p.startedAt = r.PID, r.StartTicks, r.StartedAt
	if s.lookupDef(r.Definition.Name) == nil && r.LogMaxBytes >= MinLogMaxBytes && r.LogMaxFiles > 0 {
		p.logLimits = logLimits{maxBytes: r.LogMaxBytes, maxFiles: r.LogMaxFiles} // as it was spawned
	}
	if !sameProcess(r.PID, r.StartTicks) {
		s.lost(p, "", later)
		return p, nil
	}
	p.legacyLog = r.Version < 2 || r.LegacyLog
	if err := s.takeBack(p, r.Connected); err != nil {
		s.giveUp(p, fmt.Sprintf("cannot re-adopt it: %v; the node killed its process group", err), later)
		return p, err
	}
	return p, nil
}

// takeBack supervises p, found alive: its socket again, its output, its
// exit, its limits, and process.reconnected. connected says whether its
// heartbeat was watched before.
func (s *Supervisor) takeBack(p *process, connected bool) error {
	def := p.def
	var err error
	if p.pidfd, err = openPidfd(p.pid); err != nil {
		return err
	}
	if err := p.relisten(); err != nil {
		p.pidfd.Close()
		p.pidfd = nil
		return err
	}
	if s.cfg.LogDir != "" && !p.legacyLog {
		if p.logs, err = s.openFIFO(p); err != nil {
			// It runs on; its output stays in the pipe and, past 64 KiB,
			// its writes block.
			s.log.Error("cannot read the output of a re-adopted process", "process", p.id, "name", def.Name, "pid", p.pid, "err", err)
		}
	}
	now := time.Now()
	due := nextTick(now, def.StatsInterval) // p.nextSample is the sampler's once p is listed
	p.nextSample = due
	p.transition(event{kind: evStarted, at: now})
	s.mu.Lock()
	s.procs[p.id] = p
	s.live[p.pid] = p // it may connect from now: its connections wait for run
	s.mu.Unlock()
	s.sampler.dueBy(due) // its limits are enforced from now, not the next idle round
	// The child reconnects on its own; until it does, the heartbeat clock
	// runs from now, so one that never comes back is still caught. A child
	// that never connected is supervised by its exit alone, as before.
	if connected {
		p.heartbeat(now)
	}
	s.log.Info("process re-adopted", "process", p.id, "name", def.Name, "pid", p.pid)
	s.report(Report{Kind: KindReconnected, ProcessID: p.id, Name: def.Name,
		Payload: api.Reconnected{ProcessID: p.id, Name: def.Name, PID: p.pid}})
	_ = s.persist(p) // the definition snapshot may have changed
	p.run()
	return nil
}

// loadEnded lists a process that had ended before this node started, as
// it ended. Nothing is reported: its end was, by the node that saw it. When
// its record promises an auto-restart that has not happened (the node died
// during the backoff; replaced says a record replaces it), the restart is
// armed for when it was due, as the node that saw the end would have.
func (s *Supervisor) loadEnded(r record, replaced bool) {
	def, err := s.definitionFor(r.Definition)
	bare := err != nil
	if bare {
		def = s.bareDefinition(r.Definition)
	}
	p := s.newProcess(def, r.ID, SpawnOptions{Metadata: r.Metadata, Env: r.Env, Cwd: r.Cwd, Instance: r.Instance, Service: r.Service},
		lineage{restarts: r.Restarts, failures: r.Failures, replaces: r.Replaces})
	p.pid, p.startTicks, p.startedAt, p.tcpPort = r.PID, r.StartTicks, r.StartedAt, r.TCPPort
	p.legacyLog = r.Version < 2 || r.LegacyLog
	if r.LogMaxBytes >= MinLogMaxBytes && r.LogMaxFiles > 0 {
		p.logLimits = logLimits{maxBytes: r.LogMaxBytes, maxFiles: r.LogMaxFiles}
	}
	ev := event{kind: evRecorded, at: r.EndedAt, ended: r.Status, code: r.ExitCode, errText: r.Error}
	// A pending restart was decided under the definition of the node that
	// wrote it: it goes on only if the definition the node has now still
	// restarts the process.
	if pr := r.Restart; pr != nil && !replaced && !bare && p.stillRestarts(r) {
		ev.restartPending, ev.restartIn = true, time.Until(pr.At)
		ev.next = lineage{restarts: pr.Restarts, failures: pr.Failures}
		s.log.Info("restarting after backoff, as the last node would have", "process", r.ID, "name", def.Name,
			"delay", max(ev.restartIn, 0).Round(time.Millisecond), "attempt", pr.Restarts)
	}
	p.transition(ev)
	close(p.done)
	s.mu.Lock()
	s.procs[p.id] = p
	s.mu.Unlock()
	s.watch(p.id)
}

// stillRestarts reports whether the process r records would be restarted
// under its definition as the node has it now (autoRestart).
func (p *process) stillRestarts(r record) bool {
	d, _, _ := p.autoRestart(r.Status, r.EndedAt)
	return d == restartLater
}

// watch asks the reporter to answer for a process it has no report of
// that would make it do so (spawned, reconnected): see Config.Reporter.
func (s *Supervisor) watch(id string) {
	if w, ok := s.rep.(interface{ Watch(id string) }); ok {
		w.Watch(id)
	}
}

func (s *Supervisor) lookupDef(name string) *definition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.defs[name]
}

// definitionFor is the current definition of the recorded name when the
// node still has it (with its callbacks), else the recorded snapshot, which
// supervises the process without becoming one of the node's definitions.
func (s *Supervisor) definitionFor(info api.DefinitionInfo) (*definition, error) {
	if cur := s.lookupDef(info.Name); cur != nil {
		return cur, nil
	}
	d, err := DefinitionFromInfo(info)
	if err != nil {
		return nil, err
	}
	return s.compile(d)
}

// bareDefinition stands for a definition that cannot be compiled (or is
// unknown): it names the process, and supervises nothing (no restart).
func (s *Supervisor) bareDefinition(info api.DefinitionInfo) *definition {
	name := info.Name
	if !api.ValidToken(name) {
		name = "unknown"
	}
	return &definition{Definition: Definition{Name: name, Command: info.Command}.withDefaults()}
}

// lost reports a recorded process that died while no node watched it:
// it ends at once (crashed, exit code unknown, or why when given), and
// auto-restart applies. Nothing is signalled: its pid may belong to
// another process by now. It runs inside Recover, which holds spawnMu:
// the end's callbacks go to later.
func (s *Supervisor) lost(p *process, why string, later *callQueue) {
	st, eff := p.transition(event{kind: evLost, at: time.Now(), errText: why})
	eff.later = later
	s.mu.Lock()
	s.procs[p.id] = p // listed before its end is reported
	s.mu.Unlock()
	s.watch(p.id) // get and logs answer for it: only its end is reported
	if why == "" {
		s.log.Warn("recorded process is gone", "process", p.id, "name", p.def.Name, "pid", p.pid)
	}
	_ = p.perform(st, eff)
}

// giveUp ends a child of this node the node cannot supervise (unknown
// definition, or one it cannot re-adopt): SIGKILL to its process group,
// and it is reported crashed, with why. A supervisor never leaves a child
// of its own running unreported. Its callbacks go to later (lost).
func (s *Supervisor) giveUp(p *process, why string, later *callQueue) {
	if sameProcess(p.pid, p.startTicks) {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = syscall.Kill(p.pid, syscall.SIGKILL) // in case it left its group
	}
	s.log.Warn("orphan child killed", "process", p.id, "name", p.def.Name, "pid", p.pid, "err", why)
	s.lost(p, why, later)
}

// relisten recreates the process's socket where the child expects it: the
// link derived from its id (never a path read from a record), or the port
// it was given.
func (p *process) relisten() error {
	if p.sup.cfg.Transport == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.tcpPort))
		if err != nil {
			return fmt.Errorf("cannot listen on the recorded port %d: %w", p.tcpPort, err)
		}
		p.listener = l
		return nil
	}
	return p.link()
}

// sameProcess reports whether pid is alive and is the process that started
// at startTicks (not a later process that reused the pid).
func sameProcess(pid int, startTicks uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	got, err := procstat.StartTime(pid)
	return err == nil && got == startTicks
}

// removeStale deletes what no process owns any more: socket files in the
// socket directory, and FIFOs and log files in the log directory (log
// files only once they are older than the retention, so that the output
// of a process whose record was lost can still be read for a while).
func (s *Supervisor) removeStale() {
	live := map[string]bool{}   // ids whose socket and FIFO are in use
	listed := map[string]bool{} // ids whose log files are kept
	s.mu.RLock()
	for id, p := range s.procs {
		listed[id] = true
		if !p.finished() {
			live[id] = true
		}
	}
	s.mu.RUnlock()
	idOf := func(name, suffix string) (string, bool) {
		i := strings.Index(name, suffix)
		if i < 0 {
			return "", false
		}
		id := name[:i]
		return id, validID(id)
	}
	if s.cfg.Transport == "unix" {
		entries, _ := os.ReadDir(s.cfg.SocketDir)
		for _, e := range entries {
			if id, ok := idOf(e.Name(), ".sock"); ok && strings.HasSuffix(e.Name(), ".sock") && !live[id] {
				path := filepath.Join(s.cfg.SocketDir, e.Name())
				_ = os.Remove(path)
				s.log.Info("removed stale socket", "path", path)
			}
		}
	}
	if s.cfg.LogDir == "" {
		return
	}
	entries, _ := os.ReadDir(s.cfg.LogDir)
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(s.cfg.LogDir, name)
		if id, ok := idOf(name, ".fifo"); ok && strings.HasSuffix(name, ".fifo") {
			if !live[id] {
				_ = os.Remove(path)
			}
			continue
		}
		// <id>.log[.n]; also <name>-<id>.log, as nodes before FIFOs named them.
		base, _, _ := strings.Cut(name, ".log")
		if i := strings.LastIndexByte(base, '-'); i >= 0 {
			base = base[i+1:]
		}
		if !validID(base) || !strings.Contains(name, ".log") || listed[base] {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > s.cfg.Retention {
			_ = os.Remove(path)
		}
	}
}

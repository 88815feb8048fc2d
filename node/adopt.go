package node

import (
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
	Corrupt int      // state files that could not be read (moved aside)
}

// Recover re-adopts the children a previous node on this host left behind:
// every recorded process whose pid still exists with the recorded start
// time (so a recycled pid is never adopted) gets its socket back at the same
// path, process.reconnected, and the same supervision as before (exit,
// heartbeat, limits, stop, auto-restart). A recorded process that is gone
// is reported crashed (exit code unknown) and auto-restart applies. Stale
// socket files are removed. Call it once, after the definitions are in
// place and before serving.
func (s *Supervisor) Recover() RecoverResult {
	var res RecoverResult
	if s.store == nil {
		return res
	}
	recs, errs := s.store.load()
	res.Corrupt = len(errs)
	for _, err := range errs {
		s.log.Error("cannot read process record", "err", err)
	}
	keep := map[string]bool{}
	for _, r := range recs {
		p, err := s.adopt(r)
		switch {
		case err != nil:
			s.log.Error("cannot re-adopt process", "process", r.ID, "name", r.Definition.Name, "pid", r.PID, "err", err)
			s.unpersist(r.ID)
		case !p.finished():
			res.Adopted = append(res.Adopted, r.ID)
			keep[filepath.Base(r.SocketPath)] = true
		default:
			res.Lost = append(res.Lost, r.ID)
		}
	}
	s.removeStaleSockets(keep)
	return res
}

// adopt rebuilds one process from its record.
func (s *Supervisor) adopt(r record) (*process, error) {
	def, err := s.definitionFor(r.Definition)
	if err != nil {
		return nil, err
	}
	p := s.newProcess(def, r.ID, SpawnOptions{Metadata: r.Metadata, Env: r.Env, Cwd: r.Cwd, Instance: r.Instance, Service: r.Service},
		lineage{restarts: r.Restarts, failures: r.Failures})
	p.socketPath, p.tcpPort, p.logPath = r.SocketPath, r.TCPPort, r.LogPath
	p.pid, p.startTicks, p.startedAt = r.PID, r.StartTicks, r.StartedAt

	if !sameProcess(r.PID, r.StartTicks) {
		s.lost(p)
		return p, nil
	}
	if p.pidfd, err = openPidfd(r.PID); err != nil {
		return nil, err
	}
	if err := p.relisten(); err != nil {
		p.pidfd.Close()
		return nil, err
	}
	now := time.Now()
	p.nextSample = nextTick(now, def.StatsInterval)
	p.transition(event{kind: evStarted, at: now})
	s.mu.Lock()
	s.procs[p.id] = p
	s.mu.Unlock()
	s.sampler.poke() // its limits are enforced from now, not the next idle round
	// The child reconnects on its own; until it does, the heartbeat clock
	// runs from now, so one that never comes back is still caught. A child
	// that never connected is supervised by its exit alone, as before.
	if r.Connected {
		p.heartbeat(now)
	}
	s.log.Info("process re-adopted", "process", p.id, "name", def.Name, "pid", p.pid)
	s.report(Report{Kind: KindReconnected, ProcessID: p.id, Name: def.Name,
		Payload: api.Reconnected{ProcessID: p.id, Name: def.Name, PID: p.pid}})
	s.persist(p) // the definition snapshot may have changed
	p.run()
	return p, nil
}

// definitionFor is the current definition of the recorded name when the
// node still has it (with its callbacks), else the recorded snapshot, which
// supervises the process without becoming one of the node's definitions.
func (s *Supervisor) definitionFor(info api.DefinitionInfo) (*definition, error) {
	s.mu.RLock()
	cur := s.defs[info.Name]
	s.mu.RUnlock()
	if cur != nil {
		return cur, nil
	}
	d, err := DefinitionFromInfo(info)
	if err != nil {
		return nil, err
	}
	return s.compile(d)
}

// lost reports a recorded process that died while no node watched it:
// it ends at once (crashed, exit code unknown), and auto-restart applies.
// Its pid may belong to another process by now: nothing is signalled.
func (s *Supervisor) lost(p *process) {
	st, eff := p.transition(event{kind: evLost, at: time.Now()})
	s.mu.Lock()
	s.procs[p.id] = p // listed before its end is reported
	s.mu.Unlock()
	s.log.Warn("recorded process is gone", "process", p.id, "name", p.def.Name, "pid", p.pid)
	_ = p.perform(st, eff)
}

// relisten recreates the process's socket where the child expects it.
func (p *process) relisten() error {
	if p.socketPath == "" {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.tcpPort))
		if err != nil {
			return fmt.Errorf("cannot listen on the recorded port %d: %w", p.tcpPort, err)
		}
		p.listener = l
		return nil
	}
	_ = os.Remove(p.socketPath)
	l, err := net.Listen("unix", p.socketPath)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", p.socketPath, err)
	}
	if err := os.Chmod(p.socketPath, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("cannot secure %s: %w", p.socketPath, err)
	}
	p.listener = l
	return nil
}

// sameProcess reports whether pid is alive and is the process that started
// at startTicks (not a later process that reused the pid).
func sameProcess(pid int, startTicks uint64) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	got, err := procstat.StartTime(pid)
	return err == nil && got == startTicks
}

// removeStaleSockets deletes socket files no process owns any more.
func (s *Supervisor) removeStaleSockets(keep map[string]bool) {
	if s.cfg.SocketDir == "" {
		return
	}
	entries, err := os.ReadDir(s.cfg.SocketDir)
	if err != nil {
		return
	}
	s.mu.RLock()
	for _, p := range s.procs {
		if p.socketPath != "" && !p.finished() {
			keep[filepath.Base(p.socketPath)] = true
		}
	}
	s.mu.RUnlock()
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "proc_") && strings.HasSuffix(name, ".sock") && !keep[name] {
			_ = os.Remove(filepath.Join(s.cfg.SocketDir, name))
			s.log.Info("removed stale socket", "path", filepath.Join(s.cfg.SocketDir, name))
		}
	}
}

package node

import (
	"math/rand/v2"
	"time"

	"github.com/corral-run/corral/api"
)

// scheduleRestart decides, once a process has ended on its own (or by the
// watchdog), whether auto-restart brings it back, and arms the backoff
// timer. It runs on the process's wait goroutine before the exit is
// reported; what it returns (if not nil) reports its decision and must run
// after the exit report.
func (p *process) scheduleRestart(status api.Status) (afterReport func()) {
	def := p.def
	if !def.AutoRestart || (status == api.StatusStopped && !def.RestartAlways) {
		return nil
	}
	p.mu.Lock()
	failures := p.failures
	if p.endedAt.Sub(p.startedAt) >= def.RestartResetAfter {
		failures = 0 // a healthy run earns a fresh budget
	}
	if status == api.StatusStopped {
		failures = 0 // a clean exit under "always" is not a failure
	}
	if def.MaxRestarts >= 0 && failures >= def.MaxRestarts {
		p.mu.Unlock()
		return func() {
			s, name := p.sup, def.Name
			s.log.Error("restart limit reached, giving up", "process", p.id, "name", name, "restarts", failures)
			s.report(Report{Kind: KindRestartLimit, ProcessID: p.id, Name: name,
				Payload: api.RestartLimit{ProcessID: p.id, Name: name, Restarts: failures}})
		}
	}
	delay := backoff(def.RestartDelay, def.RestartDelayMax, failures)
	lin := lineage{restarts: p.restarts + 1, failures: failures + 1}
	if status == api.StatusStopped {
		lin.failures = 0
	}
	p.restartTimer = time.AfterFunc(delay, func() { p.autoRestart(lin) })
	p.mu.Unlock()
	return func() {
		p.sup.log.Info("restarting after backoff", "process", p.id, "name", def.Name, "delay", delay.Round(time.Millisecond), "attempt", lin.restarts)
	}
}

// backoff is base doubled per earlier failure, capped, minus up to 10 %
// jitter so that processes that crashed together do not restart together.
func backoff(base, capDelay time.Duration, failures int) time.Duration {
	d := base
	for i := 0; i < failures && d < capDelay; i++ {
		d *= 2
	}
	d = min(d, capDelay)
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

// autoRestart is the backoff timer firing: spawn the replacement.
func (p *process) autoRestart(lin lineage) {
	s := p.sup
	p.mu.Lock()
	if p.restartTimer == nil { // cancelled by a stop
		p.mu.Unlock()
		return
	}
	p.restartTimer = nil
	p.mu.Unlock()
	s.mu.RLock()
	closed, def := s.closed, s.defs[p.def.Name]
	s.mu.RUnlock()
	if closed {
		return
	}
	if def == nil {
		def = p.def
	}
	np, err := s.start(def, p.opts, lin)
	if err != nil {
		s.log.Error("cannot auto-restart", "process", p.id, "name", def.Name, "err", err)
		return
	}
	attempt := lin.failures
	if attempt == 0 { // a clean exit restarted under "always"
		attempt = lin.restarts
	}
	s.reportRestart(p, np, attempt)
}

// reportRestart publishes process.restarted and calls OnRestart.
func (s *Supervisor) reportRestart(old, cur *process, attempt int) {
	name := cur.def.Name
	s.report(Report{Kind: KindRestarted, ProcessID: cur.id, Name: name,
		Payload: api.Restarted{OldProcessID: old.id, NewProcessID: cur.id, Name: name, Attempt: attempt}})
	if cur.def.OnRestart != nil {
		cur.def.OnRestart(old.snapshot(), cur.snapshot(), attempt)
	}
}

package node

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/corral-run/corral/api"
)

// restartDecision is what auto-restart does about a process that ended.
type restartDecision uint8

const (
	noRestart     restartDecision = iota // off, or a clean exit under "on-failure"
	restartLater                         // after a backoff delay
	restartGiveUp                        // the budget of consecutive crashes is spent
)

// autoRestart decides, once a process has ended on its own (or by the
// watchdog) with status at endedAt, whether auto-restart brings it back.
// It returns the lineage of the replacement and the consecutive failures
// counted so far: the backoff grows with them, and restart_limit reports
// them. It is pure (the end transition calls it under p.mu).
func (p *process) autoRestart(status api.Status, endedAt time.Time) (d restartDecision, next lineage, failures int) {
	def := p.def
	always := def.RestartAlways || p.opts.Instance != "" // an instance is kept running
	if !(def.AutoRestart || p.opts.Instance != "") || (status == api.StatusStopped && !always) {
		return noRestart, lineage{}, 0
	}
	failures = p.lin.failures
	if endedAt.Sub(p.startedAt) >= def.RestartResetAfter {
		failures = 0 // a healthy run earns a fresh budget
	}
	if status == api.StatusStopped {
		failures = 0 // a clean exit under "always" is not a failure
	}
	if def.MaxRestarts >= 0 && failures >= def.MaxRestarts {
		return restartGiveUp, lineage{}, failures
	}
	next = lineage{restarts: p.lin.restarts + 1, failures: failures + 1}
	if status == api.StatusStopped {
		next.failures = 0
	}
	return restartLater, next, failures
}

// backoffDelay is base doubled per earlier failure, capped, minus up to
// 10 % jitter so that processes that crashed together do not restart
// together.
func backoffDelay(base, capDelay time.Duration, failures int) time.Duration {
	if base < 0 { // RestartAtOnce
		return 0
	}
	d := base
	for i := 0; i < failures && d < capDelay; i++ {
		d *= 2
	}
	d = min(d, capDelay)
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

// respawn is the backoff having passed: spawn the replacement, unless the
// node is closing.
func (p *process) respawn(lin lineage) {
	s := p.sup
	s.mu.RLock()
	closed, detaching, def := s.closed, s.detaching, s.defs[p.def.Name]
	s.mu.RUnlock()
	if closed {
		if !detaching {
			_ = s.persist(p) // closed: the restart is off, on disk too
		}
		return
	}
	if def == nil {
		def = p.def
	}
	lin.replaces = p.id
	s.spawnMu.Lock()
	err := s.checkInstanceFree(p.opts) // Restart or EnsureInstances may have been first
	var np *process
	if err == nil {
		np, err = s.start(def, p.opts, lin)
	}
	s.spawnMu.Unlock()
	// Its record no longer promises a restart. Written after the
	// replacement's, which says it replaces this one: a node that dies in
	// between leaves records that a restart already happened. A node
	// detaching meanwhile leaves the restart to the next node.
	if !errors.Is(err, ErrClosed) || !s.isDetaching() {
		_ = s.persist(p)
	}
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

func (s *Supervisor) isDetaching() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.detaching
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

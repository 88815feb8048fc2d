package node

import (
	"time"

	"github.com/corral-run/corral/api"
)

// The watchdog's ways into the lifecycle (lifecycle.go decides what they
// lead to): heartbeats from the child, the heartbeat, runtime and kill
// timers, and the sampler's limit checks.

// heartbeat records a connected or heartbeat message: the hot path, one
// short critical section. A heartbeat changes the record and the heartbeat
// timer, nothing outside (step sets no effect of perform's for it), so
// perform is skipped. It reports whether it was the child's first.
func (p *process) heartbeat(now time.Time) (first bool) {
	_, eff := p.transition(event{kind: evHeartbeat, at: now})
	return eff.firstContact
}

// heartbeatDue is the heartbeat timer firing: stale, killed, or checked
// again later.
func (p *process) heartbeatDue() {
	_ = p.on(event{kind: evHeartbeatDue, at: time.Now(), held: p.readerHeld()})
}

// readerHeld reports whether a read loop of p's is acting on a line now
// (waiting for room among its events waiting for storage, say), so that
// the node is not reading what the child sends.
func (p *process) readerHeld() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if c.handling.Load() {
			return true
		}
	}
	return false
}

// runtimeExceeded is the max_runtime timer firing.
func (p *process) runtimeExceeded() {
	lim := p.def.Limits.MaxRuntime
	p.limitExceeded(api.ReasonRuntime, float64(lim.Milliseconds()), float64(time.Since(p.startedAt).Milliseconds()))
}

// limitExceeded reports a breached hard limit and kills the process, if it
// is still live.
func (p *process) limitExceeded(reason string, limit, value float64) {
	_ = p.on(event{kind: evLimit, reason: reason, limit: limit, value: value})
}

// stopTimeoutPassed is the kill timer firing: SIGKILL to the group, unless
// the process is gone or the node let it go.
func (p *process) stopTimeoutPassed() {
	_ = p.on(event{kind: evKillDue})
}

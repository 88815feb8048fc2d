package node

import (
	"syscall"
	"time"

	"github.com/corral-run/corral/api"
)

// heartbeat records a heartbeat (or the first connection) and, the first
// time, arms the heartbeat watchdog. A heartbeat that comes back ends a
// stale episode.
// It reports whether this was the first one.
func (p *process) heartbeat(now time.Time) (first bool) {
	timeout := p.def.HeartbeatTimeout
	p.mu.Lock()
	defer p.mu.Unlock()
	first = p.lastHeartbeat.IsZero()
	p.lastHeartbeat = now
	p.stale = false
	if timeout > 0 && p.hbTimer == nil && !p.status.Finished() && !p.detached {
		p.hbTimer = time.AfterFunc(timeout, p.checkHeartbeat)
	}
	return first
}

// checkHeartbeat is the heartbeat timer firing. It re-arms itself for the
// next deadline; a timer that finds the state moved on does nothing more.
func (p *process) checkHeartbeat() {
	timeout := p.def.HeartbeatTimeout
	p.mu.Lock()
	if p.status.Finished() || p.watchdogReason != "" || p.status == api.StatusStopping || p.detached {
		p.mu.Unlock()
		return
	}
	since := time.Since(p.lastHeartbeat)
	var becameStale, kill bool
	switch {
	case since >= 2*timeout:
		kill = true
	case since >= timeout:
		becameStale = !p.stale
		p.stale = true
		p.hbTimer.Reset(2*timeout - since)
	default:
		p.hbTimer.Reset(timeout - since)
	}
	p.mu.Unlock()

	s, name := p.sup, p.def.Name
	if becameStale {
		s.log.Warn("process is stale: no heartbeat", "process", p.id, "name", name, "since", since.Round(time.Millisecond))
		s.report(Report{Kind: KindStale, ProcessID: p.id, Name: name,
			Payload: api.Stale{ProcessID: p.id, Name: name, TimeSince: since.Milliseconds()}})
		s.report(Report{Kind: KindWatchdogStale, ProcessID: p.id, Name: name,
			Payload: api.WatchdogStale{ProcessID: p.id, Name: name, Reason: api.ReasonHeartbeat, TimeoutMs: timeout.Milliseconds()}})
		if p.def.OnUnhealthy != nil {
			p.def.OnUnhealthy(p.snapshot())
		}
	}
	if kill {
		p.watchdogKill(api.ReasonHeartbeat, float64(since.Milliseconds()))
	}
}

// runtimeExceeded is the max_runtime timer firing.
func (p *process) runtimeExceeded() {
	lim := p.def.Limits.MaxRuntime
	p.limitExceeded(api.ReasonRuntime, float64(lim.Milliseconds()), float64(time.Since(p.startedAt).Milliseconds()))
}

// limitExceeded reports a breached hard limit and kills the process.
func (p *process) limitExceeded(reason string, limit, value float64) {
	p.mu.Lock()
	live := !p.status.Finished() && p.watchdogReason == "" && p.status != api.StatusStopping && !p.detached
	p.mu.Unlock()
	if !live {
		return
	}
	s, name := p.sup, p.def.Name
	s.log.Warn("process exceeded a limit", "process", p.id, "name", name, "reason", reason, "limit", limit, "value", value)
	s.report(Report{Kind: KindLimitsExceeded, ProcessID: p.id, Name: name,
		Payload: api.LimitsExceeded{ProcessID: p.id, Name: name, Reason: reason, Limit: limit, Value: value}})
	p.watchdogKill(reason, value)
}

// watchdogKill stops the process group (stop signal, SIGKILL after the stop
// timeout) on the watchdog's behalf; the exit then counts as a crash.
func (p *process) watchdogKill(reason string, value float64) {
	p.mu.Lock()
	if p.status.Finished() || p.watchdogReason != "" || p.status == api.StatusStopping || p.detached {
		p.mu.Unlock()
		return
	}
	p.watchdogReason = reason
	p.status = api.StatusStopping
	p.killTimer = time.AfterFunc(p.def.StopTimeout, p.kill)
	p.mu.Unlock()
	s, name := p.sup, p.def.Name
	s.log.Warn("watchdog is killing process", "process", p.id, "name", name, "reason", reason)
	s.report(Report{Kind: KindWatchdogKilled, ProcessID: p.id, Name: name,
		Payload: api.WatchdogKilled{ProcessID: p.id, Name: name, Reason: reason, Value: value}})
	_ = syscall.Kill(-p.pid, p.def.StopSignal)
}

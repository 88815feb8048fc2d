package node

import (
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/corral-run/corral/api"
)

// The lifecycle, driven without processes: each row is a process record in
// a state, one event, and the state and effects step must produce.

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func code(c int) *int { return &c }

// lifecycleProcess is a record as start (or adopt, when adopted) builds
// it, started at t0, restarted twice with one crash in a row so far. No
// child, no socket, no supervisor: only step and transition may use it.
func lifecycleProcess(adopted bool, mod func(*Definition)) *process {
	d := Definition{Name: "w", Command: "w", HeartbeatTimeout: time.Second, StopTimeout: 5 * time.Second}
	if mod != nil {
		mod(&d)
	}
	return &process{def: &definition{Definition: d.withDefaults()}, startedAt: t0, child: !adopted,
		lin: lineage{restarts: 2, failures: 1}, st: state{phase: running}}
}

func autoRestartOn(d *Definition) { d.AutoRestart = true }

// States a row starts from.
var (
	fresh      = state{phase: running}
	onTimeSt   = state{phase: running, watch: onTime, lastHeartbeat: t0}
	staleSt    = state{phase: running, watch: overdue, lastHeartbeat: t0}
	byeSt      = state{phase: running, why: why{cause: goodbye}}
	stopSt     = state{phase: stopping, why: why{cause: stopAsked}}
	killSt     = state{phase: stopping, why: why{cause: watchdogKill, reason: api.ReasonHeartbeat}}
	killStopSt = state{phase: stopping, why: why{cause: watchdogKillAndStop, reason: api.ReasonHeartbeat}}
	backoffSt  = state{phase: backoff, ended: api.StatusCrashed, exitCode: code(1), errText: "exited with code 1", endedAt: t0}
	exitedSt   = state{phase: exited, ended: api.StatusStopped, exitCode: code(0), endedAt: t0}
	detachedSt = state{phase: detached}
)

// with returns st changed by fn (the rows' expected states).
func with(st state, fn func(*state)) state {
	fn(&st)
	return st
}

// transitionRow is one row of the transition table.
type transitionRow struct {
	name    string
	adopted bool              // re-adopted: not the node's child, exit code unknown
	def     func(*Definition) // changes to the definition
	from    state
	ev      event
	want    state
	eff     effects
}

func transitionRows() []transitionRow {
	const sec = time.Second
	limitEv := event{kind: evLimit, reason: api.ReasonMemory, limit: 60, value: 75}
	exit := func(c *int, errText string) event {
		return event{kind: evExited, at: at(sec), code: c, errText: errText}
	}
	ended := func(from state, status api.Status, c *int, errText string) state {
		return with(from, func(st *state) {
			st.phase, st.ended, st.exitCode, st.errText, st.endedAt = exited, status, c, errText, at(sec)
		})
	}
	endEff := effects{stopTimers: true, end: true, killGroup: true}

	return []transitionRow{
		// started: spawned (at its start) or re-adopted (later).
		{name: "spawned, no runtime limit", from: fresh, ev: event{kind: evStarted, at: t0}, want: fresh},
		{name: "spawned with a runtime limit", def: func(d *Definition) { d.Limits.MaxRuntime = 10 * sec },
			from: fresh, ev: event{kind: evStarted, at: t0}, want: fresh, eff: effects{armRuntime: true, runtimeIn: 10 * sec}},
		{name: "re-adopted: what is left of the runtime", adopted: true, def: func(d *Definition) { d.Limits.MaxRuntime = 10 * sec },
			from: fresh, ev: event{kind: evStarted, at: at(4 * sec)}, want: fresh, eff: effects{armRuntime: true, runtimeIn: 6 * sec}},
		{name: "re-adopted past its runtime: fires at once", adopted: true, def: func(d *Definition) { d.Limits.MaxRuntime = 10 * sec },
			from: fresh, ev: event{kind: evStarted, at: at(time.Minute)}, want: fresh, eff: effects{armRuntime: true}},
		{name: "started while stopping: ignored", from: stopSt, ev: event{kind: evStarted, at: t0}, want: stopSt},
		{name: "started in backoff: ignored", from: backoffSt, ev: event{kind: evStarted, at: t0}, want: backoffSt},
		{name: "started after the exit: ignored", from: exitedSt, ev: event{kind: evStarted, at: t0}, want: exitedSt},
		{name: "started when detached: ignored", from: detachedSt, ev: event{kind: evStarted, at: t0}, want: detachedSt},

		// heartbeat: connected or heartbeat message.
		{name: "first contact arms the heartbeat timer", from: fresh, ev: event{kind: evHeartbeat, at: at(sec)},
			want: state{phase: running, watch: onTime, lastHeartbeat: at(sec)}, eff: effects{armHeartbeat: sec, firstContact: true}},
		{name: "heartbeat on time", from: onTimeSt, ev: event{kind: evHeartbeat, at: at(sec)},
			want: with(onTimeSt, func(st *state) { st.lastHeartbeat = at(sec) })},
		{name: "heartbeat ends a stale episode", from: staleSt, ev: event{kind: evHeartbeat, at: at(sec)},
			want: with(onTimeSt, func(st *state) { st.lastHeartbeat = at(sec) })},
		{name: "heartbeat with monitoring off", def: func(d *Definition) { d.HeartbeatTimeout = -1 }, from: fresh,
			ev: event{kind: evHeartbeat, at: at(sec)}, want: state{phase: running, lastHeartbeat: at(sec)}, eff: effects{firstContact: true}},
		{name: "heartbeat while stopping: recorded, not armed", from: stopSt, ev: event{kind: evHeartbeat, at: at(sec)},
			want: with(stopSt, func(st *state) { st.lastHeartbeat = at(sec) }), eff: effects{firstContact: true}},
		{name: "heartbeat while stopping ends the stale episode", from: with(killSt, func(st *state) { st.watch, st.lastHeartbeat = overdue, t0 }),
			ev: event{kind: evHeartbeat, at: at(sec)}, want: with(killSt, func(st *state) { st.watch, st.lastHeartbeat = onTime, at(sec) })},
		{name: "heartbeat in backoff: recorded, not armed", from: backoffSt, ev: event{kind: evHeartbeat, at: at(sec)},
			want: with(backoffSt, func(st *state) { st.lastHeartbeat = at(sec) }), eff: effects{firstContact: true}},
		{name: "heartbeat after the exit: recorded, not armed", from: with(exitedSt, func(st *state) { st.watch, st.lastHeartbeat = overdue, t0 }),
			ev: event{kind: evHeartbeat, at: at(sec)}, want: with(exitedSt, func(st *state) { st.watch, st.lastHeartbeat = onTime, at(sec) })},
		{name: "heartbeat when detached: recorded, not armed", from: detachedSt, ev: event{kind: evHeartbeat, at: at(sec)},
			want: with(detachedSt, func(st *state) { st.lastHeartbeat = at(sec) }), eff: effects{firstContact: true}},

		// heartbeat due: the heartbeat timer fired (timeout 1 s, last heartbeat at t0).
		{name: "heartbeat timer, not late yet", from: onTimeSt, ev: event{kind: evHeartbeatDue, at: at(400 * time.Millisecond)},
			want: onTimeSt, eff: effects{armHeartbeat: 600 * time.Millisecond}},
		{name: "heartbeat late: stale", from: onTimeSt, ev: event{kind: evHeartbeatDue, at: at(1500 * time.Millisecond)},
			want: staleSt, eff: effects{stale: 1500 * time.Millisecond, armHeartbeat: 500 * time.Millisecond}},
		{name: "still stale: reported once per episode", from: staleSt, ev: event{kind: evHeartbeatDue, at: at(1700 * time.Millisecond)},
			want: staleSt, eff: effects{armHeartbeat: 300 * time.Millisecond}},
		{name: "late twice the timeout: the watchdog kills it", from: staleSt, ev: event{kind: evHeartbeatDue, at: at(2 * sec)},
			want: with(staleSt, func(st *state) { st.phase, st.why = stopping, why{cause: watchdogKill, reason: api.ReasonHeartbeat} }),
			eff:  effects{killed: true, reason: api.ReasonHeartbeat, value: 2000, signal: syscall.SIGTERM, armKill: true}},
		{name: "a late timer kills without a stale report", from: onTimeSt, ev: event{kind: evHeartbeatDue, at: at(2500 * time.Millisecond)},
			want: with(onTimeSt, func(st *state) { st.phase, st.why = stopping, why{cause: watchdogKill, reason: api.ReasonHeartbeat} }),
			eff:  effects{killed: true, reason: api.ReasonHeartbeat, value: 2500, signal: syscall.SIGTERM, armKill: true}},
		{name: "late, but the node holds its lines unread: judged a timeout later", from: onTimeSt,
			ev:   event{kind: evHeartbeatDue, at: at(2500 * time.Millisecond), held: true},
			want: with(onTimeSt, func(st *state) { st.heldAt = at(2500 * time.Millisecond) }), eff: effects{armHeartbeat: sec}},
		{name: "still held: judged again later", from: with(onTimeSt, func(st *state) { st.heldAt = at(2 * sec) }),
			ev:   event{kind: evHeartbeatDue, at: at(3 * sec), held: true},
			want: with(onTimeSt, func(st *state) { st.heldAt = at(3 * sec) }), eff: effects{armHeartbeat: sec}},
		{name: "held no more: the clock runs from the last hold", from: with(onTimeSt, func(st *state) { st.heldAt = at(3 * sec) }),
			ev:   event{kind: evHeartbeatDue, at: at(4 * sec)},
			want: with(staleSt, func(st *state) { st.heldAt = at(3 * sec) }), eff: effects{stale: sec, armHeartbeat: sec}},
		{name: "held no more, silent for twice the timeout since: killed", from: with(staleSt, func(st *state) { st.heldAt = at(3 * sec) }),
			ev: event{kind: evHeartbeatDue, at: at(5 * sec)},
			want: with(staleSt, func(st *state) {
				st.heldAt, st.phase, st.why = at(3*sec), stopping, why{cause: watchdogKill, reason: api.ReasonHeartbeat}
			}),
			eff: effects{killed: true, reason: api.ReasonHeartbeat, value: 2000, signal: syscall.SIGTERM, armKill: true}},
		{name: "held while on time: no effect of the hold", from: onTimeSt, ev: event{kind: evHeartbeatDue, at: at(400 * time.Millisecond), held: true},
			want: onTimeSt, eff: effects{armHeartbeat: 600 * time.Millisecond}},
		{name: "heartbeat late while stopping: ignored", from: with(stopSt, func(st *state) { st.watch, st.lastHeartbeat = onTime, t0 }),
			ev: event{kind: evHeartbeatDue, at: at(5 * sec)}, want: with(stopSt, func(st *state) { st.watch, st.lastHeartbeat = onTime, t0 })},
		{name: "heartbeat late in backoff: ignored", from: backoffSt, ev: event{kind: evHeartbeatDue, at: at(5 * sec)}, want: backoffSt},
		{name: "heartbeat late after the exit: ignored", from: exitedSt, ev: event{kind: evHeartbeatDue, at: at(5 * sec)}, want: exitedSt},
		{name: "heartbeat late when detached: ignored", from: detachedSt, ev: event{kind: evHeartbeatDue, at: at(5 * sec)}, want: detachedSt},

		// goodbye: the child said "disconnecting".
		{name: "goodbye while running", from: fresh, ev: event{kind: evGoodbye}, want: byeSt},
		{name: "goodbye while stopping: the stop explains the end", from: stopSt, ev: event{kind: evGoodbye}, want: stopSt},
		{name: "goodbye while the watchdog kills it", from: killSt, ev: event{kind: evGoodbye}, want: killSt},
		{name: "goodbye in backoff: ignored", from: backoffSt, ev: event{kind: evGoodbye}, want: backoffSt},
		{name: "goodbye after the exit: ignored", from: exitedSt, ev: event{kind: evGoodbye}, want: exitedSt},
		{name: "goodbye when detached", from: detachedSt, ev: event{kind: evGoodbye}, want: with(detachedSt, func(st *state) { st.why.cause = goodbye })},

		// limit: runtime timer, memory or CPU sample over the limit.
		{name: "limit breached: reported, then killed", from: fresh, ev: limitEv,
			want: state{phase: stopping, why: why{cause: watchdogKill, reason: api.ReasonMemory}},
			eff:  effects{exceeded: true, killed: true, reason: api.ReasonMemory, limit: 60, value: 75, signal: syscall.SIGTERM, armKill: true}},
		{name: "limit breached by a stale process", from: staleSt, ev: limitEv,
			want: with(staleSt, func(st *state) { st.phase, st.why = stopping, why{cause: watchdogKill, reason: api.ReasonMemory} }),
			eff:  effects{exceeded: true, killed: true, reason: api.ReasonMemory, limit: 60, value: 75, signal: syscall.SIGTERM, armKill: true}},
		{name: "limit while stopping: ignored", from: stopSt, ev: limitEv, want: stopSt},
		{name: "limit while the watchdog kills it: ignored", from: killSt, ev: limitEv, want: killSt},
		{name: "limit in backoff: ignored", from: backoffSt, ev: limitEv, want: backoffSt},
		{name: "limit after the exit: ignored", from: exitedSt, ev: limitEv, want: exitedSt},
		{name: "limit when detached: ignored", from: detachedSt, ev: limitEv, want: detachedSt},

		// stop asked.
		{name: "stop", from: fresh, ev: event{kind: evStop, sig: syscall.SIGINT}, want: stopSt,
			eff: effects{signal: syscall.SIGINT, armKill: true}},
		{name: "stop after a goodbye", from: byeSt, ev: event{kind: evStop, sig: syscall.SIGTERM}, want: stopSt,
			eff: effects{signal: syscall.SIGTERM, armKill: true}},
		{name: "stop asked twice: signal again, one kill timer", from: stopSt, ev: event{kind: evStop, sig: syscall.SIGTERM}, want: stopSt,
			eff: effects{signal: syscall.SIGTERM}},
		{name: "stop while the watchdog kills it: no restart", from: killSt, ev: event{kind: evStop, sig: syscall.SIGTERM}, want: killStopSt,
			eff: effects{signal: syscall.SIGTERM}},
		{name: "stop in backoff cancels the restart, on disk too", from: backoffSt, ev: event{kind: evStop, sig: syscall.SIGTERM},
			want: with(backoffSt, func(st *state) { st.phase = exited }), eff: effects{stopRestart: true, cancelled: true, unpromise: true}},
		{name: "stop after the exit: nothing (ErrNotRunning)", from: exitedSt, ev: event{kind: evStop, sig: syscall.SIGTERM}, want: exitedSt},
		{name: "stop when detached: signalled, no kill timer", from: detachedSt, ev: event{kind: evStop, sig: syscall.SIGTERM},
			want: with(detachedSt, func(st *state) { st.why.cause = stopAsked }), eff: effects{signal: syscall.SIGTERM}},

		// kill due: the stop timeout has passed.
		{name: "stop timeout while stopping: SIGKILL", from: stopSt, ev: event{kind: evKillDue}, want: stopSt, eff: effects{sigkill: true}},
		{name: "stop timeout of a watchdog kill: SIGKILL", from: killSt, ev: event{kind: evKillDue}, want: killSt, eff: effects{sigkill: true}},
		{name: "stop timeout while running: ignored", from: fresh, ev: event{kind: evKillDue}, want: fresh},
		{name: "stop timeout in backoff: ignored", from: backoffSt, ev: event{kind: evKillDue}, want: backoffSt},
		{name: "stop timeout after the exit: ignored", from: exitedSt, ev: event{kind: evKillDue}, want: exitedSt},
		{name: "stop timeout when detached: ignored", from: with(detachedSt, func(st *state) { st.why.cause = stopAsked }),
			ev: event{kind: evKillDue}, want: with(detachedSt, func(st *state) { st.why.cause = stopAsked })},

		// exited: the reaper saw it go.
		{name: "exit 0 unasked: stopped", from: fresh, ev: exit(code(0), ""), want: ended(fresh, api.StatusStopped, code(0), ""), eff: endEff},
		{name: "exit 3 unasked: crashed", from: fresh, ev: exit(code(3), "exited with code 3"),
			want: ended(fresh, api.StatusCrashed, code(3), "exited with code 3"), eff: endEff},
		{name: "killed by a signal unasked: crashed", from: onTimeSt, ev: exit(nil, "killed by signal SIGKILL"),
			want: ended(onTimeSt, api.StatusCrashed, nil, "killed by signal SIGKILL"), eff: endEff},
		{name: "exit after a stop: stopped whatever its code", from: stopSt, ev: exit(nil, "killed by signal SIGKILL"),
			want: ended(stopSt, api.StatusStopped, nil, ""), eff: endEff},
		{name: "exit after a stop: never restarted", def: autoRestartOn, from: stopSt, ev: exit(code(1), "exited with code 1"),
			want: ended(stopSt, api.StatusStopped, code(1), ""), eff: endEff},
		{name: "exit 0 after a watchdog kill: crashed", from: killSt, ev: exit(code(0), ""),
			want: ended(killSt, api.StatusCrashed, code(0), "killed by the watchdog (heartbeat)"), eff: endEff},
		{name: "exit after a watchdog kill: restarted", def: autoRestartOn, from: killSt, ev: exit(code(0), ""),
			want: with(ended(killSt, api.StatusCrashed, code(0), "killed by the watchdog (heartbeat)"), func(st *state) { st.phase = backoff }),
			eff:  effects{stopTimers: true, end: true, killGroup: true, armRestart: true, next: lineage{restarts: 3, failures: 2}, failures: 1}},
		{name: "exit after a watchdog kill and a stop: crashed, not restarted", def: autoRestartOn, from: killStopSt, ev: exit(code(0), ""),
			want: ended(killStopSt, api.StatusCrashed, code(0), "killed by the watchdog (heartbeat)"), eff: endEff},
		{name: "re-adopted, said goodbye, exited: stopped", adopted: true, from: byeSt, ev: exit(nil, "exited while re-adopted (exit code unknown)"),
			want: ended(byeSt, api.StatusStopped, nil, ""), eff: endEff},
		{name: "re-adopted, exited without a word: crashed", adopted: true, from: fresh, ev: exit(nil, "exited while re-adopted (exit code unknown)"),
			want: ended(fresh, api.StatusCrashed, nil, "exited while re-adopted (exit code unknown)"), eff: endEff},
		{name: "our child said goodbye, exit 1: crashed", from: byeSt, ev: exit(code(1), "exited with code 1"),
			want: ended(byeSt, api.StatusCrashed, code(1), "exited with code 1"), eff: endEff},
		{name: "crash with auto-restart: backoff", def: autoRestartOn, from: fresh, ev: exit(code(1), "exited with code 1"),
			want: with(ended(fresh, api.StatusCrashed, code(1), "exited with code 1"), func(st *state) { st.phase = backoff }),
			eff:  effects{stopTimers: true, end: true, killGroup: true, armRestart: true, next: lineage{restarts: 3, failures: 2}, failures: 1}},
		{name: "crash with the budget spent: restart_limit", def: func(d *Definition) { d.AutoRestart, d.MaxRestarts = true, 1 },
			from: fresh, ev: exit(code(1), "exited with code 1"), want: ended(fresh, api.StatusCrashed, code(1), "exited with code 1"),
			eff: effects{stopTimers: true, end: true, killGroup: true, restartLimit: true, failures: 1}},
		{name: "crash after a healthy run: a fresh budget", def: func(d *Definition) { d.AutoRestart, d.MaxRestarts = true, 1 },
			from: fresh, ev: event{kind: evExited, at: at(time.Minute), code: code(1), errText: "exited with code 1"},
			want: with(ended(fresh, api.StatusCrashed, code(1), "exited with code 1"), func(st *state) { st.phase, st.endedAt = backoff, at(time.Minute) }),
			eff:  effects{stopTimers: true, end: true, killGroup: true, armRestart: true, next: lineage{restarts: 3, failures: 1}}},
		{name: "crash with unlimited restarts", def: func(d *Definition) { d.AutoRestart, d.MaxRestarts = true, -1 },
			from: fresh, ev: exit(code(1), "exited with code 1"),
			want: with(ended(fresh, api.StatusCrashed, code(1), "exited with code 1"), func(st *state) { st.phase = backoff }),
			eff:  effects{stopTimers: true, end: true, killGroup: true, armRestart: true, next: lineage{restarts: 3, failures: 2}, failures: 1}},
		{name: "clean exit under on-failure: not restarted", def: autoRestartOn, from: fresh, ev: exit(code(0), ""),
			want: ended(fresh, api.StatusStopped, code(0), ""), eff: endEff},
		{name: "clean exit under always: restarted, not a failure", def: func(d *Definition) { d.AutoRestart, d.RestartAlways = true, true },
			from: fresh, ev: exit(code(0), ""), want: with(ended(fresh, api.StatusStopped, code(0), ""), func(st *state) { st.phase = backoff }),
			eff: effects{stopTimers: true, end: true, killGroup: true, armRestart: true, next: lineage{restarts: 3}}},
		{name: "exit when detached: the next node's business", from: detachedSt, ev: exit(code(1), "exited with code 1"), want: detachedSt},
		{name: "exit when detached while stopping: nothing either", from: with(detachedSt, func(st *state) { st.why.cause = stopAsked }),
			ev: exit(code(0), ""), want: with(detachedSt, func(st *state) { st.why.cause = stopAsked })},
		{name: "exit in backoff: ignored", from: backoffSt, ev: exit(code(0), ""), want: backoffSt},
		{name: "exit after the exit: ignored", from: exitedSt, ev: exit(code(0), ""), want: exitedSt},

		// lost: adopt found the recorded process dead.
		{name: "lost: crashed, nothing signalled", adopted: true, from: fresh, ev: event{kind: evLost, at: at(sec)},
			want: ended(fresh, api.StatusCrashed, nil, "exited while the node was down (exit code unknown)"),
			eff:  effects{stopTimers: true, end: true}},
		{name: "lost with auto-restart: backoff", adopted: true, def: autoRestartOn, from: fresh, ev: event{kind: evLost, at: at(sec)},
			want: with(ended(fresh, api.StatusCrashed, nil, "exited while the node was down (exit code unknown)"), func(st *state) { st.phase = backoff }),
			eff:  effects{stopTimers: true, end: true, armRestart: true, next: lineage{restarts: 3, failures: 2}, failures: 1}},
		{name: "lost while stopping: ignored", from: stopSt, ev: event{kind: evLost, at: at(sec)}, want: stopSt},
		{name: "lost in backoff: ignored", from: backoffSt, ev: event{kind: evLost, at: at(sec)}, want: backoffSt},
		{name: "lost after the exit: ignored", from: exitedSt, ev: event{kind: evLost, at: at(sec)}, want: exitedSt},
		{name: "lost when detached: ignored", from: detachedSt, ev: event{kind: evLost, at: at(sec)}, want: detachedSt},
		{name: "killed as an orphan: crashed, with why", adopted: true, from: fresh, ev: event{kind: evLost, at: at(sec), errText: "why"},
			want: ended(fresh, api.StatusCrashed, nil, "why"), eff: effects{stopTimers: true, end: true}},

		// recorded: Recover lists a process that had ended, as it ended.
		{name: "recorded end: listed, nothing reported", adopted: true, def: autoRestartOn, from: fresh,
			ev:   event{kind: evRecorded, at: at(sec), ended: api.StatusCrashed, code: code(2), errText: "exited with code 2"},
			want: ended(fresh, api.StatusCrashed, code(2), "exited with code 2")},
		{name: "recorded end with a restart pending: backoff, restart armed for when it was due", adopted: true, def: autoRestartOn, from: fresh,
			ev: event{kind: evRecorded, at: at(sec), ended: api.StatusCrashed, code: code(2), errText: "exited with code 2",
				restartPending: true, restartIn: 3 * sec, next: lineage{restarts: 2, failures: 1}},
			want: with(ended(fresh, api.StatusCrashed, code(2), "exited with code 2"), func(st *state) { st.phase = backoff }),
			eff:  effects{armRestart: true, restartIn: 3 * sec, next: lineage{restarts: 2, failures: 1}, failures: 1}},
		{name: "recorded end with a restart overdue: restarted at once", adopted: true, def: autoRestartOn, from: fresh,
			ev: event{kind: evRecorded, at: at(sec), ended: api.StatusCrashed, code: code(2), errText: "exited with code 2",
				restartPending: true, restartIn: -sec, next: lineage{restarts: 1, failures: 1}},
			want: with(ended(fresh, api.StatusCrashed, code(2), "exited with code 2"), func(st *state) { st.phase = backoff }),
			eff:  effects{armRestart: true, restartIn: RestartAtOnce, next: lineage{restarts: 1, failures: 1}, failures: 1}},
		{name: "recorded while stopping: ignored", from: stopSt, ev: event{kind: evRecorded, ended: api.StatusStopped}, want: stopSt},
		{name: "recorded in backoff: ignored", from: backoffSt, ev: event{kind: evRecorded, ended: api.StatusStopped}, want: backoffSt},
		{name: "recorded after the exit: ignored", from: exitedSt, ev: event{kind: evRecorded, ended: api.StatusCrashed}, want: exitedSt},
		{name: "recorded when detached: ignored", from: detachedSt, ev: event{kind: evRecorded, ended: api.StatusStopped}, want: detachedSt},

		// detach: the node leaves its children for the next one.
		{name: "detach while running", from: onTimeSt, ev: event{kind: evDetach},
			want: with(onTimeSt, func(st *state) { st.phase = detached }), eff: effects{stopTimers: true, detach: true}},
		{name: "detach while stale: still shown stale", from: staleSt, ev: event{kind: evDetach},
			want: with(staleSt, func(st *state) { st.phase = detached }), eff: effects{stopTimers: true, detach: true}},
		{name: "detach while stopping", from: stopSt, ev: event{kind: evDetach},
			want: with(stopSt, func(st *state) { st.phase = detached }), eff: effects{stopTimers: true, detach: true}},
		{name: "detach in backoff leaves the restart to the next node", from: backoffSt, ev: event{kind: evDetach},
			want: with(backoffSt, func(st *state) { st.phase = exited }), eff: effects{stopRestart: true}},
		{name: "detach after the exit: nothing to let go", from: exitedSt, ev: event{kind: evDetach}, want: exitedSt},
		{name: "detach twice", from: detachedSt, ev: event{kind: evDetach}, want: detachedSt},

		// restart due: the backoff has passed.
		{name: "backoff passed: respawn", from: backoffSt, ev: event{kind: evRestartDue, next: lineage{restarts: 3, failures: 2}},
			want: with(backoffSt, func(st *state) { st.phase = exited }), eff: effects{respawn: true, next: lineage{restarts: 3, failures: 2}}},
		{name: "backoff passed after a cancel: ignored", from: exitedSt, ev: event{kind: evRestartDue}, want: exitedSt},
		{name: "restart due while running: ignored", from: fresh, ev: event{kind: evRestartDue}, want: fresh},
		{name: "restart due while stopping: ignored", from: stopSt, ev: event{kind: evRestartDue}, want: stopSt},
		{name: "restart due when detached: ignored", from: detachedSt, ev: event{kind: evRestartDue}, want: detachedSt},

		// closing: Close drops pending restarts (and then stops the rest).
		{name: "close in backoff drops the restart, on disk too", from: backoffSt, ev: event{kind: evClosing},
			want: with(backoffSt, func(st *state) { st.phase = exited }), eff: effects{stopRestart: true, unpromise: true}},
		{name: "close while running: left to the stop that follows", from: fresh, ev: event{kind: evClosing}, want: fresh},
		{name: "close while stopping", from: stopSt, ev: event{kind: evClosing}, want: stopSt},
		{name: "close after the exit", from: exitedSt, ev: event{kind: evClosing}, want: exitedSt},
		{name: "close when detached", from: detachedSt, ev: event{kind: evClosing}, want: detachedSt},
	}
}

func TestLifecycleTransitions(t *testing.T) {
	for _, tc := range transitionRows() {
		t.Run(tc.name, func(t *testing.T) {
			p := lifecycleProcess(tc.adopted, tc.def)
			got, eff := tc.from, effects{}
			p.step(&got, &tc.ev, &eff)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("state\n got %+v\nwant %+v", got, tc.want)
			}
			if !reflect.DeepEqual(eff, tc.eff) {
				t.Errorf("effects\n got %+v\nwant %+v", eff, tc.eff)
			}
		})
	}
}

// Every phase meets every event in the table, so a phase or an event
// added without rows fails here.
func TestLifecycleTableCoversEveryPhaseAndEvent(t *testing.T) {
	seen := map[phase]map[eventKind]bool{}
	for _, row := range transitionRows() {
		if seen[row.from.phase] == nil {
			seen[row.from.phase] = map[eventKind]bool{}
		}
		seen[row.from.phase][row.ev.kind] = true
	}
	for ph := running; ph <= detached; ph++ {
		for ev := evStarted; ev <= evClosing; ev++ {
			if !seen[ph][ev] {
				t.Errorf("no row for event %d in phase %d", ev, ph)
			}
		}
	}
}

func TestLifecycleView(t *testing.T) {
	for _, tc := range []struct {
		name           string
		st             state
		status         api.Status
		stale, pending bool
	}{
		{"running", fresh, api.StatusRunning, false, false},
		{"running, stale", staleSt, api.StatusRunning, true, false},
		{"stopping", stopSt, api.StatusStopping, false, false},
		{"stopping a stale process", with(stopSt, func(st *state) { st.watch = overdue }), api.StatusStopping, true, false},
		{"killed by the watchdog", killSt, api.StatusStopping, false, false},
		{"backoff after a crash", backoffSt, api.StatusCrashed, false, true},
		{"backoff after a clean exit (always)", with(backoffSt, func(st *state) { st.ended = api.StatusStopped }), api.StatusStopped, false, true},
		{"exited", exitedSt, api.StatusStopped, false, false},
		{"crashed while stale", with(backoffSt, func(st *state) { st.phase, st.watch = exited, overdue }), api.StatusCrashed, true, false},
		{"detached while running", detachedSt, api.StatusRunning, false, false},
		{"detached after a goodbye", with(detachedSt, func(st *state) { st.why.cause = goodbye }), api.StatusRunning, false, false},
		{"detached while stopping", with(detachedSt, func(st *state) { st.why.cause = stopAsked }), api.StatusStopping, false, false},
		{"detached while the watchdog killed it", with(detachedSt, func(st *state) { st.why = killSt.why }), api.StatusStopping, false, false},
	} {
		var mp api.ManagedProcess
		tc.st.view(&mp)
		if mp.Status != tc.status || mp.Stale != tc.stale || mp.RestartPending != tc.pending {
			t.Errorf("%s: status %s stale %v restartPending %v, want %s %v %v", tc.name, mp.Status, mp.Stale, mp.RestartPending, tc.status, tc.stale, tc.pending)
		}
		if fin := tc.st.status().Finished(); fin != (tc.st.phase == backoff || tc.st.phase == exited) {
			t.Errorf("%s: finished %v in phase %d", tc.name, fin, tc.st.phase)
		}
	}
}

// transition keeps the timers in step with the state: armed when a
// transition says so, stopped when the process ends or the restart is
// cancelled. (Nothing is performed: no signal, no report.)
func TestLifecycleTimers(t *testing.T) {
	p := lifecycleProcess(false, func(d *Definition) {
		d.HeartbeatTimeout, d.StopTimeout, d.Limits.MaxRuntime = time.Hour, time.Hour, time.Hour
		d.AutoRestart, d.RestartDelay = true, time.Hour
	})
	now := time.Now()
	p.startedAt = now
	p.transition(event{kind: evStarted, at: now})
	p.transition(event{kind: evHeartbeat, at: now})
	p.transition(event{kind: evLimit, reason: api.ReasonMemory, limit: 1, value: 2})
	if p.runtimeTimer == nil || p.hbTimer == nil || p.killTimer == nil {
		t.Fatalf("timers runtime %v heartbeat %v kill %v", p.runtimeTimer, p.hbTimer, p.killTimer)
	}
	st, eff := p.transition(event{kind: evExited, at: now.Add(time.Second), code: code(0)})
	for name, tm := range map[string]*time.Timer{"runtime": p.runtimeTimer, "heartbeat": p.hbTimer, "kill": p.killTimer} {
		if tm.Stop() {
			t.Errorf("%s timer still armed after the exit", name)
		}
	}
	// One crash so far, so the delay is doubled, capped at an hour, less
	// up to 10 % jitter.
	if st.phase != backoff || p.restartTimer == nil || eff.delay <= 54*time.Minute || eff.delay > time.Hour {
		t.Fatalf("after the watchdog kill: phase %d, restart timer %v, delay %s", st.phase, p.restartTimer, eff.delay)
	}
	if _, eff := p.transition(event{kind: evStop, sig: syscall.SIGTERM}); !eff.cancelled || p.restartTimer.Stop() {
		t.Errorf("stop in backoff: cancelled %v, or the restart timer is still armed", eff.cancelled)
	}
}

// A heartbeat is the hot path: once the watchdog is armed, it allocates
// nothing.
func TestHeartbeatDoesNotAllocate(t *testing.T) {
	p := lifecycleProcess(false, func(d *Definition) { d.HeartbeatTimeout = time.Hour })
	now := time.Now()
	p.heartbeat(now)
	defer p.hbTimer.Stop()
	if n := testing.AllocsPerRun(100, func() { p.heartbeat(now) }); n != 0 {
		t.Errorf("%v allocations per heartbeat", n)
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	p := lifecycleProcess(false, func(d *Definition) { d.HeartbeatTimeout = time.Hour })
	now := time.Now()
	p.heartbeat(now)
	defer p.hbTimer.Stop()
	b.ReportAllocs()
	for b.Loop() {
		p.heartbeat(now)
	}
}

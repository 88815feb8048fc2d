package node

import (
	"syscall"
	"time"

	"github.com/corral-run/corral/api"
)

// The life of a managed process, in one place: its states, the events
// that move it, and what each transition does. The diagram is in doc.go.
//
// A process's state changes only here: transition evaluates step (a pure
// function of the state and the event) under p.mu, sets or stops the
// process's timers as step says, and returns what else has to be done;
// perform (process.go) does that after p.mu is released: signals, reports,
// callbacks, sockets, the disk, spawning a replacement.
//
// In short (step says it in full, event by event; "-" is ignored):
//
//	event \ phase  running            stopping          backoff            exited  detached
//	started        arm runtime limit  -                 -                  -       -
//	heartbeat      record; 1st: arm   record            record             record  record
//	heartbeat due  stale, or kill*    -                 -                  -       -
//	goodbye        note               -                 -                  -       note
//	limit          report; kill       -                 -                  -       -
//	stop           → stopping         signal again      → exited, cancel   -       signal
//	kill due       -                  SIGKILL           -                  -       -
//	exited         → exited/backoff   → exited/backoff  -                  -       -
//	lost           → exited/backoff   -                 -                  -       -
//	recorded       → exited           -                 -                  -       -
//	detach         → detached         → detached        → exited           -       -
//	restart due    -                  -                 → exited; respawn  -       -
//	closing        -                  -                 → exited           -       -
//
// * unless the node is holding the child's lines unread: judged again a
// heartbeat timeout later (held).
//
// "kill" is the watchdog's: → stopping, process.watchdog.killed, the stop
// signal to the group, the kill timer. An exit or a loss ends in backoff
// when auto-restart brings the process back, else in exited; either way
// finish (process.go) reports it.

// phase is where a managed process is in its life; api.Status is derived
// from it (state.status).
type phase uint8

const (
	// running: the child has started (spawned, or found alive by adopt)
	// and nothing has asked it to end. A process is registered only once
	// it is running: there is no "starting" phase.
	running phase = iota + 1
	// stopping: signalled by a stop or by the watchdog (why says which);
	// the kill timer sends SIGKILL to the group when the stop timeout has
	// passed.
	stopping
	// backoff: it has ended (why and the exit say how), and an
	// auto-restart waits out its backoff delay.
	backoff
	// exited: it has ended, for good.
	exited
	// detached: the node let go of it while it was running or stopping
	// (Detach): no timers, sockets closed, and its exit is the next node's
	// business.
	detached
)

// cause is why a process is stopping, or why it ended.
type cause uint8

const (
	// unasked: nothing asked it to end; if it exits, its exit code decides
	// (0 stopped, anything else crashed).
	unasked cause = iota
	// goodbye: the child said "disconnecting". A re-adopted process, whose
	// exit code the node cannot learn, then ends stopped.
	goodbye
	// stopAsked: Stop (StopAll, Restart, Close) asked it to end: it ends
	// stopped and is never restarted.
	stopAsked
	// watchdogKill: the watchdog is killing it (why.reason): it ends
	// crashed, whatever its exit code, and auto-restart applies.
	watchdogKill
	// watchdogKillAndStop: the watchdog is killing it and a stop was asked
	// as well: it ends crashed, and is not restarted.
	watchdogKillAndStop
)

// why says why a process is stopping or why it ended: the one value that
// decides, at the exit, between stopped and crashed, and whether
// auto-restart is considered.
type why struct {
	cause cause
	// reason is the watchdog's: heartbeat, maxRuntimeMs, maxMemoryMb or
	// maxCpuPercent.
	reason string
}

// killed reports whether the watchdog killed the process.
func (w why) killed() bool { return w.cause == watchdogKill || w.cause == watchdogKillAndStop }

// asked reports whether a stop was asked: such an end is never restarted.
func (w why) asked() bool { return w.cause == stopAsked || w.cause == watchdogKillAndStop }

// withStop is w once a stop has been asked too.
func (w why) withStop() why {
	switch w.cause {
	case unasked, goodbye:
		return why{cause: stopAsked}
	case watchdogKill:
		w.cause = watchdogKillAndStop
	}
	return w
}

// watch is what the heartbeat watchdog knows of a process. It is frozen
// once the process stops running (a process that was stale when it was
// stopped still shows stale), except that a heartbeat always ends a stale
// episode.
type watch uint8

const (
	// unwatched: no connected or heartbeat message yet, or monitoring is
	// off (heartbeat timeout below zero). A child that never connects is
	// supervised by its exit alone.
	unwatched watch = iota
	// onTime: the heartbeat timer is armed and the last heartbeat is
	// recent enough.
	onTime
	// overdue: stale, no heartbeat for the heartbeat timeout: reported
	// once per episode; the next heartbeat ends the episode.
	overdue
)

// state is everything the transitions decide on. It lives in p.st, under
// p.mu.
type state struct {
	phase         phase
	why           why
	watch         watch
	lastHeartbeat time.Time // of the last connected or heartbeat message
	// heldAt is when the heartbeat timer last found the node holding the
	// child's lines unread: the heartbeat clock runs from then, if later.
	heldAt time.Time
	// How it ended (backoff, exited).
	ended    api.Status // stopped or crashed
	exitCode *int       // nil: unknown (re-adopted, lost) or killed by a signal
	errText  string     // why it crashed
	endedAt  time.Time
}

// live reports whether the process runs with nothing asking it to end: the
// only state in which the heartbeat watchdog and the limits act on it, and
// the node samples it. This is the one liveness check.
func (st state) live() bool { return st.phase == running }

// status is the api.Status the world sees: the one place it is derived.
func (st state) status() api.Status {
	switch st.phase {
	case running:
		return api.StatusRunning
	case stopping:
		return api.StatusStopping
	case detached: // as it was when the node let go (or asked to stop since)
		if st.why.cause >= stopAsked {
			return api.StatusStopping
		}
		return api.StatusRunning
	}
	return st.ended
}

// view fills the parts of mp that the state decides.
func (st state) view(mp *api.ManagedProcess) {
	mp.Status = st.status()
	mp.Stale = st.watch == overdue
	mp.RestartPending = st.phase == backoff
	mp.ExitCode, mp.Error = st.exitCode, st.errText
	if !st.lastHeartbeat.IsZero() {
		t := st.lastHeartbeat
		mp.LastHeartbeat = &t
	}
	if !st.endedAt.IsZero() {
		t := st.endedAt
		mp.EndedAt = &t
	}
}

// eventKind is what can happen to a process.
type eventKind uint8

const (
	// evStarted: the child is up: spawned (start), or found alive by
	// adopt. Its runtime limit counts from its start time.
	evStarted eventKind = iota + 1
	// evLost: adopt found the recorded process dead: it ended while no
	// node watched it. Its pid may be another process's by now. Also a
	// child the node found but could not supervise, and killed (giveUp):
	// errText then says why.
	evLost
	// evRecorded: Recover found the record of a process that had ended
	// before this node started: it is listed as it ended, and nothing is
	// reported.
	evRecorded
	// evHeartbeat: a connected or heartbeat message (conn.go readLoop →
	// handle.go dispatch), or adopt restarting the heartbeat clock.
	evHeartbeat
	// evHeartbeatDue: the heartbeat timer fired: is the heartbeat late?
	evHeartbeatDue
	// evGoodbye: the child said "disconnecting".
	evGoodbye
	// evLimit: a hard limit was breached (runtime timer, or the sampler's
	// memory and CPU checks).
	evLimit
	// evStop: a stop was asked (Stop, StopAll, Restart, Close).
	evStop
	// evKillDue: the kill timer fired: the stop timeout has passed.
	evKillDue
	// evExited: the reaper saw the process exit.
	evExited
	// evDetach: the node is detaching (Detach), leaving its children for
	// the next node.
	evDetach
	// evRestartDue: the restart backoff timer fired.
	evRestartDue
	// evClosing: the node is closing (Close): pending restarts are
	// dropped.
	evClosing
)

// event is one thing that happened, with what the transition needs to
// know about it.
type event struct {
	kind eventKind
	at   time.Time // evStarted, evHeartbeat, evHeartbeatDue, evExited, evLost
	// evHeartbeatDue: a read loop of the process's is acting on a line
	// (waiting for room among its events waiting for storage, or for NATS),
	// so the node is not reading what the child sends.
	held bool
	sig  syscall.Signal // evStop: the signal to send
	// evLimit: which limit, its value and what was measured.
	reason       string
	limit, value float64
	// evExited: what the reaper learnt; evRecorded: what the record says
	// (with ended); evLost: why, when it was not simply found dead.
	code    *int
	errText string
	ended   api.Status
	// evRestartDue: the lineage of the replacement; evRecorded: that of
	// the replacement of a recorded pending restart (restartIn).
	next lineage
	// evRecorded: the record promises a restart (next) due in restartIn
	// (0 or less: at once).
	restartPending bool
	restartIn      time.Duration
}

// effects is what a transition does besides changing the state. The
// timer fields are carried out by apply while p.mu is held, so a timer's
// handle always agrees with the state that armed or stopped it (arming and
// stopping a timer neither blocks nor calls out: the timer's function runs
// on its own goroutine and takes p.mu). Everything else is carried out by
// perform once p.mu is released, in the order of the fields.
type effects struct {
	// Timers (apply).
	armRuntime   bool          // arm the runtime limit timer ...
	runtimeIn    time.Duration // ... to fire after this long
	armHeartbeat time.Duration // > 0: (re)arm the heartbeat timer to fire after this long
	armKill      bool          // arm the kill timer (the stop timeout)
	armRestart   bool          // arm the restart backoff timer (for failures earlier crashes), to respawn as next
	restartIn    time.Duration // (armRestart) > 0: after this long, not a backoff delay drawn; < 0: at once
	stopTimers   bool          // stop the runtime, heartbeat and kill timers
	stopRestart  bool          // stop the restart backoff timer
	unpromise    bool          // (stopRestart) write the record again: the restart it promised is off

	// Answers to the caller.
	firstContact bool // evHeartbeat: the first connected or heartbeat message of this process
	cancelled    bool // evStop: the stop cancelled a pending restart

	// The world (perform), in this order.
	sigkill      bool           // log and SIGKILL the group: the stop timeout has passed
	stale        time.Duration  // > 0: became stale this long after the last heartbeat: report process.stale and process.watchdog.stale, call OnUnhealthy
	exceeded     bool           // report process.limits_exceeded (reason, limit, value)
	killed       bool           // log and report process.watchdog.killed (reason, value)
	reason       string         // the watchdog's reason (exceeded, killed)
	limit, value float64        // the limit and the measured value (exceeded, killed)
	signal       syscall.Signal // send this signal to the group
	detach       bool           // close the socket (a unix socket's file stays) and the connections
	end          bool           // the end is this node's to report: finish (process.go)
	killGroup    bool           // (end) SIGKILL what is left of the group first; not for a lost process, whose pid may be another's now
	restartLimit bool           // (end) after the end report: report process.restart_limit (failures)
	failures     int            // consecutive crashes counted at the end (armRestart, restartLimit)
	next         lineage        // the replacement's lineage (armRestart, respawn)
	respawn      bool           // spawn the replacement (next)

	// Filled by apply: the connections to close (end, detach) and the
	// backoff delay drawn (armRestart).
	conns []*conn
	delay time.Duration
	// Set by the caller when it holds spawnMu (lost, in Recover): where
	// finish queues OnCrash instead of calling it. Nil: called at once.
	later *callQueue
}

// step is the transition table: it moves *st by ev and says in *eff
// (which starts empty) what the transition does. It is pure: it changes *st
// and *eff and nothing else, and reads only ev and p's fields that never
// change after start (definition, start time, lineage, whether the node
// started the child). It takes pointers rather than returning values
// because every heartbeat comes through here, and copying these structs in
// and out costs several times the rest of a heartbeat's work. Each case
// lists what happens in every phase; a phase it does not name ignores the
// event.
func (p *process) step(st *state, ev *event, eff *effects) {
	def := p.def
	switch ev.kind {
	case evStarted:
		// running: the runtime limit starts counting (from the child's
		// start, so a re-adopted child gets only what is left of it).
		if st.phase == running && def.Limits.MaxRuntime > 0 {
			eff.armRuntime = true
			eff.runtimeIn = max(def.Limits.MaxRuntime-ev.at.Sub(p.startedAt), 0)
		}

	case evHeartbeat:
		// Every phase: the heartbeat is recorded and ends a stale episode.
		// running: the first one arms the heartbeat timer (monitoring
		// starts at the first connection, unless it is off).
		eff.firstContact = st.lastHeartbeat.IsZero()
		st.lastHeartbeat = ev.at
		switch {
		case st.watch == unwatched && st.live() && def.HeartbeatTimeout > 0:
			st.watch, eff.armHeartbeat = onTime, def.HeartbeatTimeout
		case st.watch == overdue:
			st.watch = onTime
		}

	case evHeartbeatDue:
		// running: late by twice the timeout → the watchdog kills it;
		// late by the timeout → stale (reported once per episode), check
		// again at twice the timeout; else check again when it would be
		// late. Late, but the node holds the child's lines unread (held):
		// liveness is judged on what the child sent, which the node has
		// not read, so it is judged again a timeout later, and the clock
		// runs from now. Other phases: the timer ignores itself and is not
		// re-armed.
		if !st.live() {
			break
		}
		last := st.lastHeartbeat
		if st.heldAt.After(last) {
			last = st.heldAt
		}
		timeout, since := def.HeartbeatTimeout, ev.at.Sub(last)
		switch {
		case since >= timeout && ev.held:
			st.heldAt, eff.armHeartbeat = ev.at, timeout
		case since >= 2*timeout:
			p.watchdogKill(st, eff, api.ReasonHeartbeat, float64(since.Milliseconds()))
		case since >= timeout:
			if st.watch != overdue {
				eff.stale = since
			}
			st.watch, eff.armHeartbeat = overdue, 2*timeout-since
		default:
			eff.armHeartbeat = timeout - since
		}

	case evGoodbye:
		// running, detached: remembered, unless a stop already explains
		// the end. stopping: the stop or the watchdog explains it. backoff,
		// exited: the end is decided.
		if (st.phase == running || st.phase == detached) && st.why.cause == unasked {
			st.why.cause = goodbye
		}

	case evLimit:
		// running: report the breach, then the watchdog kills it.
		if st.live() {
			p.watchdogKill(st, eff, ev.reason, ev.value)
			eff.exceeded, eff.limit = true, ev.limit
		}

	case evStop:
		// running → stopping: signal the group, arm the kill timer.
		// stopping: signal again (the kill timer is already armed); a
		// watchdog kill stays a crash but is no longer restarted.
		// detached: signal (the node no longer supervises it, so there is
		// no kill timer, and its exit is not reported).
		// backoff → exited: the pending restart is cancelled instead.
		// exited: nothing (stop answers ErrNotRunning).
		switch st.phase {
		case running:
			st.phase, st.why = stopping, st.why.withStop()
			eff.armKill, eff.signal = true, ev.sig
		case stopping, detached:
			st.why = st.why.withStop()
			eff.signal = ev.sig
		case backoff:
			st.phase = exited
			eff.stopRestart, eff.cancelled, eff.unpromise = true, true, true
		}

	case evKillDue:
		// stopping: SIGKILL the group. Other phases: the timer ignores
		// itself (the process has ended, or the node let it go).
		if st.phase == stopping {
			eff.sigkill = true
		}

	case evExited:
		// running, stopping → exited, or backoff when auto-restart brings
		// it back: stop the timers, close its socket and connections, and
		// report the end (finish). detached: nothing, the next node
		// reports it.
		if st.phase == running || st.phase == stopping {
			p.end(st, ev, eff)
		}

	case evLost:
		// running (a record adopt has just built) → exited or backoff, as
		// for an exit, but nothing is signalled.
		if st.phase == running {
			p.end(st, ev, eff)
		}

	case evRecorded:
		// running (a record Recover has just built) → exited as recorded,
		// or backoff when the record promises a restart (the node that
		// wrote it died during the backoff): the restart is armed for
		// when it was due.
		if st.phase == running {
			st.phase, st.ended, st.exitCode, st.errText, st.endedAt = exited, ev.ended, ev.code, ev.errText, ev.at
			if ev.restartPending {
				st.phase = backoff
				eff.armRestart, eff.next, eff.failures = true, ev.next, ev.next.failures
				eff.restartIn = ev.restartIn
				if eff.restartIn <= 0 {
					eff.restartIn = RestartAtOnce
				}
			}
		}

	case evDetach:
		// running, stopping → detached: stop the timers, close the socket
		// (keeping a unix socket's file, the next node replaces it) and
		// the connections, signal nobody.
		// backoff → exited: the pending restart is left to the next node
		// (its record still promises it).
		switch st.phase {
		case running, stopping:
			st.phase = detached
			eff.stopTimers, eff.detach = true, true
		case backoff:
			st.phase, eff.stopRestart = exited, true
		}

	case evRestartDue:
		// backoff → exited: spawn the replacement. Other phases: cancelled
		// (by a stop, Close or Detach); the timer ignores itself.
		if st.phase == backoff {
			st.phase = exited
			eff.respawn, eff.next = true, ev.next
		}

	case evClosing:
		// backoff → exited: the pending restart is dropped, on disk too.
		// Live processes are stopped by Close next.
		if st.phase == backoff {
			st.phase, eff.stopRestart, eff.unpromise = exited, true, true
		}
	}
}

// watchdogKill is running → stopping on the watchdog's behalf: report
// process.watchdog.killed, send the stop signal to the group and arm the
// kill timer. The exit then counts as a crash.
func (p *process) watchdogKill(st *state, eff *effects, reason string, value float64) {
	st.phase, st.why = stopping, why{cause: watchdogKill, reason: reason}
	eff.killed, eff.reason, eff.value, eff.signal, eff.armKill = true, reason, value, p.def.StopSignal, true
}

// end is running or stopping → exited or backoff: how the process ended,
// and what auto-restart does about it.
func (p *process) end(st *state, ev *event, eff *effects) {
	status, errText := api.StatusCrashed, ev.errText
	if ev.kind == evLost && errText == "" {
		errText = "exited while the node was down (exit code unknown)"
	}
	switch {
	case st.why.killed():
		errText = "killed by the watchdog (" + st.why.reason + ")"
	case st.why.cause == stopAsked || (ev.code != nil && *ev.code == 0):
		status = api.StatusStopped
	case !p.child && st.why.cause == goodbye:
		status = api.StatusStopped // re-adopted: said goodbye, then left
	}
	if status == api.StatusStopped {
		errText = ""
	}
	st.phase, st.ended, st.exitCode, st.errText, st.endedAt = exited, status, ev.code, errText, ev.at
	eff.stopTimers, eff.end, eff.killGroup = true, true, ev.kind == evExited
	if st.why.asked() {
		return
	}
	// The restart is armed before the end is reported, so whoever reacts
	// to process.crashed already sees it pending.
	switch decision, next, failures := p.autoRestart(status, ev.at); decision {
	case restartLater:
		st.phase = backoff
		eff.armRestart, eff.next, eff.failures = true, next, failures
	case restartGiveUp:
		eff.restartLimit, eff.failures = true, failures
	}
}

// transition moves p's state by ev and returns the new state and what is
// left to do (for perform). It holds p.mu only while it decides and sets
// the timers.
func (p *process) transition(ev event) (st state, eff effects) {
	p.mu.Lock()
	was := p.st.phase
	p.step(&p.st, &ev, &eff)
	p.over.Store(p.st.status().Finished())
	if p.st.phase == exited && was != exited && p.sup != nil { // tests step bare processes
		at := p.st.endedAt
		if at.IsZero() {
			at = time.Now()
		}
		p.sup.retained.add(p, at) // prune forgets it in its time
	}
	p.apply(&eff)
	st = p.st
	p.mu.Unlock()
	return st, eff
}

// on is one event, from start to finish: the transition, then its effects.
// It returns the error of signalling the group, the one effect a caller
// can act on.
func (p *process) on(ev event) error {
	return p.perform(p.transition(ev))
}

// apply carries out the timer effects, and gathers the connections to
// close. p.mu is held. Every timer goes through on, so a timer that fires
// after the state moved on is ignored by step.
func (p *process) apply(eff *effects) {
	if eff.stopTimers {
		for _, t := range []*time.Timer{p.runtimeTimer, p.hbTimer, p.killTimer} {
			if t != nil {
				t.Stop()
			}
		}
	}
	if eff.stopRestart && p.restartTimer != nil {
		p.restartTimer.Stop()
	}
	if eff.armRuntime {
		p.runtimeTimer = time.AfterFunc(eff.runtimeIn, p.runtimeExceeded)
	}
	if d := eff.armHeartbeat; d > 0 {
		if p.hbTimer == nil {
			p.hbTimer = time.AfterFunc(d, p.heartbeatDue)
		} else {
			p.hbTimer.Reset(d)
		}
	}
	if eff.armKill {
		p.killTimer = time.AfterFunc(p.def.StopTimeout, p.stopTimeoutPassed)
	}
	if eff.armRestart {
		def, next := p.def, eff.next
		eff.delay = backoffDelay(def.RestartDelay, def.RestartDelayMax, eff.failures)
		if eff.restartIn != 0 {
			eff.delay = eff.restartIn
		}
		p.restartAt, p.restartNext = time.Now().Add(max(eff.delay, 0)), next
		// At once (RestartAtOnce) is a timer too, of zero: the restart
		// runs on its own goroutine, never under the end's locks.
		p.restartTimer = time.AfterFunc(eff.delay, func() { _ = p.on(event{kind: evRestartDue, next: next}) })
	}
	if (eff.end || eff.detach) && len(p.conns) > 0 {
		eff.conns = make([]*conn, 0, len(p.conns))
		for c := range p.conns {
			eff.conns = append(eff.conns, c)
		}
	}
}

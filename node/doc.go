// Package node supervises the child processes of one host: definitions,
// spawn, stop and restart, the socket server that speaks the child wire
// protocol (package client/wire) and takes connections from children
// only, validation of what children send, their logs, and the records of
// every process.
//
// It knows nothing of NATS or of CLI flags: everything it has to tell the
// world goes to a Reporter (the control service of package bus/service,
// which hands reports to its bus/relay), and the control service drives it
// through the Supervisor's methods. So the supervisor can be tested
// without a broker (node/nodetest has a recording Reporter).
//
// # The life of a managed process
//
//	spawned (start)      found alive (adopt)
//	       └──────────┬──────────┘
//	                  ▼
//	┌────────────────────────────────────┐  heartbeat late by the timeout:
//	│ running        on time ⇄ stale     │  stale (reported once per episode);
//	└────────────────────────────────────┘  a heartbeat: on time again
//	   │ stop            │ limit, or heartbeat late by twice
//	   │                 │ the timeout: the watchdog kills it
//	   ▼                 ▼
//	┌────────────────────────────────────┐  why: a stop asked, or the watchdog
//	│ stopping                           │  and its reason; the kill timer
//	└────────────────────────────────────┘  SIGKILLs the group after the timeout
//
//	running, stopping ──exited──┐        found dead (adopt) ──lost──┐
//	                            ▼                                   ▼
//	        auto-restart? (a crash, or any exit under "always"; never after a stop)
//	            │ yes                                │ no, or the budget is
//	            ▼                                    │ spent: restart_limit
//	       ┌─────────┐  restart due: respawn         │
//	       │ backoff │  stop, Close: cancel          │
//	       │         │  Detach: left to the next node│
//	       └─────────┘                               │
//	            ▼                                    ▼
//	┌────────────────────────────────────────────────────────────┐
//	│ exited: stopped or crashed, as why and the exit code say   │
//	└────────────────────────────────────────────────────────────┘
//
//	running, stopping ──Detach──► detached: no timers, sockets closed;
//	                              its exit is the next node's to report
//
//	"lost" is also a child of this node that Recover found without a
//	record and could not supervise: killed, and crashed with the reason
//	(orphans.go). The record of a process that had ended before the node
//	started makes it exited at once, as it ended ("recorded", Recover),
//	or backoff when the record promises a restart that no record says
//	happened (the node died during the backoff): armed for when it was due.
//
// The wire status (api.Status) is derived from the phase: running (stale
// or not) → running; stopping → stopping; backoff and exited → stopped or
// crashed; detached → as it was. There is no "starting": a process is
// registered once its child runs.
//
// Where things happen:
//   - A state changes only in lifecycle.go: transition runs step, the
//     transition table, under the process's lock and sets its timers;
//     perform (process.go) carries out the rest once the lock is released,
//     and finish (process.go) reports every end, whether the reaper saw the
//     exit (wait) or adopt found the process dead (lost).
//   - A connection is accepted in conn.go: on unix from the node's one
//     listening socket, which every <socket_dir>/<id>.sock links to
//     (acceptShared); on tcp from the process's own port (acceptLoop).
//     take asks who connected (peer_linux.go: SO_PEERCRED, or the holder
//     of the connecting tcp socket) and admits it only to the process
//     whose tree that pid is in (ownerOf), else answers "forbidden" and
//     closes it; a connection is pending until its first valid line,
//     closed after the handshake timeout, and only then where Send writes.
//   - A child's line is read in conn.go (readLoop, with wire.ReadLine, the
//     bounded line reader), decoded and acted on in handle.go (handle,
//     dispatch); a connected or heartbeat message becomes a heartbeat
//     event (watchdog.go heartbeat). What the child said goes to the
//     Reporter as a Report; in corrald that is bus/service, and the report
//     becomes a NATS message in bus/relay (Relay.Publish).
//   - A late heartbeat kills a process when the heartbeat timer fires
//     (watchdog.go heartbeatDue): step's evHeartbeatDue case finds it late
//     by twice the timeout, perform reports process.watchdog.killed and
//     sends the stop signal to the group, and the kill timer
//     (stopTimeoutPassed) sends SIGKILL once the stop timeout has passed.
//   - Hard limits: the runtime timer (watchdog.go) and the sampler
//     (stats.go) raise evLimit.
//   - A child is started in process.go (start, command) with ForkExec, in
//     its own process group; its exit is reaped by the one SIGCHLD loop of
//     reaper.go and handed to the process's wait, which reports it.
//   - A child's stdout and stderr go to a FIFO the node reads (logs.go,
//     logPipe) and writes to <id>.log, rotated by size at line
//     boundaries; wait reads the FIFO to its end before the exit is
//     reported, so the last lines are in the log. Why a FIFO and not a
//     pipe or a file: see logs.go.
//   - Following a process's output (FollowLogs, follow.go): the pipe hands
//     what it writes to the log to a LogSink, set where the tail the
//     follower gets ends; reading a tail, and lines written since a time,
//     in logtail.go.
//   - Records (state.go): written by start before process.spawned is
//     reported (a spawn whose record cannot be written fails, its child
//     killed), rewritten as ended by finish, removed with the log files
//     by prune (retention.go). Every path is derived from the id and the
//     configuration, never read from a record.
//   - Recover (adopt.go) re-adopts recorded children that still run,
//     reports the lost ones, lists the ended ones again, then looks
//     through /proc for children with this node's mark and no record
//     (orphans.go): re-adopted when the node has their definition, else
//     killed and reported crashed.
package node

package node

// Reporter receives everything the supervisor has to tell the world. The
// control service (package bus/service) implements it, publishing through
// its relay (package bus/relay); tests use nodetest.Recorder.
//
// Publish must not block on I/O for long: it is called on the child's read
// loop, and blocking there is how back-pressure reaches a child. A non-nil
// error means the report could not be handed on (for events the child is
// then told so). It must not call the Supervisor's Spawn, Restart or
// EnsureInstances: process.spawned, and every report during Recover, are
// published while the supervisor holds the lock those take.
type Reporter interface {
	Publish(r Report) error
}

// Kind says what a Report is about. Each kind has one subject (DESIGN.md).
type Kind uint8

// Report kinds, one per subject family.
const (
	KindSpawned        Kind = iota + 1 // process.spawned, Payload Spawned
	KindConnected                      // process.connected, Payload ProcessRef
	KindReconnected                    // process.reconnected, Payload Reconnected
	KindHeartbeat                      // process.heartbeat, Payload ProcessRef
	KindStats                          // process.stats and process.<name>.stats, Payload StatsReport
	KindStale                          // process.stale, Payload Stale
	KindStopped                        // process.stopped, Payload Stopped
	KindCrashed                        // process.crashed, Payload Crashed
	KindRestarted                      // process.restarted, Payload Restarted
	KindRestartLimit                   // process.restart_limit, Payload RestartLimit
	KindLimitsExceeded                 // process.limits_exceeded, Payload LimitsExceeded
	KindWatchdogStale                  // process.watchdog.stale, Payload WatchdogStale
	KindWatchdogKilled                 // process.watchdog.killed, Payload WatchdogKilled
	KindEvent                          // process.<name>.<event>, Raw holds the payload
)

// Report is one thing to publish.
type Report struct {
	Kind      Kind
	ProcessID string
	Name      string
	// Event is the custom event name (KindEvent only).
	Event string
	// MsgID, when set, becomes the Nats-Msg-Id; otherwise the bus makes one.
	MsgID string
	// Payload is one of the payload types below, marshalled by the bus.
	Payload any
	// Raw is the ready-made JSON payload (KindEvent), used instead of
	// Payload. It is only valid during the Publish call: the supervisor
	// reuses the buffer, so a Reporter that keeps it must copy it.
	Raw []byte
	// Done, when set, asks to be told when the report has been accepted
	// (handed to NATS, or stored by JetStream in durable mode): the
	// Reporter calls it exactly once, from any goroutine, possibly before
	// Publish returns, with nil or the reason it failed. When Publish
	// itself returns an error, Done is not called. The child's ack waits
	// for it.
	Done func(error)
}
